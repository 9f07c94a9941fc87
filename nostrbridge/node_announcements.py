"""What the node publishes on its own: info (38385), metadata (kind 0), relay list (10002).

Each `*_enqueue` service writes one outbox row in its own short transaction and returns it,
or returns None when an identical event was queued less than `min_interval_s` ago. That
guard runs under the row lock of the event's `AddressableClock`, so two bridge processes (or
a bridge and a qcluster job) that fire at the same moment publish once, while a changed
setting (different tags or content) is published at once. `created_at` comes from the same
clock, so revisions of these replaceable events strictly increase across processes.

`lnd_status()` is a network call: run it before, never inside, a transaction.
"""

import json
import logging
import time
from dataclasses import dataclass

from django.db import transaction

from lightning import get_lightning_client
from lightning.errors import LightningError
from mostro_site.config import NodeConfig, node_config
from mostro_site.config.reputation import reputation_settings, trusted_issuer_keys
from mostro_site.models import MaintenanceState
from nostrbridge.build_info import mostro_commit_hash
from nostrbridge.event_settings import publisher_settings
from nostrbridge.models import AddressableClock, OutboundMessage
from nostrbridge.node_identity import export_issuer_keys, node_pubkey
from nostrbridge.outbox import enqueue_event, next_created_at, node_keys
from nostrbridge.protocol.info_event import BondInfo, NodeInfo, info_event_tags
from nostrbridge.protocol.nip01 import Event, sign_event
from nostrbridge.protocol.published_events import (
    INFO_KIND,
    METADATA_KIND,
    RELAY_LIST_KIND,
    build_metadata_event,
)

logger = logging.getLogger(__name__)

# The daemon release whose protocol and published events this node reproduces; clients read
# `mostro_version` to decide which features to expect.
MOSTRO_VERSION = "0.18.5"
# Two bridge processes starting together should not both announce the same metadata.
METADATA_MIN_INTERVAL_S = 60


@dataclass(frozen=True)
class LndStatus:
    version: str
    node_pubkey: str
    commit_hash: str
    alias: str
    chains: tuple[str, ...]
    networks: tuple[str, ...]
    uris: tuple[str, ...]


def lnd_status() -> LndStatus | None:
    """LND's identity for the info event, or None when the node cannot be reached.

    mostrod refuses to start without LND, so its info event always carries these tags; here
    the bridge may run while LND is down, and the info event is still worth publishing
    (clients need `protocol_version` and `pow`), so the LND tags are left empty instead.
    """
    try:
        info = get_lightning_client().get_info()
    except LightningError as exc:
        logger.warning("LND get_info failed (%s); info event without LND tags", exc)
        return None
    return LndStatus(
        version=info.version,
        node_pubkey=info.pubkey,
        commit_hash=info.commit_hash,
        alias=info.alias,
        chains=info.chains,
        networks=info.networks,
        uris=info.uris,
    )


def _bond_info(config: NodeConfig) -> BondInfo | None:
    """The bond tags of the info event (docs/PROTOCOL.md §Info-event); none while bonds are off."""
    if not config.bond_enabled:
        return None
    return BondInfo(
        amount_pct=config.bond_amount_pct,
        base_amount_sats=config.bond_base_amount_sats,
        apply_to=config.bond_apply_to,
        slash_on_waiting_timeout=config.bond_slash_on_waiting_timeout,
        slash_node_share_pct=config.bond_slash_node_share_pct,
        payout_claim_window_days=config.bond_payout_claim_window_days,
    )


def node_info(config: NodeConfig, lnd: LndStatus | None) -> NodeInfo:
    lnd = lnd or LndStatus("", "", "", "", (), (), ())
    issuer = export_issuer_keys()
    return NodeInfo(
        mostro_version=MOSTRO_VERSION,
        mostro_commit_hash=mostro_commit_hash(),
        max_order_amount_sats=config.max_order_amount_sats,
        min_order_amount_sats=config.min_payment_amount_sats,
        expiration_hours=config.expiration_hours,
        expiration_seconds=config.expiration_seconds,
        fiat_currencies_accepted=config.fiat_currencies_accepted,
        max_orders_per_response=config.max_orders_per_response,
        fee=config.fee,
        pow_bits=config.pow_bits,
        pow_first_contact_bits=config.pow_first_contact_bits,
        protocol_version=config.protocol_version,
        hold_invoice_expiration_window_seconds=config.hold_invoice_expiration_window,
        hold_invoice_cltv_delta_blocks=config.hold_invoice_cltv_delta,
        # Deliberate fix of mostrod's quirk (docs/ARCHITECTURE.md): each tag carries its own setting.
        invoice_expiration_window_seconds=config.invoice_expiration_window,
        lnd_version=lnd.version,
        lnd_node_pubkey=lnd.node_pubkey,
        lnd_commit_hash=lnd.commit_hash,
        lnd_node_alias=lnd.alias,
        lnd_chains=lnd.chains,
        lnd_networks=lnd.networks,
        lnd_uris=lnd.uris,
        bond=_bond_info(config),
        # Only what works: the issuer key when export can sign, the trust list when import is on.
        reputation_issuer=None if issuer is None else issuer.public_key_hex,
        reputation_import_issuers=tuple(trusted_issuer_keys()) if reputation_settings().import_enabled else None,
        maintenance_mode=MaintenanceState.is_enabled(),
    )


def info_event_enqueue(
    *, lnd: LndStatus | None, min_interval_s: float, now: int | None = None
) -> OutboundMessage | None:
    """Queue the kind-38385 info event unless the same tags went out less than min_interval_s ago."""
    config = node_config()
    tags = info_event_tags(node_info(config, lnd), settings=publisher_settings(config))
    return _enqueue_unless_recent(
        kind=INFO_KIND, d_tag=node_pubkey(), tags=tags, content="", min_interval_s=min_interval_s, now=now
    )


def metadata_enqueue(
    *, min_interval_s: float = METADATA_MIN_INTERVAL_S, now: int | None = None
) -> OutboundMessage | None:
    """Queue the kind-0 profile, only when a name, about, picture or website is configured."""
    config = node_config()
    probe = build_metadata_event(
        node_keys(), now=0, name=config.name, about=config.about, picture=config.picture, website=config.website
    )
    if probe is None:
        return None
    return _enqueue_unless_recent(
        kind=METADATA_KIND, d_tag="", tags=[], content=probe.content, min_interval_s=min_interval_s, now=now
    )


def relay_list_enqueue(*, relays: list[str], min_interval_s: float, now: int | None = None) -> OutboundMessage | None:
    """Queue the kind-10002 list of the relays the node is connected to (none: nothing to say)."""
    if not relays:
        return None
    tags = [["r", url] for url in relays]
    return _enqueue_unless_recent(
        kind=RELAY_LIST_KIND, d_tag="", tags=tags, content="", min_interval_s=min_interval_s, now=now
    )


def _enqueue_unless_recent(
    *, kind: int, d_tag: str, tags: list[list[str]], content: str, min_interval_s: float, now: int | None
) -> OutboundMessage | None:
    now = int(time.time()) if now is None else now
    with transaction.atomic():
        _lock_clock(kind, d_tag)
        if _same_event_recently_queued(kind, tags, content, since=now - min_interval_s):
            return None
        created_at = next_created_at(kind=kind, d_tag=d_tag, now=now)
        event = sign_event(node_keys(), kind=kind, content=content, tags=tags, created_at=created_at)
        row = enqueue_event(event=event, d_tag=d_tag)
    logger.info("queued kind %s event %s", kind, event.id[:12])
    return row


def _lock_clock(kind: int, d_tag: str) -> None:
    # Serialises concurrent publishers of the same replaceable event (see the module docstring).
    AddressableClock.objects.get_or_create(kind=kind, d_tag=d_tag, defaults={"last_created_at": 0})
    AddressableClock.objects.select_for_update().filter(kind=kind, d_tag=d_tag).first()


def _same_event_recently_queued(kind: int, tags: list[list[str]], content: str, *, since: float) -> bool:
    last = OutboundMessage.objects.filter(kind=kind).order_by("-pk").values_list("event_json", flat=True).first()
    if last is None:
        return False
    previous = Event.from_dict(json.loads(last))
    return previous.tags == tags and previous.content == content and previous.created_at > since
