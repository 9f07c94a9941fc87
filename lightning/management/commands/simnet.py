"""`manage.py simnet`: run the simulated Lightning network (see lightning.simnet)."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from lightning.simnet.server import SimnetConfig, run_simnet


class Command(BaseCommand):
    help = "Serve LND's gRPC API for simulated Lightning nodes on 127.0.0.1 (tests, demos, benchmarks)."
    # Needs no database and must start even when LND settings point elsewhere.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dir", required=True, help="where <node>/tls.cert, admin.macaroon, simnet.json go")
        parser.add_argument("--nodes", default="mostro,alice,bob", help="comma-separated node names")
        parser.add_argument("--base-port", type=int, default=0, help="first node's gRPC port (0: any free ports)")
        parser.add_argument("--control-port", type=int, default=0, help="control endpoint port (0: any free port)")
        parser.add_argument("--block-interval", type=float, default=600.0, help="seconds per block, 0 = on demand")
        parser.add_argument("--fee-base-msat", type=int, default=1000)
        parser.add_argument("--fee-ppm", type=int, default=1000)
        parser.add_argument("--balance-sats", type=int, default=10_000_000, help="each node's channel balance")
        parser.add_argument(
            "--state-interval",
            type=float,
            default=0.25,
            help="seconds between saves of DIR/simnet-state.json (loaded at start; 0: state in memory only)",
        )
        parser.add_argument("--host", default="127.0.0.1", help="gRPC interface (0.0.0.0: reachable from other hosts)")
        parser.add_argument(
            "--tls-extra-domain",
            action="append",
            default=[],
            help="another DNS name in the nodes' certificates, like LND's tlsextradomain (repeatable)",
        )

    def handle(self, *args: object, **options: Any) -> None:
        names = [n.strip() for n in options["nodes"].split(",") if n.strip()]
        config = SimnetConfig(
            directory=Path(options["dir"]).resolve(),
            node_names=names,
            base_port=options["base_port"],
            control_port=options["control_port"],
            block_interval=options["block_interval"],
            fee_base_msat=options["fee_base_msat"],
            fee_ppm=options["fee_ppm"],
            balance_sats=options["balance_sats"],
            host=options["host"],
            tls_extra_domains=tuple(options["tls_extra_domain"]),
            state_interval=options["state_interval"],
        )
        logging.getLogger("lightning.simnet").setLevel(logging.INFO)

        def ready(line: str) -> None:
            self.stdout.write(line)
            sys.stdout.flush()

        asyncio.run(run_simnet(config, ready=ready))
