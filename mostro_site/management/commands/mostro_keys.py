"""Generate a Mostro identity, or show the npub of the configured one."""

import os
import secrets
from pathlib import Path

import coincurve
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mostro_site.config.env import EnvFileError, env_file_has, write_env_secret
from nostrbridge.node_identity import InvalidSecretKey, encode_npub, encode_nsec, parse_secret_key, xonly_pubkey_hex


class Command(BaseCommand):
    help = "Generate a new Mostro identity (prints the npub) or show the npub of the configured key."
    requires_system_checks: list = []  # must work precisely when the key is missing or wrong

    def add_arguments(self, parser):
        parser.add_argument("--generate", action="store_true", help="Create a new key pair.")
        parser.add_argument(
            "--write-env",
            metavar="PATH",
            help="With --generate: append MOSTRO_NSEC_PRIVKEY (and a DJANGO_SECRET_KEY if the file has none) "
            "to this .env file; the file is made 0600.",
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
            try:
                write_env_secret(path, "MOSTRO_NSEC_PRIVKEY", encode_nsec(secret))
            except EnvFileError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"nsec written to {path}")
            if ensure_django_secret_key(path):
                self.stdout.write(f"DJANGO_SECRET_KEY written to {path}")
        if show_nsec:
            self.stdout.write(f"nsec: {encode_nsec(secret)}")
        if not env_path and not show_nsec:
            self.stdout.write("The secret was not stored; use --write-env PATH or --show-nsec to keep it.")


def ensure_django_secret_key(path: Path) -> bool:
    """Give the node its own Django secret key in `path`, unless one is set there or in the
    environment. True when a key was written."""
    if os.environ.get("DJANGO_SECRET_KEY") or env_file_has(path, "DJANGO_SECRET_KEY"):
        return False
    # URL-safe characters only: django-environ reads a value starting with "$" as a reference
    # to another variable, and "#" may start a comment.
    write_env_secret(path, "DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    return True
