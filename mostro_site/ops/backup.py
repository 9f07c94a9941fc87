"""Database backup and restore: SQLite's online backup API, or pg_dump / pg_restore.

A backup holds every order's hold-invoice preimage and the traders' data: it is written with
mode 600, and must be stored like the `.env` (docs/OPERATIONS.md §6). LND's own seed and
channel backup are LND's business and are not part of it.
"""

import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.db import DatabaseError, connection, connections
from django.utils import timezone

# A restore over a running node would pull the database from under it.
RUNNING_WITHIN = timedelta(seconds=60)
PG_TOOL_TIMEOUT_S = 3_600


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size_bytes: int
    engine: str


def default_name(engine: str) -> str:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return f"mostro-{stamp}.{'sqlite3' if engine == 'sqlite' else 'dump'}"


def _destination(dest: Path, engine: str) -> Path:
    path = dest / default_name(engine) if dest.is_dir() else dest
    if path.exists():
        raise BackupError(f"{path} exists; choose a new file name (a backup never overwrites one)")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def database_backup(dest: Path) -> BackupResult:
    engine = connection.vendor
    path = _destination(dest, engine)
    partial = path.with_name(path.name + ".partial")
    # Created 600 before any byte is written: the file holds preimages.
    partial.touch(mode=0o600, exist_ok=False)
    try:
        if engine == "sqlite":
            _sqlite_backup(Path(connection.settings_dict["NAME"]), partial)
        elif engine == "postgresql":
            _pg_dump(partial)
        else:
            raise BackupError(f"no backup method for the {engine} database")
        partial.rename(path)
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(path=path, size_bytes=path.stat().st_size, engine=engine)


def _sqlite_backup(source: Path, dest: Path) -> None:
    """Online backup: one consistent snapshot while the node keeps writing (WAL readers never block)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)  # all pages in one step, under one read transaction
        verdict = dst.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            raise BackupError(f"the copy failed its integrity check: {verdict}")
    finally:
        dst.close()
        src.close()


def database_restore(source: Path, *, force: bool = False) -> str:
    """Replace the database with `source`. Refuses while a node process reports itself alive."""
    if not source.is_file():
        raise BackupError(f"{source} is not a file")
    if not force:
        _refuse_if_running()
    engine = connection.vendor
    connections.close_all()
    if engine == "sqlite":
        _sqlite_restore(source, Path(connection.settings_dict["NAME"]))
    elif engine == "postgresql":
        _pg_restore(source)
    else:
        raise BackupError(f"no restore method for the {engine} database")
    connections.close_all()
    return engine


def _refuse_if_running() -> None:
    from mostro_site.ops.models import ProcessHeartbeat

    try:
        alive = list(
            ProcessHeartbeat.objects.filter(seen_at__gte=timezone.now() - RUNNING_WITHIN)
            .exclude(role="jobs")
            .values_list("role", "instance")
        )
    except DatabaseError:
        return  # no usable database (or no ops table yet): nothing can be running on it
    if alive:
        names = ", ".join(f"{role} {instance}" for role, instance in alive)
        raise BackupError(f"node processes reported in the last minute ({names}): stop them first (or --force)")


def _sqlite_restore(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        verdict = src.execute("PRAGMA integrity_check").fetchone()[0]
        tables = {row[0] for row in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if verdict != "ok" or "django_migrations" not in tables:
            raise BackupError(f"{source} is not a usable node backup (integrity: {verdict})")
        dst = sqlite3.connect(target, timeout=30)
        try:
            src.backup(dst)  # page by page into the live file, WAL included, under its write lock
        finally:
            dst.close()
    finally:
        src.close()


# --- PostgreSQL ---------------------------------------------------------------------------


def _pg_env() -> dict[str, str]:
    """libpq's variables: the password never appears on a command line (`ps` shows those)."""
    db = connection.settings_dict
    values = {
        "PGHOST": db.get("HOST") or "",
        "PGPORT": str(db.get("PORT") or ""),
        "PGUSER": db.get("USER") or "",
        "PGPASSWORD": db.get("PASSWORD") or "",
        "PGDATABASE": db["NAME"],
    }
    return {**os.environ, **{key: value for key, value in values.items() if value}}


def _major(version_text: str) -> int:
    """`pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)` → 15."""
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", version_text)
    if match is None:
        raise BackupError(f"cannot read a PostgreSQL version from {version_text!r}")
    return int(match.group(1))


def pg_versions(tool: str) -> tuple[int, int]:
    """(client tool major, server major)."""
    binary = shutil.which(tool)
    if binary is None:
        raise BackupError(f"{tool} is not installed: apt-get install postgresql-client")
    client = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True, timeout=30).stdout
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        server = int(cursor.fetchone()[0]) // 10_000
    return _major(client), server


def _check_pg_tool(tool: str) -> str:
    client, server = pg_versions(tool)
    if client != server:
        raise BackupError(
            f"{tool} is PostgreSQL {client} but the server is PostgreSQL {server}: install the matching client "
            f"(apt-get install postgresql-client-{server}) so the dump restores cleanly"
        )
    return shutil.which(tool) or tool


def _run_pg(command: list[str]) -> None:
    done = subprocess.run(command, env=_pg_env(), capture_output=True, text=True, timeout=PG_TOOL_TIMEOUT_S)
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: {done.stderr.strip()[-2000:]}")


def _pg_dump(dest: Path) -> None:
    binary = _check_pg_tool("pg_dump")
    _run_pg([binary, "--format=custom", "--no-owner", "--no-privileges", f"--file={dest}"])


def _pg_restore(source: Path) -> None:
    binary = _check_pg_tool("pg_restore")
    connections.close_all()
    _run_pg(
        [binary, "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
         f"--dbname={connection.settings_dict['NAME']}", str(source)]
    )  # fmt: skip
