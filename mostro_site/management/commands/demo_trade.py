"""`manage.py demo_trade`: watch a complete trade go through the local node.

Run it next to `make run` (or `manage.py mostrod --local`): two simulated traders, Alice and
Bob, with their own keys, relay connections and simnet Lightning wallets, trade 10,000 sats
for 10 USD through the local relay, while the admin shows the order moving.
"""

import asyncio
import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from lightning.lnd import LndClient
from mostro_site.config import node_config
from mostro_site.runtime.demo.script import DemoSetup, DemoTerms, DemoTrade
from mostro_site.runtime.demo.trader import DemoFailed
from mostro_site.runtime.local import STATE_FILE
from nostrbridge.node_identity import node_pubkey


class Command(BaseCommand):
    help = "Run a full sell-order trade between two simulated traders against the running local node."
    # The traders use their own simnet wallets: the node's LND settings live in the node's process.
    requires_system_checks: list = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("--relay", help="relay URL (default: the local node's, from var/local.json)")
        parser.add_argument("--simnet", help="simnet.json of the simulated network (default: the local node's)")
        parser.add_argument("--amount", type=int, default=10_000, help="sats Alice sells (default 10000)")
        parser.add_argument("--fiat-code", help="default: the first accepted currency, or USD")
        parser.add_argument("--fiat-amount", type=int, default=10)
        parser.add_argument("--pause", type=float, default=1.5, help="seconds between steps, to follow in the admin")
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each reply")

    def handle(self, *args, **options) -> None:
        state = self._local_state()
        relay = options["relay"] or state.get("relay")
        manifest_path = options["simnet"] or state.get("simnet_manifest")
        if not relay or not manifest_path:
            raise CommandError("Start the local node first (`make run`), or pass --relay and --simnet.")
        manifest = json.loads(Path(manifest_path).read_text())
        config = node_config(fresh=True)
        terms = DemoTerms(
            amount_sats=options["amount"],
            fiat_code=options["fiat_code"] or (config.fiat_currencies_accepted or ("USD",))[0],
            fiat_amount=options["fiat_amount"],
        )
        setup = DemoSetup(
            relay_url=relay,
            node_pubkey=node_pubkey(),
            protocol_version=config.protocol_version,
            web_url=state.get("web", "http://127.0.0.1:8000"),
            step_timeout=options["timeout"],
            pause=options["pause"],
        )
        wallets = {name: _wallet(manifest[name]) for name in ("alice", "bob")}
        self.stdout.write(f"Demo trade through {relay}: Alice sells, Bob buys (simnet wallets).")
        try:
            demo = DemoTrade(setup, alice_wallet=wallets["alice"], bob_wallet=wallets["bob"], write=self._say)
            order_id = asyncio.run(demo.run(terms))
        except DemoFailed as exc:
            raise CommandError(f"Demo stopped: {exc}") from exc
        except OSError as exc:
            raise CommandError(f"Cannot reach the relay at {relay} ({exc}); is the local node running?") from exc
        finally:
            for wallet in wallets.values():
                wallet.close()
        self._say(f"Done. Order {order_id}: {setup.web_url}/admin/orders/order/{order_id}/change/")

    def _local_state(self) -> dict:
        path = Path(settings.VAR_DIR) / STATE_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    def _say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()


def _wallet(node: dict) -> LndClient:
    return LndClient(host=node["grpc"], cert_file=node["tls_cert"], macaroon_file=node["macaroon"])
