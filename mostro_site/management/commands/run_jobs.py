"""Sync the declared schedules, then run the django-q2 cluster that executes them.

`manage.py qcluster` alone runs whatever `Schedule` rows exist; this command makes the rows
match `mostro_site/schedules.py` first, so a changed interval or a new job applies at start.
"""

from django.core.management.base import BaseCommand
from django_q.cluster import Cluster

from mostro_site.management.commands.sync_schedules import sync_schedules
from mostro_site.runtime.cluster import persistent_connections, preload_job_modules


class Command(BaseCommand):
    help = "Sync the periodic jobs, then start the django-q2 cluster (workers + scheduler)."

    def add_arguments(self, parser):
        parser.add_argument("--run-once", action="store_true", help="Start the cluster and stop it at once.")

    def handle(self, *args, **options):
        created, updated, deleted = sync_schedules()
        self.stdout.write(f"schedules: {created} created, {updated} updated, {deleted} removed")
        preload_job_modules()  # once here, not in every worker the cluster forks
        cluster = Cluster()
        with persistent_connections():
            cluster.start()  # returns once the sentinel runs; it keeps the process alive until SIGTERM/SIGINT
        if options["run_once"]:
            cluster.stop()
