"""`manage.py invoice_watcher`: run the escrow watcher (`orders.escrow_watcher`) until SIGTERM/SIGINT."""

import argparse
import asyncio
import math
import signal

from django import db
from django.core.management.base import BaseCommand

from mostro_site.config.event_loop import log_event_loop
from nostrbridge.event_settings import lnd_network_fetch
from nostrbridge.log_context import set_process_role
from orders.escrow_watcher import POLL_SECONDS, EscrowWatcher

# How long this process keeps a database connection instead of Django's default here, 0. The
# watcher runs `close_old_connections()` before every poll (once a second) so a broken or
# server-closed connection is replaced; with CONN_MAX_AGE = 0 that call closed a healthy one too,
# and on PostgreSQL every poll and every accepted escrow paid for a new connection (a server
# backend started, Django's session setup): most of the standalone watcher's CPU
# (docs/PERFORMANCE.md). The job cluster keeps its connections the same way.
WATCHER_CONN_MAX_AGE_S = 300


class Command(BaseCommand):
    help = "Follow the escrow hold invoices at LND and drive the orders when they are paid or canceled."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--poll-seconds", type=positive_seconds, default=POLL_SECONDS)

    def handle(self, *args, **options) -> None:
        set_process_role("watcher")
        keep_connections()
        lnd_network_fetch()  # once per process, before any transaction
        asyncio.run(self._main(options["poll_seconds"]))

    async def _main(self, poll_seconds: float) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        log_event_loop(loop)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await EscrowWatcher(poll_seconds=poll_seconds).run(stop)


def positive_seconds(text: str) -> float:
    """--poll-seconds: 0, below 0 or NaN would never wait (the rule of mostro.E020 for the setting)."""
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number of seconds above 0")
    return value


def keep_connections() -> None:
    """This process's connections live WATCHER_CONN_MAX_AGE_S (see there); set before any opens."""
    for alias in db.connections.settings:
        db.connections.settings[alias]["CONN_MAX_AGE"] = WATCHER_CONN_MAX_AGE_S
