"""Every periodic job, declared in one place (mostrod `src/scheduler.rs`).

`manage.py sync_schedules` upserts these django-q2 `Schedule` rows by name and removes
project schedules that are no longer declared, so re-running it never duplicates a job.
The schedule name is the job's dotted path; intervals come from the node settings.
"""

from dataclasses import dataclass

from django.conf import settings

MANAGED_PREFIXES = ("orders.", "disputes.", "devfee.", "nostrbridge.", "lightning.")


@dataclass(frozen=True)
class JobSpec:
    func: str  # dotted path; also the schedule name
    seconds: int  # interval

    @property
    def minutes(self) -> int:
        # django-q2 MINUTES schedules have a 1-minute resolution: sub-minute jobs run each minute.
        return max(1, round(self.seconds / 60))


def declared_jobs() -> list[JobSpec]:
    s = settings
    jobs = [
        JobSpec("orders.pricing.refresh_prices", max(60, s.MOSTRO_EXCHANGE_RATES_UPDATE_INTERVAL_SECONDS)),
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
