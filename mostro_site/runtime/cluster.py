"""The django-q2 cluster (scheduler + workers) as forked child processes of the node.

It must start before anything opens gRPC channels or threads: forking a process that
already runs gRPC's threads can deadlock the child. The node therefore starts the cluster
first and only then talks to LND.
"""

import functools
import logging
import pydoc
import signal
from collections.abc import Iterator
from contextlib import contextmanager

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
        with persistent_connections(), slower_idle_poll(), pushes_skipped_in_forks():
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
