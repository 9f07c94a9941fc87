"""One asyncio loop for the whole node: daphne (web), relay bridge, invoice watcher.

Daphne runs Twisted on an asyncio loop; the bridge and the watcher are tasks on that same
loop, and the django-q2 cluster runs as forked children. Shutdown on SIGTERM/SIGINT goes
in order: stop intake (close the HTTP port, tell bridge and watcher to stop), let in-flight
work finish (bounded by a grace period), stop the job cluster, close the Lightning client,
stop the loop.
"""

# Daphne installs Twisted's asyncio reactor at import: it must come before anything that
# could import twisted.internet.reactor.
from daphne.server import Server  # isort:skip
from daphne.http_protocol import WebRequest  # isort:skip

import asyncio
import logging
import signal
import time
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.utils.module_loading import import_string
from twisted.internet import reactor as _twisted_reactor

from lightning import reset_lightning_client
from mostro_site.config.event_loop import log_event_loop, running_loop_name
from mostro_site.operator.lnstatus import LightningStatus
from mostro_site.runtime.banner import startup_banner
from mostro_site.runtime.cluster import JobCluster

logger = logging.getLogger(__name__)
# The installed reactor is a module attribute twisted does not type as an instance.
_REACTOR: Any = _twisted_reactor

SHUTDOWN_GRACE_SECONDS = 10.0
LISTEN_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class NodeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    cluster: bool = True
    bridge: bool = True
    watcher: bool = True
    grace_seconds: float = SHUTDOWN_GRACE_SECONDS


async def _cancel_leftover_tasks() -> None:
    """Helpers a service left running (e.g. channel-layer listeners) end here, not at GC."""
    current = asyncio.current_task()
    leftovers = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    for task in leftovers:
        task.cancel()
    if leftovers:
        await asyncio.wait(leftovers, timeout=2)


def node_application():
    """The project's ASGI application with the static files in front of it.

    Django's static handler serves from the finders whatever DEBUG is (the admin's CSS and
    scripts must load with DEBUG off); `collectstatic` and a reverse proxy are only needed when
    daphne runs without mostrod.
    """
    return ASGIStaticFilesHandler(import_string(settings.ASGI_APPLICATION))


class _NodeServer(Server):
    """Daphne's server, keeping the listening ports so shutdown can close them first."""

    def __init__(self, runtime: "NodeRuntime", *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.runtime = runtime
        self.ports: list = []
        self.listen_failure = ""

    def listen_success(self, port) -> None:
        self.ports.append(port)
        super().listen_success(port)

    def listen_error(self, failure) -> None:
        # Daphne would stop the reactor under our tasks; shut down in order instead.
        self.listen_failure = failure.getErrorMessage()
        logger.critical("cannot listen: %s", self.listen_failure)
        self.runtime.request_stop(exit_code=1)


class NodeRuntime:
    def __init__(
        self, options: NodeOptions, *, write, lightning: LightningStatus | None, relays, protocol_version: int
    ):
        self.options = options
        self.write = write
        self.lightning = lightning
        self.relays = tuple(relays)
        self.protocol_version = protocol_version
        self.cluster = JobCluster()
        self.exit_code = 0
        self.server: _NodeServer | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = False

    # --- lifecycle ----------------------------------------------------------------------
    def serve(self) -> int:
        """Blocks until shutdown. The cluster must already be started (see `start_cluster`)."""
        application = node_application()
        endpoint = f"tcp:port={self.options.port}:interface={self.options.host}"
        self.server = _NodeServer(
            self, application, endpoints=[endpoint], signal_handlers=False, ready_callable=self._on_ready
        )
        try:
            self.server.run()
        finally:
            self.cluster.stop()  # no-op after a clean shutdown
        return self.exit_code

    def start_cluster(self) -> None:
        if self.options.cluster:
            self.cluster.start()

    def request_stop(self, exit_code: int = 0) -> None:
        self.exit_code = self.exit_code or exit_code
        if self._stopping:
            logger.warning("second stop request: stopping the loop now")
            _REACTOR.stop()
            return
        self._stopping = True
        if self._stop is not None:
            self._stop.set()

    def _lightning(self) -> LightningStatus:
        assert self.lightning is not None, "mostrod checks LND before serving"
        return self.lightning

    def _running_server(self) -> "_NodeServer":
        assert self.server is not None, "serve() creates the server before the loop runs"
        return self.server

    def _stop_event(self) -> asyncio.Event:
        assert self._stop is not None, "_on_ready() creates it before the loop runs"
        return self._stop

    def _on_ready(self) -> None:
        """Runs just before the loop starts (daphne's ready callable)."""
        loop = asyncio.get_event_loop()
        log_event_loop(loop)
        self._stop = asyncio.Event()
        if self._stopping:
            self._stop.set()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.create_task(self._main())

    async def _main(self) -> None:
        intake_stop = asyncio.Event()
        tasks: dict[str, asyncio.Task] = {}
        try:
            tasks = self._start_services(intake_stop)
            if await self._wait_listening():
                self.write(self._banner())
                await self._until_stop_or_failure(tasks)
        except Exception:  # noqa: BLE001 - last-resort guard: the loop must never outlive its services
            logger.exception("node supervisor failed; shutting down")
            self.exit_code = 1
        finally:
            try:
                await self._shutdown(intake_stop, tasks)
            finally:
                _REACTOR.stop()

    # --- services -----------------------------------------------------------------------
    def _start_services(self, intake_stop: asyncio.Event) -> dict[str, asyncio.Task]:
        tasks = {}
        if self.options.bridge:
            from nostrbridge.bridge import run_bridge

            tasks["relay bridge"] = asyncio.create_task(run_bridge(stop=intake_stop, options=self._bridge_options()))
        if self.options.watcher:
            from orders.escrow_watcher import EscrowWatcher

            # A number: text left by the settings' reader refused the start (mostro.E020).
            poll_s = cast(float, settings.MOSTRO_INVOICE_WATCHER_POLL_SECONDS)
            tasks["invoice watcher"] = asyncio.create_task(EscrowWatcher(poll_seconds=poll_s).run(intake_stop))
        return tasks

    def _bridge_options(self):
        from nostrbridge.bridge import BridgeOptions
        from nostrbridge.bridge.polls import poll_options

        # Without the job cluster, the bridge runs the node-event jobs on its own timers.
        return BridgeOptions(
            shutdown_timeout_s=self.options.grace_seconds, periodic_jobs=not self.options.cluster, **poll_options()
        )

    async def _wait_listening(self) -> bool:
        """True once the web port listens; False on a stop request or a listen failure."""
        deadline = time.monotonic() + LISTEN_TIMEOUT_SECONDS
        while not self._running_server().listening_addresses:
            if self._stop_event().is_set():  # a signal, or listen_error already asked to stop
                return False
            if time.monotonic() > deadline:
                logger.critical("the web port is not listening after %.0f s", LISTEN_TIMEOUT_SECONDS)
                self.request_stop(exit_code=1)
                return False
            await asyncio.sleep(0.05)
        return True

    async def _until_stop_or_failure(self, tasks: dict[str, asyncio.Task]) -> None:
        stop_wait = asyncio.create_task(self._stop_event().wait())
        done, _ = await asyncio.wait([stop_wait, *tasks.values()], return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        for name, task in tasks.items():
            if task in done:
                # A service that ends on its own is a failure: the node cannot run without it.
                error = task.exception() if not task.cancelled() else None
                logger.error("%s stopped unexpectedly: %r; shutting the node down", name, error, exc_info=error)
                self.request_stop(exit_code=1)

    async def _shutdown(self, intake_stop: asyncio.Event, tasks: dict[str, asyncio.Task]) -> None:
        grace = self.options.grace_seconds
        logger.info("shutting down: closing the web port and stopping relay intake")
        for port in self._running_server().ports:
            port.stopListening()
        intake_stop.set()
        if tasks:
            # The bridge bounds its own shutdown by the same grace; allow it a moment more.
            _, pending = await asyncio.wait(tasks.values(), timeout=grace + 2)
            for task in pending:
                logger.warning("a service did not stop within %.0f s; cancelling it", grace)
                task.cancel()
        await self._drain_http(grace)
        if self.cluster.running:
            logger.info("stopping the job cluster (running jobs finish first)")
            await asyncio.to_thread(self.cluster.stop)
        reset_lightning_client()
        await _cancel_leftover_tasks()
        logger.info("node stopped")

    async def _drain_http(self, grace: float) -> None:
        """Wait for HTTP requests being answered; websockets and idle connections do not count."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            busy = [
                details
                for protocol, details in self._running_server().connections.items()
                if isinstance(protocol, WebRequest)
                and details.get("application_instance") is not None
                and not details["application_instance"].done()
                and not details.get("disconnected")
            ]
            if not busy:
                return
            await asyncio.sleep(0.05)

    def _banner(self) -> str:
        host, port = self._running_server().listening_addresses[0]
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - display only
        return startup_banner(
            base_url=f"http://{shown}:{port}",
            relays=self.relays,
            lightning=self._lightning(),
            bridge=self.options.bridge,
            protocol_version=self.protocol_version,
            event_loop=running_loop_name(asyncio.get_running_loop()),
        )
