"""Generate a Mostro identity, or show the npub of the configured one."""

from pathlib import Path

import coincurve
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from nostrbridge.node_identity import InvalidSecretKey, encode_npub, encode_nsec, parse_secret_key, xonly_pubkey_hex


class Command(BaseCommand):
    help = "Generate a new Mostro identity (prints the npub) or show the npub of the configured key."
    requires_system_checks: list = []  # must work precisely when the key is missing or wrong

    def add_arguments(self, parser):
        parser.add_argument("--generate", action="store_true", help="Create a new key pair.")
        parser.add_argument(
            "--write-env",
            metavar="PATH",
            help="With --generate: append MOSTRO_NSEC_PRIVKEY to this .env file (created with mode 0600).",
        )
        parser.add_argument("--show-nsec", action="store_true", help="With --generate: also print the nsec.")

    def handle(self, *args, **opts):
        if opts["generate"]:
            return self._generate(opts["write_env"], opts["show_nsec"])
        if opts["write_env"] or opts["show_nsec"]:
            raise CommandError("--write-env and --show-nsec only make sense with --generate.")
        if not settings.MOSTRO_NSEC_PRIVKEY:
            raise CommandError("MOSTRO_NSEC_PRIVKEY is not set; run with --generate.")
        try:
            secret = parse_secret_key(settings.MOSTRO_NSEC_PRIVKEY)
        except InvalidSecretKey as exc:
            raise CommandError(f"MOSTRO_NSEC_PRIVKEY {exc}") from exc
        pubkey = xonly_pubkey_hex(secret)
        self.stdout.write(f"npub: {encode_npub(pubkey)}\nhex:  {pubkey}")

    def _generate(self, env_path: str | None, show_nsec: bool) -> None:
        secret = coincurve.PrivateKey().secret
        pubkey = xonly_pubkey_hex(secret)
        self.stdout.write(f"npub: {encode_npub(pubkey)}\nhex:  {pubkey}")
        if env_path:
            path = Path(env_path)
            if path.exists() and "MOSTRO_NSEC_PRIVKEY=" in path.read_text():
                raise CommandError(f"{path} already holds MOSTRO_NSEC_PRIVKEY; refusing to overwrite a key.")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
            with path.open("a") as fh:
                fh.write(f"MOSTRO_NSEC_PRIVKEY={encode_nsec(secret)}\n")
            self.stdout.write(f"nsec written to {path}")
        if show_nsec:
            self.stdout.write(f"nsec: {encode_nsec(secret)}")
        if not env_path and not show_nsec:
            self.stdout.write("The secret was not stored; use --write-env PATH or --show-nsec to keep it.")
