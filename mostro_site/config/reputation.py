"""Reputation portability settings (upstream_after_0185.md §3.5).

The switches, lifetimes and the dedicated issuer key come from the environment
(`MOSTRO_REPUTATION_*`); the trust list (issuer names and keys) lives in the database and is
managed from the operator's settings page (`mostro_site.models.ReputationIssuer`).
"""

import functools
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError

from mostro_site.config.nostr_keys import InvalidSecretKey, parse_secret_key, xonly_pubkey_hex

# mostrod's bounds: an attestation a destination accepts lives at most 30 days; an issuer
# gives its own at most 7 (the lifetime mostro-core's builder accepts).
MAX_IMPORT_LIFETIME_SECONDS = 30 * 86_400
MAX_EXPORT_LIFETIME_SECONDS = 7 * 86_400


@dataclass(frozen=True)
class ReputationSettings:
    import_enabled: bool
    import_max_lifetime_seconds: int
    export_enabled: bool
    export_lifetime_seconds: int
    issuer_secret: bytes | None  # None: unset or invalid (the system check says which)
    issuer_pubkey: str | None

    @property
    def exporting(self) -> bool:
        """Export is on and its key is loaded: the only state in which attestations are signed."""
        return self.export_enabled and self.issuer_secret is not None


def reputation_settings() -> ReputationSettings:
    s = settings
    secret = _secret_or_none(s.MOSTRO_REPUTATION_ISSUER_SK)
    return ReputationSettings(
        import_enabled=s.MOSTRO_REPUTATION_IMPORT_ENABLED,
        import_max_lifetime_seconds=s.MOSTRO_REPUTATION_IMPORT_MAX_LIFETIME_SECONDS,
        export_enabled=s.MOSTRO_REPUTATION_EXPORT_ENABLED,
        export_lifetime_seconds=s.MOSTRO_REPUTATION_EXPORT_LIFETIME_SECONDS,
        issuer_secret=secret,
        issuer_pubkey=None if secret is None else _pubkey(secret),
    )


@functools.lru_cache(maxsize=4)
def _secret_or_none(text: str) -> bytes | None:
    if not text.strip():
        return None
    try:
        return parse_secret_key(text)
    except InvalidSecretKey:
        return None


@functools.lru_cache(maxsize=4)
def _pubkey(secret: bytes) -> str:
    return xonly_pubkey_hex(secret)


def node_pubkey_or_none() -> str | None:
    """The node's own key, if MOSTRO_NSEC_PRIVKEY is valid (its own system check reports it)."""
    secret = _secret_or_none(settings.MOSTRO_NSEC_PRIVKEY)
    return None if secret is None else _pubkey(secret)


def env_errors() -> list[str]:
    """The environment's rules (§3.5): lifetimes in range, an issuer key that loads when export is
    on, and never the node's own key."""
    s = settings
    errors = []
    if not 0 < s.MOSTRO_REPUTATION_IMPORT_MAX_LIFETIME_SECONDS <= MAX_IMPORT_LIFETIME_SECONDS:
        errors.append(
            f"MOSTRO_REPUTATION_IMPORT_MAX_LIFETIME_SECONDS={s.MOSTRO_REPUTATION_IMPORT_MAX_LIFETIME_SECONDS} "
            f"must be in 1..{MAX_IMPORT_LIFETIME_SECONDS}."
        )
    if not 0 < s.MOSTRO_REPUTATION_EXPORT_LIFETIME_SECONDS <= MAX_EXPORT_LIFETIME_SECONDS:
        errors.append(
            f"MOSTRO_REPUTATION_EXPORT_LIFETIME_SECONDS={s.MOSTRO_REPUTATION_EXPORT_LIFETIME_SECONDS} "
            f"must be in 1..{MAX_EXPORT_LIFETIME_SECONDS}."
        )
    key_text = s.MOSTRO_REPUTATION_ISSUER_SK.strip()
    if key_text and _secret_or_none(key_text) is None:
        errors.append("MOSTRO_REPUTATION_ISSUER_SK is invalid: use an nsec1… key or 64 hex characters.")
    elif s.MOSTRO_REPUTATION_EXPORT_ENABLED and not key_text:
        errors.append("MOSTRO_REPUTATION_EXPORT_ENABLED needs MOSTRO_REPUTATION_ISSUER_SK, a key of its own.")
    issuer = reputation_settings().issuer_pubkey
    if issuer is not None and issuer == node_pubkey_or_none():
        errors.append("MOSTRO_REPUTATION_ISSUER_SK must not be the node's key (MOSTRO_NSEC_PRIVKEY).")
    return errors


def trusted_issuer_keys() -> dict[str, str]:
    """Trust list: key hex → issuer name, in entry then key order; empty before `migrate`."""
    from mostro_site.models import ReputationIssuerKey

    try:
        rows = ReputationIssuerKey.objects.select_related("issuer").order_by("issuer__name", "pubkey")
        return {row.pubkey: row.issuer.name for row in rows}
    except DatabaseError:
        return {}
