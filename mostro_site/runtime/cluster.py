"""The django-q2 cluster (scheduler + workers) as forked child processes of the node.

It must start before anything opens gRPC channels or threads: forking a process that
already runs gRPC's threads can deadlock the child. The node therefore starts the cluster
first and only then talks to LND.
"""

import logging
import signal

from django import db

logger = logging.getLogger(__name__)


class JobCluster:
    def __init__(self) -> None:
        self._cluster = None

    def start(self) -> None:
        from django_q.brokers import get_broker
        from django_q.cluster import Cluster

        # The children must not share this process's database connection.
        db.connections.close_all()
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        # Cluster() installs its own SIGTERM/SIGINT handlers; the node owns shutdown.
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        self._cluster = cluster = Cluster(get_broker())
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
