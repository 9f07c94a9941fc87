"""`dispute` (docs/PROTOCOL.md §Dispute): a party opens the order's one dispute."""

from uuid import UUID

from django.db import IntegrityError, transaction

from disputes.models import Dispute, DisputeInitiator
from disputes.services.errors import DisputeConflict
from disputes.transitions import dispute_create
from nostrbridge.context import Atomic, SilentDrop
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.payloads import DisputePayload
from orders.models import Order
from orders.services.bans import ban_refuse
from orders.services.lookup import order_get_or_not_found
from orders.status import OrderStatus
from orders.transitions import transition_order
from orders.wire import send

DISPUTABLE_STATUSES = (OrderStatus.ACTIVE, OrderStatus.FIAT_SENT)


def dispute_open(
    *, order_id: UUID | str | None, sender: str, request_id: int | None, atomic: Atomic = transaction.atomic
) -> Dispute:
    """Order → `dispute`, a new `initiated` dispute, 38386, and a notice to both parties.

    The existence check comes first and is silent, so the second party learns nothing from
    trying to open another dispute (one per order, ever).
    """
    if order_id is not None and Dispute.objects.filter(order_id=order_id).exists():
        raise SilentDrop("a dispute already exists for this order")
    order = order_get_or_not_found(order_id)
    if order.status not in DISPUTABLE_STATUSES:
        raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
    if sender not in (order.buyer_pubkey, order.seller_pubkey):
        raise CantDo(CantDoReason.INVALID_PUBKEY)
    initiator = DisputeInitiator.BUYER if sender == order.buyer_pubkey else DisputeInitiator.SELLER
    identity = order.master_buyer_pubkey if initiator == DisputeInitiator.BUYER else order.master_seller_pubkey
    ban_refuse(identity=identity, sender=sender)  # the other party may still open one
    previous = order.status
    with atomic():
        moved = transition_order(
            order_id=order.id,
            from_statuses=[previous],
            to_status=OrderStatus.DISPUTE,
            actor=sender,
            reason=f"dispute opened by the {initiator}",
            set_fields={f"{initiator}_dispute": True},
        )
        if not moved:
            raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
        dispute = _create(order, initiator=initiator, sender=sender, previous=previous)
        dispute_notify_opened(order, dispute, sender=sender, request_id=request_id)
    return dispute


def _create(order: Order, *, initiator: str, sender: str, previous: str) -> Dispute:
    try:
        return dispute_create(
            order_id=order.id,
            initiator=initiator,
            initiator_pubkey=sender,
            order_previous_status=previous,
            actor=sender,
        )
    except IntegrityError as exc:  # the unique order link is the last guard
        raise DisputeConflict("a concurrent dispute was created first") from exc


def dispute_notify_opened(order: Order, dispute: Dispute, *, sender: str, request_id: int | None) -> None:
    """`dispute-initiated-by-you` to the initiator, `-by-peer` to the other party (inside a transaction)."""
    counterparty = order.seller_pubkey if sender == order.buyer_pubkey else order.buyer_pubkey
    payload = DisputePayload(dispute.id, None)
    send(sender, Action.DISPUTE_INITIATED_BY_YOU, order, request_id=request_id, payload=payload)
    send(counterparty, Action.DISPUTE_INITIATED_BY_PEER, order, request_id=request_id, payload=payload)
