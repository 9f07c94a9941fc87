"""`manage.py doctor`: the readiness checks of `/readyz`, explained for a person.

    manage.py doctor                        # configuration, then each check with what to do
    manage.py doctor --json                 # the same as /readyz's body
    manage.py doctor --accept-lnd-identity  # record the LND node answering now as this node's

Exit status 0 when the node is ready, 1 when a required check fails.
"""

import json

from django.core import checks
from django.core.management.base import BaseCommand, CommandError

from lightning import get_lightning_client
from lightning.errors import LightningError
from mostro_site.ops.lnd_identity import lnd_identity_accept
from mostro_site.ops.readiness import CheckResult, is_ready, run_checks


class Command(BaseCommand):
    help = "Check the node like /readyz does and say what to do about each failure."
    requires_system_checks: list = []  # a broken configuration is one of the things it reports

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print /readyz's JSON body instead")
        parser.add_argument(
            "--accept-lnd-identity",
            action="store_true",
            help="record the LND node answering now as the node this Mostro trades on (after a deliberate change)",
        )

    def handle(self, *args, **options) -> None:
        if options["accept_lnd_identity"]:
            self._accept_identity()
        results = run_checks()
        ready = is_ready(results)
        if options["json"]:
            body = {"status": "ok" if ready else "fail", "checks": {r.name: r.public() for r in results}}
            self.stdout.write(json.dumps(body, indent=2))
        else:
            self._configuration()
            for result in results:
                self._show(result)
            self._verdict(results, ready)
        if not ready:
            raise SystemExit(1)

    def _accept_identity(self) -> None:
        try:
            info = get_lightning_client().get_info()
        except LightningError as exc:
            raise CommandError(f"LND did not answer, nothing recorded: {exc.message}") from exc
        lnd_identity_accept(pubkey=info.pubkey, alias=info.alias, network=info.network)
        self.stdout.write(f"Recorded LND node {info.pubkey} ({info.alias}, {info.network}) as this node's.\n")

    def _configuration(self) -> None:
        problems = [m for m in checks.run_checks(include_deployment_checks=False) if m.level >= checks.ERROR]
        if not problems:
            self.stdout.write(self.style.SUCCESS("  ok    configuration") + "  every setting passes its check\n")
            return
        self.stdout.write(self.style.ERROR("  FAIL  configuration") + f"  {len(problems)} problem(s):\n")
        for message in problems:
            self.stdout.write(f"          {message.msg}\n")
            if message.hint:
                self.stdout.write(f"          → {message.hint}\n")

    def _show(self, result: CheckResult) -> None:
        if result.ok:
            label = self.style.SUCCESS("  ok  ")
        elif result.required:
            label = self.style.ERROR("  FAIL")
        else:
            label = self.style.WARNING("  warn")
        optional = "" if result.required else "  (optional: does not decide readiness)"
        self.stdout.write(f"{label}  {result.name:<13} {result.detail}{optional}\n")
        if not result.ok:
            self.stdout.write(f"          problem: {result.problem}\n")
            self.stdout.write(f"          → {result.advice}\n")

    def _verdict(self, results: list[CheckResult], ready: bool) -> None:
        if ready:
            self.stdout.write(self.style.SUCCESS("\nReady: /readyz answers 200.\n"))
            return
        failed = [r.name for r in results if r.required and not r.ok]
        self.stdout.write(self.style.ERROR(f"\nNot ready ({', '.join(failed)}): /readyz answers 503.\n"))
