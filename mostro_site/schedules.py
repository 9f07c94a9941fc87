"""Every periodic job, declared in one place (mostrod `src/scheduler.rs`).

`manage.py sync_schedules` upserts these django-q2 `Schedule` rows by name and removes
project schedules that are no longer declared, so re-running it never duplicates a job.
The schedule name is the job's dotted path; intervals come from the node settings.

`manage.py run_jobs` syncs and then starts the django-q2 cluster; plain `manage.py qcluster`
runs whatever schedules exist, so run `manage.py sync_schedules` before it (and after a
change of an interval setting).
"""

from dataclasses import dataclass

from django.conf import settings

MANAGED_PREFIXES = ("orders.", "disputes.", "devfee.", "nostrbridge.", "lightning.", "mostro_site.ops.")


@dataclass(frozen=True)
class JobSpec:
    func: str  # dotted path; also the schedule name
    seconds: int  # interval

    @property
    def minutes(self) -> int:
        # django-q2 MINUTES schedules have a 1-minute resolution: sub-minute jobs run each minute.
        return max(1, round(self.seconds / 60))


def declared_jobs() -> list[JobSpec]:
    """Every periodic job with mostrod's interval (behaviour §1.23)."""
    s = settings
    jobs = [
        # Orders (orders/jobs.py).
        JobSpec("orders.jobs.expire_pending_orders", 60),
        JobSpec("orders.jobs.cancel_timed_out_trades", 60),
        JobSpec("orders.jobs.enforce_escrow_deadline", 300),
        JobSpec("orders.jobs.retry_failed_payouts", s.LND_PAYMENT_RETRIES_INTERVAL),
        JobSpec("orders.jobs.reconcile_inflight_payouts", 60),
        JobSpec("orders.pricing.refresh_prices", max(60, s.MOSTRO_EXCHANGE_RATES_UPDATE_INTERVAL_SECONDS)),
        # Development fee (devfee/jobs.py).
        JobSpec("devfee.jobs.pay_pending_dev_fees", 60),
        # Nostr bridge (nostrbridge/jobs.py).
        JobSpec("nostrbridge.jobs.publish_info_event", s.MOSTRO_PUBLISH_MOSTRO_INFO_INTERVAL),
        JobSpec("nostrbridge.jobs.publish_relay_list", s.MOSTRO_PUBLISH_RELAYS_INTERVAL),
        JobSpec("nostrbridge.jobs.reconcile_order_events", 60),
        JobSpec("nostrbridge.jobs.retry_outbox", 60),
        JobSpec("nostrbridge.jobs.prune_inbox", 3600),
        JobSpec("nostrbridge.jobs.prune_outbox", 3600),
        # Operations (mostro_site/ops/jobs.py): proves to /readyz that the scheduler and a worker run.
        JobSpec("mostro_site.ops.jobs.job_cluster_heartbeat", 60),
    ]
    return [job for job in jobs if _importable(job.func)]


def _importable(dotted: str) -> bool:
    """Jobs land module by module; a schedule must never point at a missing function."""
    from django.utils.module_loading import import_string

    try:
        import_string(dotted)
    except ImportError:
        return False
    return True
