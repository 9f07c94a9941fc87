"""The django-q2 cluster (scheduler + workers) as forked child processes of the node.

It must start before anything opens gRPC channels or threads: forking a process that
already runs gRPC's threads can deadlock the child. The node therefore starts the cluster
first and only then talks to LND.
"""

import functools
import logging
import pydoc
import queue
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.reduction import ForkingPickler

import django_q.queues
from django import db
from django.conf import settings
from django.utils.module_loading import import_string

from orders.live import pushes_skipped_in_forks

logger = logging.getLogger(__name__)


# How long a cluster process keeps its database connection (CONN_MAX_AGE) instead of Django's
# default here, 0: a fresh connection for every unit of work.
CLUSTER_CONN_MAX_AGE_S = 300
# The idle poll of the node's own cluster. Every task it runs is queued on this machine (the
# release's payout by this very process, the schedules by the cluster's sentinel), so the
# broker's wake-up starts it at once; the poll only finds a retry whose lock expired, or a
# task a lost wake-up left queued. Five polls a second were 15 % of the cluster's CPU.
EMBEDDED_POLL_S = 2.0
# Queued tasks the node's pusher takes with one read (django-q2's `bulk`, 1 by default): a burst
# of payouts cost one SELECT of the queue each, plus the empty one after the last.
EMBEDDED_BULK = 4


# Tasks queued by the node's own code, besides the declared schedules (mostro_site/schedules.py).
QUEUED_TASKS = ("orders.services.payout.payout_start", "orders.bonds.payout.bond_pay")


def preload_job_modules() -> list[str]:
    """Import, before the cluster forks, every function its workers run and the Lightning client's
    module: each worker otherwise imported them at its first task (a tenth of a second or more
    per worker for the gRPC client and its stubs alone), and again in every worker the sentinel
    forks anew (`recycle`). Forked children inherit the modules. Imports only: no client, no
    gRPC channel and no thread is created here (a gRPC channel must not exist across the fork).
    Returns the dotted paths imported."""
    from mostro_site.schedules import declared_jobs

    names = sorted({job.func for job in declared_jobs()} | set(QUEUED_TASKS)) + [settings.LIGHTNING_BACKEND]
    for name in names:
        import_string(name)
    return names


def job_locate(path: str, forceload: bool = False) -> object:
    """`pydoc.locate` for django-q2's worker, which resolves a task's function from its dotted
    path before every task: `pydoc.locate` first tries the whole path as a module, a failed
    import that searches sys.path on disk every time (~1 % of the job cluster's CPU). A found
    function is remembered (the cluster never reloads a module); a miss is not."""
    if forceload:
        return pydoc.locate(path, forceload)
    try:
        return _located(path)
    except LookupError:
        return None


@functools.lru_cache(maxsize=256)
def _located(path: str) -> object:
    found = pydoc.locate(path)
    if found is None:
        raise LookupError(path)  # not cached: lru_cache keeps only returned values
    return found


class _PydocWithCachedLocate:
    """What `django_q.worker` sees as `pydoc`: `locate` is `job_locate`, anything else pydoc's."""

    locate = staticmethod(job_locate)

    def __getattr__(self, name: str) -> object:
        return getattr(pydoc, name)


def install_job_lookup_cache() -> None:
    """In a worker process, at its start (`mostro_site.ops.job_hooks.on_spawn`): never in the
    process that forks the cluster, nor in a synchronous cluster's (tests patch job functions).
    django-q2's worker calls `pydoc.locate` through its module's `pydoc` name (2.x)."""
    import django_q.worker

    django_q.worker.pydoc = _PydocWithCachedLocate()


@contextmanager
def persistent_connections() -> Iterator[None]:
    """Fork the cluster with CONN_MAX_AGE = CLUSTER_CONN_MAX_AGE_S in its processes' settings.

    django-q2 calls `close_old_connections()` before every broker poll (5 a second, idle or
    not), in the worker before every task and in the monitor before every acknowledgement:
    with CONN_MAX_AGE = 0 each call closed the connection and the next query opened a new one
    (on SQLite: the file, Django's ~40 SQL functions, the WAL pragmas). That was most of the
    idle cluster's CPU and a good part of each payout's. Connections still close after an
    error or once they are older than the limit. `Cluster.start()` forks the sentinel, which
    forks the pusher, workers and monitor, before it returns, so only the children see the
    setting; this process gets its own value back.
    """
    saved = {alias: db.connections.settings[alias].get("CONN_MAX_AGE", 0) for alias in db.connections.settings}
    for alias in saved:
        db.connections.settings[alias]["CONN_MAX_AGE"] = CLUSTER_CONN_MAX_AGE_S
    try:
        yield
    finally:
        for alias, value in saved.items():
            db.connections.settings[alias]["CONN_MAX_AGE"] = value


@contextmanager
def slower_idle_poll() -> Iterator[None]:
    """Fork the cluster polling every EMBEDDED_POLL_S at least (django-q2 reads `Conf.POLL` at
    each empty poll; only the forked children keep the value)."""
    from django_q.conf import Conf

    saved = Conf.POLL
    Conf.POLL = max(saved, EMBEDDED_POLL_S)
    try:
        yield
    finally:
        Conf.POLL = saved


class TaskQueue(django_q.queues.Queue):
    """django-q2's queue (same pipe, locks, counter and order) whose `put` writes the pickled
    task into the pipe itself, when the queue is bounded, instead of through multiprocessing's
    feeder thread: each put started that thread's wake-up (a lock, a condition, a GIL hand-over)
    for one small write. Bounded, the pipe never holds more than `maxsize` tasks and a reader
    (a worker) takes them whatever the writer does, so the write cannot wait on its own reader.
    An unbounded queue (the workers' results, written while a worker holds its timer's lock)
    keeps the feeder thread: a stalled reader there must not block the writer."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize=maxsize)
        self._direct = maxsize > 0

    def __getstate__(self) -> tuple:
        return (*super().__getstate__(), self._direct)

    def __setstate__(self, state: tuple) -> None:
        super().__setstate__(state[:-1])
        self._direct = state[-1]

    def put(self, obj: object, block: bool = True, timeout: float | None = None) -> None:
        if not self._direct:
            return super().put(obj, block, timeout)
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        if not self._sem.acquire(block, timeout):
            raise queue.Full
        try:
            data = ForkingPickler.dumps(obj)
            with self._wlock:
                self._writer.send_bytes(data)
        except BaseException:
            self._sem.release()  # nothing was queued
            raise
        self.size.increment(1)
        return None


@contextmanager
def lighter_task_path() -> Iterator[None]:
    """Fork the cluster with two per-task costs of django-q2 cut, in its processes only: the
    pusher takes up to EMBEDDED_BULK queued tasks per read (`Conf.BULK`, read at each poll) and
    puts them into the workers' queue without a feeder thread (`TaskQueue`: the sentinel builds
    its queues from `django_q.cluster.Queue`). django-q2's log lines keep their `gettext_lazy`:
    replacing the library's `_` saved ~22 µs a payout, not worth patching its modules."""
    import django_q.cluster
    from django_q.conf import Conf

    saved = (Conf.BULK, django_q.cluster.Queue)
    Conf.BULK = max(Conf.BULK, EMBEDDED_BULK)
    django_q.cluster.Queue = TaskQueue
    try:
        yield
    finally:
        Conf.BULK, django_q.cluster.Queue = saved


class JobCluster:
    def __init__(self) -> None:
        self._cluster = None

    def start(self) -> None:
        from django_q.brokers import get_broker
        from django_q.cluster import Cluster

        from mostro_site.runtime.job_broker import WakeableORM

        preload_job_modules()
        broker = get_broker()
        if isinstance(broker, WakeableORM):
            released = broker.release_claims()
            if released:
                logger.warning("job queue: %d task(s) held by a stopped cluster handed out again", released)
        # The children must not share this process's database connection.
        db.connections.close_all()
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        # Cluster() installs its own SIGTERM/SIGINT handlers; the node owns shutdown.
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        self._cluster = cluster = Cluster(broker)
        with persistent_connections(), slower_idle_poll(), lighter_task_path(), pushes_skipped_in_forks():
            cluster.start()
        logger.info("job cluster started (%s)", cluster.name)

    def stop(self) -> None:
        """Blocking: waits for running jobs to finish (call it in a thread from async code)."""
        if self._cluster is None:
            return
        cluster, self._cluster = self._cluster, None
        if cluster.sentinel is not None and cluster.sentinel.is_alive():
            cluster.stop()
        logger.info("job cluster stopped")

    @property
    def running(self) -> bool:
        return self._cluster is not None and self._cluster.sentinel is not None and self._cluster.sentinel.is_alive()
