"""Create or update the django-q2 schedules declared in `mostro_site/schedules.py`."""

from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import Q
from django_q.models import Schedule

from mostro_site.schedules import MANAGED_PREFIXES, declared_jobs, job_function


def sync_schedules() -> tuple[int, int, int]:
    """Upsert by name, delete stale project schedules. Returns (created, updated, deleted).

    Every declared job must import, or nothing is written (`ImproperlyConfigured`).
    """
    created = updated = 0
    wanted = {job.func: job for job in declared_jobs()}
    for job in wanted.values():
        job_function(job)
    with transaction.atomic():
        for name, job in wanted.items():
            defaults = {
                "func": job.func,
                "schedule_type": Schedule.MINUTES,
                "minutes": job.minutes,
                "repeats": -1,
            }
            existing = Schedule.objects.filter(name=name).order_by("id")
            first = existing.first()
            if first is None:
                Schedule.objects.create(name=name, **defaults)
                created += 1
                continue
            existing.exclude(pk=first.pk).delete()  # heal duplicates made by hand
            changed = any(getattr(first, key) != value for key, value in defaults.items())
            if changed:
                Schedule.objects.filter(pk=first.pk).update(**defaults)
                updated += 1
        managed = Q()
        for prefix in MANAGED_PREFIXES:
            managed |= Q(name__startswith=prefix)
        stale = Schedule.objects.filter(managed).exclude(name__in=list(wanted))
        deleted = stale.delete()[0]
    return created, updated, deleted


class Command(BaseCommand):
    help = "Create or update the periodic jobs (idempotent)."

    def handle(self, *args, **options):
        created, updated, deleted = sync_schedules()
        self.stdout.write(f"schedules: {created} created, {updated} updated, {deleted} removed")
