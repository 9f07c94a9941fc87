"""`manage.py backup DEST`: a consistent copy of the node's database while it runs.

SQLite: the online backup API (never `cp` a WAL database in use). PostgreSQL: `pg_dump -Fc`,
with a client of the server's major version. DEST is a new file, or a directory to put
`mostro-<UTC time>.sqlite3|.dump` in. The file is mode 600: it holds preimages. Keep the
`.env` (the node's Nostr key) and LND's own backups too: docs/OPERATIONS.md §6.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mostro_site.ops.backup import BackupError, database_backup


class Command(BaseCommand):
    help = "Back up the node's database (SQLite online backup or pg_dump) to DEST."

    def add_arguments(self, parser) -> None:
        parser.add_argument("dest", help="a new file, or an existing directory")

    def handle(self, *args, **options) -> None:
        try:
            result = database_backup(Path(options["dest"]))
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{result.engine} backup written: {result.path} ({result.size_bytes:,} bytes, mode 600)")
        self.stdout.write("Also keep: the .env (MOSTRO_NSEC_PRIVKEY) and LND's seed + channel.backup.")
