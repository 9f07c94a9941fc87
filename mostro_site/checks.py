"""Configuration checks: a bad setting refuses to start with one clear line per problem.

Registered as Django system checks, so `manage.py check` lists them and every management
command that runs the node (mostrod, nostr_bridge, invoice_watcher, qcluster) refuses to start.
"""

import math
import re
from pathlib import Path

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from mostro_site.config import rules
from mostro_site.config.event_loop import CHOICES as LOOP_CHOICES

_FIAT = re.compile(r"^[A-Z]{3}$")


def _error(msg: str, hint: str, code: int) -> Error:
    return Error(msg, hint=hint, id=f"mostro.E{code:03d}")


def _check_keys() -> list[Error]:
    from nostrbridge.node_identity import InvalidSecretKey, parse_secret_key

    if not settings.MOSTRO_NSEC_PRIVKEY:
        return [_error("MOSTRO_NSEC_PRIVKEY is not set.", "Run `manage.py mostro_keys --generate`.", 1)]
    try:
        parse_secret_key(settings.MOSTRO_NSEC_PRIVKEY)
    except InvalidSecretKey as exc:
        return [_error(f"MOSTRO_NSEC_PRIVKEY is invalid: {exc}.", "Use an nsec1… key or 64 hex characters.", 2)]
    return []


def _check_ranges() -> list[Error]:
    s = settings
    errors = []
    if not 0.10 <= s.MOSTRO_DEV_FEE_PERCENTAGE <= 1.0:
        errors.append(
            _error(f"MOSTRO_DEV_FEE_PERCENTAGE={s.MOSTRO_DEV_FEE_PERCENTAGE} is outside 0.10–1.00.", "E.g. 0.30.", 3)
        )
    if not 0 <= s.MOSTRO_FEE <= 1:
        errors.append(_error(f"MOSTRO_FEE={s.MOSTRO_FEE} is outside 0–1.", "A fraction, e.g. 0.006.", 4))
    if not 0 <= s.MOSTRO_MAX_ROUTING_FEE <= 1:
        errors.append(_error(f"MOSTRO_MAX_ROUTING_FEE={s.MOSTRO_MAX_ROUTING_FEE} is outside 0–1.", "E.g. 0.002.", 5))
    if s.MOSTRO_PROTOCOL_VERSION not in (1, 2):
        errors.append(
            _error(
                f"MOSTRO_PROTOCOL_VERSION={s.MOSTRO_PROTOCOL_VERSION} is unknown.",
                "1 = NIP-59 gift wrap (kind 1059), 2 = NIP-44 kind 14.",
                6,
            )
        )
    if not 0 <= s.MOSTRO_POW <= 255:
        errors.append(_error(f"MOSTRO_POW={s.MOSTRO_POW} is outside 0–255.", "Leading zero bits of the id.", 7))
    if s.MOSTRO_MIN_PAYMENT_AMOUNT < 1 or s.MOSTRO_MAX_ORDER_AMOUNT < s.MOSTRO_MIN_PAYMENT_AMOUNT:
        errors.append(
            _error(
                f"MOSTRO_MIN_PAYMENT_AMOUNT={s.MOSTRO_MIN_PAYMENT_AMOUNT} / MOSTRO_MAX_ORDER_AMOUNT="
                f"{s.MOSTRO_MAX_ORDER_AMOUNT} must satisfy 1 ≤ min ≤ max.",
                "Satoshis.",
                8,
            )
        )
    for name in ("MOSTRO_EXPIRATION_HOURS", "MOSTRO_EXPIRATION_SECONDS", "LND_PAYMENT_ATTEMPTS"):
        if getattr(s, name) < 1:
            errors.append(_error(f"{name}={getattr(s, name)} must be at least 1.", "", 9))
    for field in rules.POLICY_BOUNDS:
        name = f"MOSTRO_{field.upper()}"
        message = rules.policy_error(field, getattr(s, name))
        if message:
            errors.append(_error(f"{name}={getattr(s, name)}: {message}", "docs/OPERATIONS.md §Policies.", 9))
    if s.LND_PAYMENT_RETRIES_INTERVAL < 1:
        errors.append(_error(f"LND_PAYMENT_RETRIES_INTERVAL={s.LND_PAYMENT_RETRIES_INTERVAL} must be ≥ 1.", "", 10))
    return errors


def _check_lists() -> list[Error]:
    errors = []
    relays = [r for r in settings.MOSTRO_RELAYS if r.strip()]
    if not relays:
        errors.append(_error("MOSTRO_RELAYS is empty.", "Comma-separated ws:// or wss:// URLs.", 11))
    for relay in relays:
        if not relay.strip().startswith(("ws://", "wss://")):
            errors.append(_error(f"MOSTRO_RELAYS entry {relay!r} is not a ws:// or wss:// URL.", "", 12))
    for code in settings.MOSTRO_FIAT_CURRENCIES_ACCEPTED:
        if code.strip() and not _FIAT.match(code.strip()):
            errors.append(
                _error(f"MOSTRO_FIAT_CURRENCIES_ACCEPTED entry {code!r} is not a 3-letter ISO 4217 code.", "", 13)
            )
    return errors


def _check_lnd_files() -> list[Error]:
    if settings.LIGHTNING_BACKEND != "lightning.lnd.LndClient":
        return []
    errors = []
    for name in ("LND_CERT_FILE", "LND_MACAROON_FILE"):
        path = getattr(settings, name)
        if not path:
            errors.append(_error(f"{name} is not set.", "Path to the LND node's file (Polar: <node>/...).", 14))
            continue
        try:
            Path(path).read_bytes()
        except OSError as exc:
            errors.append(_error(f"{name}={path} is unreadable: {exc.strerror}.", "", 15))
    return errors


def _check_price_providers() -> list[Error]:
    """El Toque needs its token and `nostr` its trusted nodes, or they would fail every tick."""
    from orders.pricing.providers import ELTOQUE, NOSTR, price_provider_parse, trusted_node_pubkeys

    kinds = set()
    for entry in settings.MOSTRO_PRICE_PROVIDERS:
        try:
            kinds.add(price_provider_parse(entry).kind)
        except ValueError:
            continue  # logged and skipped by the price job
    errors = []
    if ELTOQUE in kinds and not settings.MOSTRO_ELTOQUE_TOKEN.strip():
        errors.append(_error("The eltoque price provider needs MOSTRO_ELTOQUE_TOKEN.", "A Bearer API token.", 16))
    if NOSTR in kinds:
        try:
            trusted = trusted_node_pubkeys()
        except ValueError as exc:
            errors.append(_error(f"{exc}.", "Hex or npub pubkeys, comma-separated.", 17))
        else:
            if not trusted:
                errors.append(_error("The nostr price provider needs MOSTRO_PRICE_TRUSTED_NODES.", "Pubkeys.", 17))
    return errors


# Above this a poll is more likely a unit slip (milliseconds) than a choice: a lost nudge's
# message, or the operator's change of relays, would wait that long.
POLL_WARN_ABOVE_S = 3600.0


def _poll_settings() -> dict[str, object]:
    """docs/OPERATIONS.md §Idle wake-ups: each safety-net poll by its environment name."""
    s = settings
    return {
        "MOSTRO_BRIDGE_INBOX_POLL_SECONDS": s.MOSTRO_BRIDGE_INBOX_POLL_SECONDS,
        "MOSTRO_BRIDGE_PUBLISH_POLL_SECONDS": s.MOSTRO_BRIDGE_PUBLISH_POLL_SECONDS,
        "MOSTRO_BRIDGE_CONFIG_POLL_SECONDS": s.MOSTRO_BRIDGE_CONFIG_POLL_SECONDS,
        "MOSTRO_INVOICE_WATCHER_POLL_SECONDS": s.MOSTRO_INVOICE_WATCHER_POLL_SECONDS,
        "MOSTRO_Q_POLL_SECONDS": s.Q_CLUSTER.get("poll", 0.2),
    }


def _check_polls() -> list[CheckMessage]:
    """A poll of 0, below 0 or NaN never waits: its loop would spin a core instead of sleeping."""
    hint = "Seconds between two polls, above 0 (docs/OPERATIONS.md §Idle wake-ups)."
    problems: list[CheckMessage] = []
    for name, value in _poll_settings().items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(_error(f"{name}={value!r} is not a number.", hint, 20))
        elif not (math.isfinite(value) and value > 0):
            problems.append(_error(f"{name}={value} must be a finite number of seconds above 0.", hint, 20))
        elif value > POLL_WARN_ABOVE_S:
            problems.append(
                Warning(
                    f"{name}={value} is over an hour between polls.",
                    hint="Seconds, not milliseconds?",
                    id="mostro.W003",
                )
            )
    scheduler = settings.Q_CLUSTER.get("scheduler", True)
    if not isinstance(scheduler, bool):
        problems.append(_error(f"MOSTRO_Q_SCHEDULER={scheduler!r} is neither true nor false.", "true or false.", 21))
    return problems


def _check_event_loop() -> list[Error]:
    if settings.MOSTRO_EVENT_LOOP in LOOP_CHOICES:
        return []
    return [
        _error(
            f"MOSTRO_EVENT_LOOP={settings.MOSTRO_EVENT_LOOP!r} is neither uvloop nor asyncio.", "uvloop or asyncio.", 31
        )
    ]


def _check_secret_key() -> list[Warning]:
    from mostro_site.config.env import INSECURE_SECRET_KEY

    if settings.SECRET_KEY != INSECURE_SECRET_KEY:
        return []
    return [
        Warning(
            "DJANGO_SECRET_KEY is not set: Django signs sessions and CSRF tokens with a placeholder "
            "everyone can read in the source.",
            hint="`make run` generates one into .env; or `manage.py mostro_keys --generate --write-env .env`, "
            "or set DJANGO_SECRET_KEY to a long random string.",
            id="mostro.W002",
        )
    ]


def _check_reputation() -> list[Error]:
    """docs/PROTOCOL.md §Reputation: the environment's rules (lifetimes, the issuer key)."""
    from mostro_site.config.reputation import lifetime_errors
    from nostrbridge.node_identity import reputation_issuer_errors

    problems = lifetime_errors() + reputation_issuer_errors()
    return [_error(message, "See .env.example, reputation portability.", 18) for message in problems]


@register("mostro", Tags.database)
def check_reputation_trust_list(app_configs=None, databases=None, **kwargs) -> list:
    """The trust list's rules (docs/PROTOCOL.md §Trust-list): no key of the node's own or its
    issuer's, none whose imports carry another name. A database check: `mostrod` runs it after
    `migrate` and refuses to start."""
    from django.db import DatabaseError

    from mostro_site.models import ReputationIssuer
    from orders.services.reputation_issuers import issuer_entry_errors

    if not databases:
        return []
    errors = []
    try:
        issuers = list(ReputationIssuer.objects.prefetch_related("keys"))
    except DatabaseError:
        return []  # before `migrate`: nothing stored to check
    for issuer in issuers:
        keys = [key.pubkey for key in issuer.keys.all()]
        problems = issuer_entry_errors(name=issuer.name, keys=keys, instance=issuer)
        for message in (m for messages in problems.values() for m in messages):
            errors.append(_error(f"Trusted issuer “{issuer.name}”: {message}", "Fix it at /operator/settings/.", 19))
    return errors


def _check_bond() -> list[Error]:
    """The anti-abuse bond's environment, judged by the rules the settings page applies."""
    from mostro_site.config import env_node_config, rules

    config = env_node_config()
    values = {name: getattr(config, name) for name in rules.BOND_FIELDS}
    problems = rules.node_settings_errors(values)
    return [
        _error(f"MOSTRO_ANTI_ABUSE_{field.upper()}: {message}", "See .env.example, anti-abuse bond.", 30)
        for field, messages in problems.items()
        for message in messages
    ]


@register("mostro")
def check_mostro_settings(app_configs=None, **kwargs) -> list:
    errors: list[CheckMessage] = [
        *_check_keys(),
        *_check_ranges(),
        *_check_lists(),
        *_check_lnd_files(),
        *_check_polls(),
        *_check_event_loop(),
        *_check_price_providers(),
        *_check_secret_key(),
        *_check_reputation(),
        *_check_bond(),
    ]
    if settings.MOSTRO_LNURL_ALLOW_LOOPBACK and not settings.DEBUG and "test" not in (settings.SETTINGS_MODULE or ""):
        errors.append(Warning("MOSTRO_LNURL_ALLOW_LOOPBACK is on: for tests only.", id="mostro.W001"))
    return errors
