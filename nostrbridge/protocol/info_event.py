"""Kind 38385 instance-info event (docs/PROTOCOL.md §Info-event), tags in the daemon's order."""

from __future__ import annotations

from dataclasses import dataclass

from nostrbridge.protocol.jsonwire import rust_display_float
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.nip01 import Event, sign_event
from nostrbridge.protocol.published_events import INFO_KIND, PublisherSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class BondInfo:
    """Anti-abuse bond settings; their tags only appear when bonds are enabled."""

    amount_pct: float
    base_amount_sats: int
    apply_to: str  # "take", "make" or "both"
    slash_on_waiting_timeout: bool
    slash_node_share_pct: float
    payout_claim_window_days: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeInfo:
    mostro_version: str
    mostro_commit_hash: str
    max_order_amount_sats: int
    min_order_amount_sats: int
    expiration_hours: int
    expiration_seconds: int
    fiat_currencies_accepted: tuple[str, ...] = ()  # empty = every currency
    max_orders_per_response: int
    fee: float  # total fee rate, e.g. 0.006; each side pays half
    pow_bits: int
    pow_first_contact_bits: int
    protocol_version: int  # 1 gift wrap, 2 kind 14
    hold_invoice_expiration_window_seconds: int
    hold_invoice_cltv_delta_blocks: int
    # The daemon writes the hold-invoice window here (docs/PROTOCOL.md §Differences); pass that value
    # to stay byte-compatible, or the real invoice window to fix it.
    invoice_expiration_window_seconds: int
    lnd_version: str = ""
    lnd_node_pubkey: str = ""
    lnd_commit_hash: str = ""
    lnd_node_alias: str = ""
    lnd_chains: tuple[str, ...] = ()
    lnd_networks: tuple[str, ...] = ()
    lnd_uris: tuple[str, ...] = ()
    bond: BondInfo | None = None
    # Reputation portability (docs/PROTOCOL.md §Reputation): the dedicated issuer key when export
    # is on; the trusted issuers' keys when import is on (possibly none: import on, empty list).
    reputation_issuer: str | None = None
    reputation_import_issuers: tuple[str, ...] | None = None
    # Maintenance ("drain") mode: always published, the operator's reason never is.
    maintenance_mode: bool = False


def _bool(value: bool) -> str:
    return "true" if value else "false"


def advertised_pow_first_contact(info: NodeInfo) -> int:
    """`max(pow, pow_first_contact)` on v2 nodes; just `pow` on v1 (no gate there) (docs/PROTOCOL.md §Intake)."""
    if info.protocol_version == 2:
        return max(info.pow_bits, info.pow_first_contact_bits)
    return info.pow_bits


def info_event_tags(info: NodeInfo, *, settings: PublisherSettings) -> list[list[str]]:
    tags = [
        ["d", settings.node_pubkey],
        ["mostro_version", info.mostro_version],
        ["mostro_commit_hash", info.mostro_commit_hash],
        ["max_order_amount", str(info.max_order_amount_sats)],
        ["min_order_amount", str(info.min_order_amount_sats)],
        ["expiration_hours", str(info.expiration_hours)],
        ["expiration_seconds", str(info.expiration_seconds)],
        ["fiat_currencies_accepted", ",".join(info.fiat_currencies_accepted)],
        ["max_orders_per_response", str(info.max_orders_per_response)],
        ["fee", rust_display_float(float(info.fee))],
        ["pow", str(info.pow_bits)],
        ["pow_first_contact", str(advertised_pow_first_contact(info))],
        ["protocol_version", str(info.protocol_version)],
        ["hold_invoice_cltv_delta", str(info.hold_invoice_cltv_delta_blocks)],
        ["lnd_version", info.lnd_version],
        ["lnd_node_pubkey", info.lnd_node_pubkey],
        ["lnd_commit_hash", info.lnd_commit_hash],
        ["lnd_node_alias", info.lnd_node_alias],
        ["lnd_chains", ",".join(info.lnd_chains)],
        ["lnd_networks", ",".join(info.lnd_networks)],
        ["lnd_uris", ",".join(info.lnd_uris)],
        settings.y_tag(),
        ["z", "info"],
        # mostrod 0.18.7 moved the two window tags here, each with its own setting (v0.19.2 [obs]).
        ["invoice_expiration_window", str(info.invoice_expiration_window_seconds)],
        ["hold_invoice_expiration_window", str(info.hold_invoice_expiration_window_seconds)],
        ["bond_enabled", _bool(info.bond is not None)],
        # Right after `bond_enabled`, as mostrod 0.19.2 publishes it (docs/PROTOCOL.md §Info-event).
        ["maintenance_mode", _bool(info.maintenance_mode)],
    ]
    if info.bond is not None:
        bond = info.bond
        tags += [
            ["bond_amount_pct", rust_display_float(float(bond.amount_pct))],
            ["bond_base_amount_sats", str(bond.base_amount_sats)],
            ["bond_apply_to", bond.apply_to],
            ["bond_slash_on_waiting_timeout", _bool(bond.slash_on_waiting_timeout)],
            ["bond_slash_node_share_pct", rust_display_float(float(bond.slash_node_share_pct))],
            ["bond_payout_claim_window_days", str(bond.payout_claim_window_days)],
        ]
    return tags + reputation_tags(info)


def reputation_tags(info: NodeInfo) -> list[list[str]]:
    """Each tag only when its side is enabled; after every other tag (their position in mostrod's
    event is unconfirmed, docs/PROTOCOL.md "Reputation and user-info")."""
    tags = []
    if info.reputation_issuer is not None:
        tags.append(["reputation_issuer", info.reputation_issuer])
    if info.reputation_import_issuers is not None:
        tags.append(["reputation_import_issuers", *info.reputation_import_issuers])
    return tags


def build_info_event(
    info: NodeInfo,
    keys: Keys,
    *,
    settings: PublisherSettings,
    now: int,
    aux_rand: bytes | None = None,
) -> Event:
    """Kind 38385: `d` = node pubkey, no expiration (docs/PROTOCOL.md §Info-event)."""
    tags = info_event_tags(info, settings=settings)
    return sign_event(keys, kind=INFO_KIND, content="", tags=tags, created_at=now, aux_rand=aux_rand)
