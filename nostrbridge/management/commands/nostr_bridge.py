"""`manage.py nostr_bridge`: the relay bridge on its own (relay pool, inbox consumer, outbox).

SIGTERM / SIGINT stop it gracefully (see `nostrbridge.bridge.runner`). Several instances may
run against one PostgreSQL database (with Redis as the channel layer); every inbound event is
still processed once.
"""

import asyncio
import signal

from django.core.management.base import BaseCommand

from mostro_site.config.event_loop import log_event_loop
from nostrbridge.bridge import BridgeOptions, run_bridge
from nostrbridge.bridge.polls import poll_options
from nostrbridge.event_settings import lnd_network_fetch
from nostrbridge.log_context import set_process_role
from nostrbridge.outbox_rounds import PublishPolicy


class Command(BaseCommand):
    help = "Connect to the configured relays and process Mostro messages until stopped."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--worker-id", default=None, help="lease owner name (default host:pid:nonce)")
        parser.add_argument("--publish-timeout", type=float, default=10.0, help="seconds to wait for a relay's OK")
        parser.add_argument(
            "--periodic-jobs",
            action="store_true",
            help="also run nostrbridge.jobs on timers (for a node without qcluster)",
        )
        parser.add_argument("--no-node-events", action="store_true", help="do not publish 38385 / 0 / 10002")
        parser.add_argument("--stats-interval", type=float, default=60.0, help="seconds between stats log lines")
        parser.add_argument("--grace", type=float, default=20.0, help="seconds in-flight work gets at shutdown")

    def handle(self, *args, **options) -> None:
        set_process_role("bridge")
        lnd_network_fetch()  # once per process, before any transaction
        bridge_options = BridgeOptions(
            worker_id=options["worker_id"],
            publish=PublishPolicy(timeout_s=options["publish_timeout"]),
            periodic_jobs=options["periodic_jobs"],
            node_events=not options["no_node_events"],
            shutdown_timeout_s=options["grace"],
            stats_every_s=options["stats_interval"],
            **poll_options(),
        )
        asyncio.run(self._run(bridge_options))
        self.stdout.write("STOPPED")

    async def _run(self, options: BridgeOptions) -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        log_event_loop(loop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        bridge = asyncio.create_task(run_bridge(stop=stop, options=options, ready=ready))
        ready_wait = asyncio.create_task(ready.wait())
        await asyncio.wait({bridge, ready_wait}, return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set():
            # Tests and supervisors wait for this line.
            self.stdout.write("READY")
            self.stdout.flush()
        ready_wait.cancel()
        await bridge
