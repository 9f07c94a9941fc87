"""`export-reputation` (docs/PROTOCOL.md §Export-reputation): attest the proved identity's native
reputation here for the destination identity it names, signed with the node's dedicated issuer
key, never the node key.

Checks, in mostrod's order: export on and its key loaded (`invalid_action`); the payload
(`invalid_payload`); an identity proof (`reputation_identity_required`); the destination
(`invalid_payload`); eligibility (`not_eligible_for_reputation_export`); the binding, a
compare-and-set (`reputation_bound_to_other_identity`, `invalid_reputation_rebind`); then sign
and reply `reputation-exported`.
"""

import datetime as dt
import logging
import time
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, Min, Q
from django.db.models.functions import Coalesce

from mostro_site.config.reputation import ReputationSettings, reputation_settings
from nostrbridge.context import Atomic
from nostrbridge.node_identity import export_issuer_keys
from nostrbridge.outbox import enqueue_message
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import Payload, ReputationAttestationPayload, ReputationExportRequestPayload
from nostrbridge.protocol.reputation import (
    MAX_ATTESTED_REVIEWS,
    AttestationError,
    build_attestation,
    is_identity_key,
    parse_rebind,
)
from nostrbridge.protocol.structs import day_start
from orders.models import Order, Trader
from orders.services.reputation_request import reputation_request_payload
from orders.status import OrderStatus

logger = logging.getLogger(__name__)

MIN_COMPLETED_TRADES = 10
MIN_NATIVE_REVIEWS = 5


@dataclass(frozen=True)
class NativeReputation:
    """What an attestation from this node carries: the reputation earned here, never an import."""

    reviews: int
    rating: float  # their exact average
    completed_trades: int  # decides eligibility, not carried
    since: int | None  # UTC day start of the first completed trade here

    def eligible(self, trader: Trader) -> bool:
        return (
            not trader.is_banned
            and self.completed_trades >= MIN_COMPLETED_TRADES
            and self.reviews >= MIN_NATIVE_REVIEWS
            and self.since is not None
        )


def native_reputation(trader: Trader) -> NativeReputation:
    """Success orders with the identity as master buyer or seller; the first dated by its
    `taken_at`, else its `created_at` (a first trade, not an account's age)."""
    completed = Order.objects.filter(status=OrderStatus.SUCCESS).filter(
        Q(master_buyer_pubkey=trader.pk) | Q(master_seller_pubkey=trader.pk)
    )
    figures = completed.aggregate(count=Count("id"), first=Min(Coalesce("taken_at", "created_at")))
    first = figures["first"]
    return NativeReputation(
        reviews=trader.native_reviews,
        rating=trader.native_rating,
        completed_trades=figures["count"],
        since=None if first is None else day_start(int(first.timestamp())),
    )


def reputation_export(
    *,
    identity: str,
    sender: str,
    payload: Payload | None,
    request_id: int | None,
    atomic: Atomic = transaction.atomic,
    now: int | None = None,
) -> str:
    """Bind, sign and queue the `reputation-exported` reply; return the attestation's JSON."""
    config = reputation_settings()
    issuer = export_issuer_keys()
    if issuer is None:  # export off, or its key not loaded
        raise CantDo(CantDoReason.INVALID_ACTION)
    request = reputation_request_payload(
        payload=payload, payload_type=ReputationExportRequestPayload, identity=identity, sender=sender
    ).request
    if not is_identity_key(request.destination):
        raise CantDo(CantDoReason.INVALID_PAYLOAD)
    trader = Trader.objects.filter(pk=identity).first()
    if trader is None:
        raise CantDo(CantDoReason.NOT_ELIGIBLE_FOR_REPUTATION_EXPORT)
    native = native_reputation(trader)
    if native.since is None or not native.eligible(trader):
        raise CantDo(CantDoReason.NOT_ELIGIBLE_FOR_REPUTATION_EXPORT)
    since = native.since
    now = int(time.time()) if now is None else now
    with atomic():
        _bind(identity=identity, destination=request.destination, rebind=request.rebind, issuer=issuer, now=now)
        attestation = _sign(
            issuer, config, destination=request.destination, subject=identity, native=native, since=since, now=now
        )
        reply = Message.new(
            Action.REPUTATION_EXPORTED, request_id=request_id, payload=ReputationAttestationPayload(attestation)
        )
        enqueue_message(recipient_pubkey=sender, message=reply)
    logger.info("reputation: exported %s native ratings of %s to %s", native.reviews, identity, request.destination)
    return attestation


def _bind(*, identity: str, destination: str, rebind: str | None, issuer: Keys, now: int) -> None:
    """Compare-and-set the account's binding (caller's transaction).

    Unbound, or bound to `destination` already (how a lost, expired or fresher attestation is
    obtained): bind. Bound elsewhere: only with a rebind authorisation signed by the bound
    identity, for this issuer and this destination; the move is conditioned on the old binding.
    """
    today = dt.datetime.fromtimestamp(day_start(now), tz=dt.UTC)
    bindable = Q(reputation_exported_to__isnull=True) | Q(reputation_exported_to=destination)
    if Trader.objects.filter(bindable, pk=identity).update(
        reputation_exported_to=destination, reputation_exported_at=today
    ):
        return
    if rebind is None:
        raise CantDo(CantDoReason.REPUTATION_BOUND_TO_OTHER_IDENTITY)
    bound = Trader.objects.filter(pk=identity).values_list("reputation_exported_to", flat=True).first()
    try:
        authorisation = parse_rebind(rebind, now=now)
    except AttestationError as exc:
        raise CantDo(CantDoReason.INVALID_REPUTATION_REBIND) from exc
    if (authorisation.bound_identity, authorisation.issuer, authorisation.new_identity) != (
        bound,
        issuer.public_key_hex,
        destination,
    ):
        raise CantDo(CantDoReason.INVALID_REPUTATION_REBIND)
    moved = Trader.objects.filter(pk=identity, reputation_exported_to=bound).update(
        reputation_exported_to=destination, reputation_exported_at=today
    )
    if not moved:  # another request moved it since it was read: the rebind names a stale binding
        raise CantDo(CantDoReason.REPUTATION_BOUND_TO_OTHER_IDENTITY)
    logger.info(
        "reputation: %s rebound from %s to %s (authorisation %s)", identity, bound, destination, authorisation.id
    )


def _sign(
    issuer: Keys,
    config: ReputationSettings,
    *,
    destination: str,
    subject: str,
    native: NativeReputation,
    since: int,
    now: int,
) -> str:
    event = build_attestation(
        issuer,
        destination=destination,
        subject=subject,
        reviews=min(native.reviews, MAX_ATTESTED_REVIEWS),  # mostrod saturates the u32 too
        average=native.rating,
        since=since,
        created_at=now,
        lifetime_seconds=config.export_lifetime_seconds,
    )
    return event.to_json()
