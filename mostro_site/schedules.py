"""Every periodic job, declared in one place (mostrod `src/scheduler.rs`).

`manage.py sync_schedules` upserts these django-q2 `Schedule` rows by name and removes
project schedules that are no longer declared, so re-running it never duplicates a job; a job
that moved to another module is thereby re-created under its new path and the old row removed.
The schedule name is the job's dotted path; intervals come from the node settings.

`manage.py run_jobs` syncs and then starts the django-q2 cluster; plain `manage.py qcluster`
runs whatever schedules exist, so run `manage.py sync_schedules` before it (and after a
change of an interval setting).
"""

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

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
    """Every periodic job with mostrod's interval (docs/PROTOCOL.md §Timers)."""
    s = settings
    return [
        # Orders (orders/jobs.py).
        JobSpec("orders.jobs.expire_pending_orders", 60),
        JobSpec("orders.jobs.cancel_timed_out_trades", 60),
        JobSpec("orders.jobs.retry_failed_payouts", s.LND_PAYMENT_RETRIES_INTERVAL),
        JobSpec("orders.jobs.reconcile_inflight_payouts", 60),
        JobSpec("orders.pricing.refresh_prices", max(60, s.MOSTRO_EXCHANGE_RATES_UPDATE_INTERVAL_SECONDS)),
        JobSpec("orders.jobs.reconcile_order_events", 60),  # 38383 revisions that reached no relay
        JobSpec("orders.jobs.pay_pending_dev_fees", 60),  # the development fee (devfee/services.py)
        JobSpec("orders.bonds.jobs.reconcile_bonds", 60),  # anti-abuse bonds (orders/bonds/jobs.py)
        JobSpec("orders.bonds.payout.process_bond_payouts", 60),  # slashed bonds' payouts
        # Disputes (disputes/jobs.py): the escrow guardian, whose fiat-sent branch opens a dispute.
        JobSpec("disputes.jobs.enforce_escrow_deadline", 300),
        # Nostr bridge (nostrbridge/jobs.py).
        JobSpec("nostrbridge.jobs.publish_info_event", s.MOSTRO_PUBLISH_MOSTRO_INFO_INTERVAL),
        JobSpec("nostrbridge.jobs.publish_relay_list", s.MOSTRO_PUBLISH_RELAYS_INTERVAL),
        JobSpec("nostrbridge.jobs.retry_outbox", 60),
        JobSpec("nostrbridge.jobs.prune_inbox", 3600),
        JobSpec("nostrbridge.jobs.prune_outbox", 3600),
        # Operations (mostro_site/ops/jobs.py): proves to /readyz that the scheduler and a worker run.
        JobSpec("mostro_site.ops.jobs.job_cluster_heartbeat", 60),
    ]


def job_function(job: JobSpec):
    """The job's function; a declared job that cannot be imported is a deployment error, raised
    here so `sync_schedules` (and every command that runs it) fails loudly instead of skipping it."""
    try:
        return import_string(job.func)
    except ImportError as exc:
        raise ImproperlyConfigured(f"scheduled job {job.func} cannot be imported: {exc}") from exc
