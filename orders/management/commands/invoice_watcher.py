"""`manage.py invoice_watcher`: run the escrow watcher (`orders.escrow_watcher`) until SIGTERM/SIGINT."""

import asyncio
import signal

from django.core.management.base import BaseCommand

from nostrbridge.event_settings import lnd_network_fetch
from nostrbridge.log_context import set_process_role
from orders.escrow_watcher import POLL_SECONDS, EscrowWatcher


class Command(BaseCommand):
    help = "Follow the escrow hold invoices at LND and drive the orders when they are paid or canceled."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--poll-seconds", type=float, default=POLL_SECONDS)

    def handle(self, *args, **options) -> None:
        set_process_role("watcher")
        lnd_network_fetch()  # once per process, before any transaction
        asyncio.run(self._main(options["poll_seconds"]))

    async def _main(self, poll_seconds: float) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await EscrowWatcher(poll_seconds=poll_seconds).run(stop)
