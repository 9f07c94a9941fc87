"""`manage.py restore SRC --yes`: replace the node's database with a backup.

Stop every node process first (the command refuses while one reported in the last minute,
unless --force). Then run `manage.py migrate` if the backup is older than the code (`mostrod`
does it at start). Trades in flight continue from the backup's state: LND keeps the escrows,
and the node asks LND about every payout it had claimed before paying anything again.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mostro_site.ops.backup import BackupError, database_restore


class Command(BaseCommand):
    help = "Restore the node's database from a backup made by `manage.py backup` (destructive)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("src", help="a backup file (.sqlite3 or pg_dump custom format)")
        parser.add_argument("--yes", action="store_true", help="confirm: the current database is replaced")
        parser.add_argument("--force", action="store_true", help="restore even if node processes seem to run")

    def handle(self, *args, **options) -> None:
        if not options["yes"]:
            raise CommandError("restore replaces the whole database: run it again with --yes")
        try:
            engine = database_restore(Path(options["src"]), force=options["force"])
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{engine} database restored from {options['src']}.")
        self.stdout.write("Next: manage.py migrate (mostrod does it at start), then start the node.")
