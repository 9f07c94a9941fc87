"""Reputation portability settings (docs/PROTOCOL.md §Reputation).

The switches, lifetimes and the issuer key's text come from the environment
(`MOSTRO_REPUTATION_*`); the key itself is loaded by `nostrbridge.node_identity`. The trust list
(issuer names and keys) lives in the database, managed from the operator's settings page
(`mostro_site.models.ReputationIssuer`).
"""

from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError

# mostrod's bounds: a destination accepts attestations living at most 30 days; an issuer gives
# its own at most 7 (the lifetime an attestation builder accepts).
MAX_IMPORT_LIFETIME_SECONDS = 30 * 86_400
MAX_EXPORT_LIFETIME_SECONDS = 7 * 86_400


@dataclass(frozen=True)
class ReputationSettings:
    import_enabled: bool
    import_max_lifetime_seconds: int
    export_enabled: bool
    export_lifetime_seconds: int
    issuer_secret_text: str  # nsec or hex; "" when unset


def reputation_settings() -> ReputationSettings:
    s = settings
    return ReputationSettings(
        import_enabled=s.MOSTRO_REPUTATION_IMPORT_ENABLED,
        import_max_lifetime_seconds=s.MOSTRO_REPUTATION_IMPORT_MAX_LIFETIME_SECONDS,
        export_enabled=s.MOSTRO_REPUTATION_EXPORT_ENABLED,
        export_lifetime_seconds=s.MOSTRO_REPUTATION_EXPORT_LIFETIME_SECONDS,
        issuer_secret_text=s.MOSTRO_REPUTATION_ISSUER_SK.strip(),
    )


def lifetime_errors() -> list[str]:
    config = reputation_settings()
    errors = []
    if not 0 < config.import_max_lifetime_seconds <= MAX_IMPORT_LIFETIME_SECONDS:
        errors.append(
            f"MOSTRO_REPUTATION_IMPORT_MAX_LIFETIME_SECONDS={config.import_max_lifetime_seconds} "
            f"must be in 1..{MAX_IMPORT_LIFETIME_SECONDS}."
        )
    if not 0 < config.export_lifetime_seconds <= MAX_EXPORT_LIFETIME_SECONDS:
        errors.append(
            f"MOSTRO_REPUTATION_EXPORT_LIFETIME_SECONDS={config.export_lifetime_seconds} "
            f"must be in 1..{MAX_EXPORT_LIFETIME_SECONDS}."
        )
    return errors


def trusted_issuer_keys() -> dict[str, str]:
    """Trust list: key hex → issuer name, by issuer name then key; empty before `migrate`."""
    from mostro_site.models import ReputationIssuerKey

    try:
        rows = ReputationIssuerKey.objects.select_related("issuer").order_by("issuer__name", "pubkey")
        return {row.pubkey: row.issuer.name for row in rows}
    except DatabaseError:
        return {}
