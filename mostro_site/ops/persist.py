"""Each process's metric increments, added to the database; and its heartbeat.

Why the database and not prometheus-client's multiprocess mode: the node's processes need not
share a host or a directory (compose runs each bridge in its own container, where pids
collide), they restart (a counter must survive that), and the job cluster forks and recycles
workers. Every process keeps prometheus-client's in-memory counters; a daemon thread adds what
changed since its last flush to `MetricSeries` rows (one upsert per changed sample, one
transaction, every MOSTRO_METRICS_FLUSH_SECONDS), and once more at exit. `/metrics` then serves
the sums, plus state gauges read from the database at scrape time (`state_metrics`).

A process killed with SIGKILL loses at most one interval of increments. A fork copies the
parent's values: the child takes them as its starting point (`rebase`), so nothing counts twice.
Forks happen before the thread starts (the job cluster is forked first in `mostrod`) or from
processes that never run it (django-q2's sentinel); the flusher holds the metric locks for
microseconds every few seconds, so a fork at that moment is not a practical risk.
"""

import atexit
import json
import logging
import multiprocessing.util
import os
import socket
import threading
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry

from mostro_site.ops.models import MetricSeries, ProcessHeartbeat
from nostrbridge.log_context import process_role

logger = logging.getLogger(__name__)

PREFIX = "mostro_"
# Sample suffixes that are counters (monotonic): what the database sums. `_created` and gauges stay local.
COUNTED_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
# Serving processes report themselves. The job cluster's heartbeat is a scheduled job instead
# (`mostro_site.ops.jobs`): live workers alone do not prove that the scheduler runs.
HEARTBEAT_ROLES = frozenset({"web", "bridge", "watcher", "node"})
HEARTBEAT_KEEP = timedelta(days=1)
PRUNE_EVERY_TICKS = 360


def labels_key(labels: dict[str, str]) -> str:
    return json.dumps(labels, sort_keys=True, separators=(",", ":"))


Sample = tuple[str, str]  # (sample name, labels key)


def counted_samples(registry: CollectorRegistry = REGISTRY) -> dict[Sample, tuple[float, Sample]]:
    """Every `mostro_` counter sample of this process: value, and the series it belongs to.

    A histogram's series (its label set without `le`) is written whole when any of its samples
    changed, so the database never holds a histogram with some buckets missing.
    """
    values = {}
    for family in registry.collect():
        suffixes = COUNTED_SUFFIXES.get(family.type)
        if suffixes is None or not family.name.startswith(PREFIX):
            continue
        for sample in family.samples:
            if sample.name.endswith(suffixes):
                series = (family.name, labels_key({k: v for k, v in sample.labels.items() if k != "le"}))
                values[(sample.name, labels_key(sample.labels))] = (sample.value, series)
    return values


def metric_rows_add(rows: list[tuple[str, str, float]]) -> None:
    """Add each (name, labels, delta) to its row, creating it (one statement per row, one transaction)."""
    table = connection.ops.quote_name(MetricSeries._meta.db_table)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    # ON CONFLICT … DO UPDATE exists on SQLite ≥ 3.24 and PostgreSQL; two processes adding to the
    # same row serialise on it and both increments count. Identifiers come from model metadata.
    sql = (
        f"INSERT INTO {table} (name, labels, value, updated_at) VALUES (%s, %s, %s, %s) "  # noqa: S608
        f"ON CONFLICT (name, labels) DO UPDATE SET value = {table}.value + excluded.value, "
        "updated_at = excluded.updated_at"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, [(name, labels, delta, now) for name, labels, delta in rows])


class MetricsPersister:
    """Turns this process's cumulative values into increments for the database."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._flushed: dict[Sample, float] | None = {}

    def rebase(self) -> None:
        """Count from the current values on (a forked child: the parent flushes its own)."""
        with self._lock:
            self._flushed = {key: value for key, (value, _) in counted_samples(self._registry).items()}

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._flushed = None  # the child rebases before counting anything

    def flush(self) -> int:
        """Write what changed since the last flush; returns the number of rows touched.

        A sample seen for the first time is written even at 0, so a histogram's buckets are
        complete. A failed write keeps the increments for the next flush.
        """
        with self._lock:
            current = counted_samples(self._registry)
            values = {key: value for key, (value, _) in current.items()}
            if self._flushed is None:
                self._flushed = values
                return 0
            flushed = self._flushed
            changed = {series for key, (value, series) in current.items() if flushed.get(key) != value}
            rows = [
                (name, labels, value - flushed.get((name, labels), 0.0))
                for (name, labels), (value, series) in current.items()
                if series in changed
            ]
            if rows:
                metric_rows_add(rows)
            self._flushed = values
            return len(rows)


def heartbeat_touch(*, role: str, instance: str, host: str = "", pid: int = 0) -> None:
    now = timezone.now()
    updated = ProcessHeartbeat.objects.filter(instance=instance).update(role=role, seen_at=now, host=host, pid=pid)
    if not updated:
        ProcessHeartbeat.objects.get_or_create(
            instance=instance, defaults={"role": role, "host": host, "pid": pid, "started_at": now, "seen_at": now}
        )


def heartbeats_prune() -> int:
    return ProcessHeartbeat.objects.filter(seen_at__lt=timezone.now() - HEARTBEAT_KEEP).delete()[0]


def heartbeat_file_touch() -> None:
    """MOSTRO_HEARTBEAT_FILE: a file whose age says "alive and reaching the database", for
    container and systemd probes of processes without an HTTP port (deploy/healthcheck.py)."""
    path = settings.MOSTRO_HEARTBEAT_FILE
    if path:
        try:
            Path(path).touch()
        except OSError as exc:
            logger.warning("cannot touch the heartbeat file %s: %s", path, exc)


def process_instance() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


PERSISTER = MetricsPersister()


class PersisterThread:
    """Flushes every `interval` seconds; writes this process's heartbeat if it has a serving role."""

    def __init__(self, persister: MetricsPersister) -> None:
        self.persister = persister
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ticks = 0
        self._exit_hooked = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, interval_s: float) -> None:
        if self.running or interval_s <= 0:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), name="metrics-flush", daemon=True)
        self._thread.start()
        if not self._exit_hooked:
            self._exit_hooked = True
            atexit.register(self.final_flush)
            # django-q2 workers end through multiprocessing, which skips atexit but runs these.
            multiprocessing.util.Finalize(None, self.final_flush, exitpriority=10)

    def after_fork(self) -> None:
        self._thread = None
        self._exit_hooked = False

    def _run(self, interval_s: float) -> None:
        self.tick()
        while not self._stop.wait(interval_s):
            self.tick()

    def tick(self) -> None:
        try:
            self.persister.flush()
            role = process_role()
            if role in HEARTBEAT_ROLES:
                heartbeat_touch(role=role, instance=process_instance(), host=socket.gethostname(), pid=os.getpid())
            self._ticks += 1
            if self._ticks % PRUNE_EVERY_TICKS == 0:
                heartbeats_prune()
        except DatabaseError as exc:
            logger.warning("could not store metrics (kept for the next try): %s", exc)
        else:
            heartbeat_file_touch()
        finally:
            connection.close()

    def final_flush(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        try:
            self.persister.flush()
        except DatabaseError as exc:
            logger.warning("could not store the last metrics at exit: %s", exc)


FLUSHER = PersisterThread(PERSISTER)


def _after_fork_in_child() -> None:
    PERSISTER.after_fork()
    FLUSHER.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def start_for_process() -> None:
    """Start the flusher (app ready, or a django-q2 worker once spawned); 0 s disables it (tests)."""
    if PERSISTER._flushed is None:
        PERSISTER.rebase()
    FLUSHER.start(settings.MOSTRO_METRICS_FLUSH_SECONDS)
