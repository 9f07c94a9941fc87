"""`manage.py mostrod`: the all-in-one Mostro node (web + relay bridge + watcher + jobs).

    manage.py mostrod                 # the node, configured by the environment / .env
    manage.py mostrod --local         # plus a local relay and a simulated Lightning network

Startup: system checks (refuses on errors), migrations, job schedules, the job cluster, LND
GetInfo (refuses when unreachable, as mostrod does), one price refresh, then the web server, the relay bridge
and the invoice watcher on one asyncio loop, and a banner once the web port listens.
"""

import logging
import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.checks import Tags
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from mostro_site.config.env import BASE_DIR


class Command(BaseCommand):
    help = "Run the whole Mostro node in one process (add --local for the embedded default)."
    # Checks run in `_run_node`: the --local supervisor must work before a key exists.
    requires_system_checks: list = []
    requires_migrations_checks = False

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="web interface to bind (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8000, help="web port (default 8000)")
        parser.add_argument("--local", action="store_true", help="also run a local relay and simulated Lightning")
        parser.add_argument("--relay-port", type=int, default=7000, help="with --local: local relay port")
        parser.add_argument("--no-migrate", action="store_true", help="skip `migrate` at start")
        parser.add_argument("--no-cluster", action="store_true", help="do not run the django-q2 job cluster")
        parser.add_argument("--no-bridge", action="store_true", help="do not connect to relays")
        parser.add_argument("--no-watcher", action="store_true", help="do not follow hold invoices")
        parser.add_argument("--grace", type=float, default=10.0, help="seconds in-flight work gets at shutdown")

    def handle(self, *args, **options) -> None:
        if options["local"]:
            sys.exit(self._run_local(options))
        sys.exit(self._run_node(options))

    # --- the embedded default -----------------------------------------------------------
    def _run_local(self, options: dict) -> int:
        from mostro_site.runtime.local import LocalNode, local_options

        self._ensure_key()
        node_args = [
            f"--{name.replace('_', '-')}" for name in ("no_cluster", "no_bridge", "no_watcher") if options[name]
        ]
        node_args += ["--grace", str(options["grace"])]
        local = local_options(
            host=options["host"], port=options["port"], relay_port=options["relay_port"], node_args=node_args
        )
        return LocalNode(local, write=self._say).run()

    def _ensure_key(self) -> None:
        """The Nostr key and Django's secret key, generated into `.env` on first start (0600).

        This supervisor serves no page; the node it starts reads the file anew."""
        from mostro_site.management.commands.mostro_keys import ensure_django_secret_key

        env_file = Path(os.environ.get("MOSTRO_ENV_FILE", BASE_DIR / ".env"))
        if not settings.MOSTRO_NSEC_PRIVKEY:
            self._say(f"No Mostro key configured: generating one into {env_file}")
            call_command("mostro_keys", "--generate", "--write-env", str(env_file), stdout=self.stdout)
        elif ensure_django_secret_key(env_file):
            self._say(f"No Django secret key configured: generated one into {env_file}")

    # --- the node -----------------------------------------------------------------------
    def _run_node(self, options: dict) -> int:
        from mostro_site.config import node_config
        from mostro_site.management.commands.sync_schedules import sync_schedules
        from mostro_site.operator.lnstatus import lightning_status
        from mostro_site.runtime.node import NodeOptions, NodeRuntime
        from nostrbridge.event_settings import lnd_network_fetch
        from nostrbridge.log_context import set_process_role

        set_process_role("node")
        self.check(display_num_errors=False)
        _quiet_job_log()
        if not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        # Checks of what the database holds (the reputation trust list), once it is migrated.
        self.check(display_num_errors=False, tags=[Tags.database], databases=["default"])
        created, updated, deleted = sync_schedules()
        self._say(f"Job schedules: {created} created, {updated} updated, {deleted} removed")
        config = node_config(fresh=True)
        runtime = NodeRuntime(
            NodeOptions(
                host=options["host"],
                port=options["port"],
                cluster=not options["no_cluster"],
                bridge=not options["no_bridge"],
                watcher=not options["no_watcher"],
                grace_seconds=options["grace"],
            ),
            write=self._say,
            lightning=None,
            relays=config.relays,
            protocol_version=config.protocol_version,
        )
        # Fork the job cluster before gRPC starts its threads (see node/cluster.py).
        runtime.start_cluster()
        runtime.lightning = lightning_status()
        if not runtime.lightning.available:
            runtime.cluster.stop()
            raise CommandError(f"LND is unreachable ({runtime.lightning.error}); check LND_GRPC_HOST and the files.")
        try:
            _guard_lnd_identity(runtime.lightning)
        except Exception:
            runtime.cluster.stop()
            raise
        lnd_network_fetch()  # the network, once for the whole process (web, bridge, watcher)
        self._first_prices()
        return runtime.serve()

    def _first_prices(self) -> None:
        """One price tick before any message is read: the job cluster's first tick may be a
        minute away, and a market order sent the moment the node is up must be priced. Each
        provider has its total deadline; with none answering the order path fetches on demand."""
        from orders.pricing import prices_refresh

        counts = prices_refresh()
        self._say(
            f"Prices: {counts['currencies']} currencies from {counts['succeeded']} of {counts['polled']} providers"
        )

    def _say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()


def _guard_lnd_identity(lightning) -> None:
    """The boot guard: record the LND identity at first start; refuse another node while escrow
    is open on the recorded one, unless LND_ALLOW_NODE_CHANGE (docs/OPERATIONS.md)."""
    from mostro_site.ops.lnd_identity import NodeChangeRefused, lnd_node_guard

    try:
        lnd_node_guard(
            pubkey=lightning.pubkey,
            alias=lightning.alias,
            network=lightning.network,
            allow_change=settings.LND_ALLOW_NODE_CHANGE,
        )
    except NodeChangeRefused as exc:
        raise CommandError(str(exc)) from exc


def _quiet_job_log() -> None:
    """django-q logs every task at INFO under "django-q"; keep its warnings and errors only."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("django-q").setLevel(logging.WARNING)
