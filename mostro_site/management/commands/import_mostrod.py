"""`manage.py import_mostrod --settings settings.toml --db mostro.db [--dry-run]`.

Migrates an existing Rust mostrod: its settings.toml becomes the node settings row (checked
by the same rules as the web form) plus `.env` lines for environment-only settings, and its
SQLite database (opened read-only) becomes orders, traders with reputation, solvers,
disputes and the dev-fee ledger. Rerunning changes nothing; `--dry-run` writes nothing.

`--settings` is Django's own option name (the settings module); manage.py hands it to this
command as `--toml` when the subcommand is import_mostrod.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mostro_site.config.env import EnvFileError, write_env_secret
from mostro_site.importer.database import import_database
from mostro_site.importer.schema import UnknownSchema, open_readonly, verify_schema
from mostro_site.importer.settings_toml import NSEC_ENV, SettingsFileError, SettingsImport, read_settings
from mostro_site.models import NodeSettings
from mostro_site.operator.services import audit_text, node_settings_update


class Command(BaseCommand):
    help = "Import a Rust mostrod's settings.toml and SQLite database (idempotent; --dry-run to preview)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--toml", metavar="SETTINGS_TOML", help="mostrod settings.toml (given as --settings)")
        parser.add_argument("--db", metavar="MOSTRO_DB", help="mostrod SQLite database (mostro.db)")
        parser.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")
        parser.add_argument(
            "--ignore-unknown-columns", action="store_true", help="import even if the tables have extra columns"
        )
        parser.add_argument("--write-env", metavar="PATH", help="append the mostrod nsec to this .env file (0600)")

    def handle(self, *args, **options) -> None:
        if not options["toml"] and not options["db"]:
            raise CommandError("Nothing to import: give --settings settings.toml and/or --db mostro.db.")
        dry_run = options["dry_run"]
        # Read and check everything first, so a bad file refuses before anything is written.
        settings_import = self._read_settings(options["toml"])
        conn = self._open_db(options["db"], options["ignore_unknown_columns"])
        self.stdout.write("DRY RUN: nothing is written.\n" if dry_run else "Importing.\n")
        if settings_import:
            self._import_settings(settings_import, dry_run=dry_run)
        if conn is not None:
            try:
                for report in import_database(conn, dry_run=dry_run):
                    self.stdout.write("\n".join(report.lines()))
            finally:
                conn.close()
        if settings_import:
            self._env_report(settings_import, options["write_env"], dry_run=dry_run)

    # --- reading ------------------------------------------------------------------------
    def _read_settings(self, path: str | None) -> SettingsImport | None:
        if not path:
            return None
        try:
            result = read_settings(Path(path))
        except SettingsFileError as exc:
            raise CommandError(str(exc)) from exc
        if not result.form.is_valid():
            problems = [
                f"  {name}: {' '.join(str(m) for m in messages)}" for name, messages in result.form.errors.items()
            ]
            raise CommandError(f"{path} holds values this node refuses:\n" + "\n".join(problems))
        return result

    def _open_db(self, path: str | None, allow_unknown_columns: bool):
        if not path:
            return None
        try:
            conn = open_readonly(Path(path))
            notes = verify_schema(conn, allow_unknown_columns=allow_unknown_columns)
        except UnknownSchema as exc:
            raise CommandError(f"Refusing {path}: {exc}") from exc
        for note in notes:
            self.stdout.write(f"note: {note}")
        return conn

    # --- settings -----------------------------------------------------------------------
    def _import_settings(self, result: SettingsImport, *, dry_run: bool) -> None:
        values = result.form.model_values()
        row = NodeSettings.objects.filter(pk=1).first() or NodeSettings(pk=1)
        changes = {name: value for name, value in values.items() if getattr(row, name) != value}
        self.stdout.write(f"node settings: {len(changes)} field(s) to change")
        for name, value in changes.items():
            before, after = audit_text(name, getattr(row, name)), audit_text(name, value)
            self.stdout.write(f"    {name}: {before or '(default)'} -> {after or '(default)'}")
        for note in result.notes:
            self.stdout.write(f"    note: {note}")
        if changes and not dry_run:
            node_settings_update(user=None, values=values)

    def _env_report(self, result: SettingsImport, write_env: str | None, *, dry_run: bool) -> None:
        self.stdout.write("\n# Environment-only settings for this node's .env (review before use):")
        for line in result.env_lines:
            self.stdout.write(line)
        if not result.nsec:
            self.stdout.write(f"# {NSEC_ENV}: not found in settings.toml or its .env; set it yourself.")
            return
        if not write_env:
            self.stdout.write(
                f"# {NSEC_ENV}: found in {result.nsec_source} (not shown). "
                "Add --write-env PATH to store it, or copy it yourself."
            )
            return
        if dry_run:
            self.stdout.write(f"# {NSEC_ENV}: would be appended to {write_env} (dry run).")
            return
        self._write_nsec(Path(write_env), result.nsec)

    def _write_nsec(self, path: Path, nsec: str) -> None:
        try:
            write_env_secret(path, NSEC_ENV, nsec)
        except EnvFileError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"# {NSEC_ENV}: appended to {path} (not shown).")
