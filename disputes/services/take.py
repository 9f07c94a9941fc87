"""`admin-take-dispute` (docs/PROTOCOL.md §Admin-take-dispute): a solver (or the node) takes it."""

from uuid import UUID

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from disputes.models import Dispute, DisputeInitiator, DisputeStatus
from disputes.services.authz import ensure_not_a_party, may_take
from disputes.services.errors import DisputeConflict, DisputeNotFound
from disputes.transitions import transition_dispute
from nostrbridge.context import Atomic
from nostrbridge.outbox import enqueue_message
from nostrbridge.protocol.enums import Action, CantDoReason, MessageType
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import DisputePayload, PeerPayload
from nostrbridge.protocol.structs import Peer, SolverDisputeInfo, UserInfo
from orders.models import Order
from orders.services.traders import trader_user_info
from orders.wire import send, unix


def dispute_take(
    *,
    dispute_id: UUID | str | None,
    actor_pubkey: str,
    actor_label: str | None = None,
    actor_trade_pubkey: str | None = None,
    request_id: int | None = None,
    reply_to: str | None = None,
    atomic: Atomic = transaction.atomic,
) -> Dispute:
    """Assign the dispute to `actor_pubkey` (→ `in-progress`), publish 38386 and tell everyone.

    `reply_to` receives the solver's copy (with the full dispute info, preimage included):
    the solver's identity over Nostr, the linked key for browser/API solvers, None for the
    node key. The guarded UPDATE (status and previous solver unchanged) settles races.
    """
    dispute = Dispute.objects.filter(pk=dispute_id).first() if dispute_id is not None else None
    if dispute is None:
        raise DisputeNotFound("admin-take-dispute for an unknown dispute")
    if not may_take(dispute, actor_pubkey):
        raise CantDo(CantDoReason.INVALID_PUBKEY)
    order = Order.objects.filter(pk=dispute.order_id).first()
    if order is None:
        raise CantDo(CantDoReason.NOT_FOUND)
    ensure_not_a_party(order, actor_pubkey, actor_trade_pubkey)
    now = timezone.now()
    with atomic():
        taken = transition_dispute(
            dispute=dispute,
            from_statuses=[dispute.status],
            to_status=DisputeStatus.IN_PROGRESS,
            actor=actor_label or actor_pubkey,
            set_fields={"solver_pubkey": actor_pubkey, "taken_at": now},
            guard=Q(solver_pubkey=dispute.solver_pubkey),  # a concurrent take changed the solver
        )
        if not taken:
            raise DisputeConflict("the dispute changed while it was being taken")
        _notify_taken(order, dispute, solver=actor_pubkey, request_id=request_id, reply_to=reply_to)
    return dispute


def _notify_taken(order: Order, dispute: Dispute, *, solver: str, request_id: int | None, reply_to: str | None) -> None:
    if reply_to:
        message = Message.new(
            Action.ADMIN_TOOK_DISPUTE,
            type=MessageType.DISPUTE,
            request_id=request_id,
            id=dispute.id,
            payload=DisputePayload(dispute.id, solver_dispute_info(order, dispute)),
        )
        enqueue_message(recipient_pubkey=reply_to, message=message, order_id=order.id)
    peer = PeerPayload(Peer(pubkey=solver, reputation=None))
    send(order.buyer_pubkey, Action.ADMIN_TOOK_DISPUTE, order, request_id=request_id, payload=peer)
    send(order.seller_pubkey, Action.ADMIN_TOOK_DISPUTE, order, request_id=request_id, payload=peer)


def _party(order: Order, *, buyer: bool) -> tuple[str | None, str | None]:
    """(trade key, identity key) of one side."""
    if buyer:
        return order.buyer_pubkey, order.master_buyer_pubkey
    return order.seller_pubkey, order.master_seller_pubkey


def _privacy_and_info(trade_key: str | None, identity: str | None) -> tuple[bool, UserInfo | None]:
    # Full privacy: no identity beyond the trade key, hence no reputation to show.
    if not identity or identity == trade_key:
        return True, None
    return False, trader_user_info(identity=identity)


def solver_dispute_info(order: Order, dispute: Dispute) -> SolverDisputeInfo:
    """Everything a solver needs to judge (docs/PROTOCOL.md §Payloads), hold-invoice preimage included."""
    initiator_is_buyer = dispute.initiator == DisputeInitiator.BUYER
    initiator_private, initiator_info = _privacy_and_info(*_party(order, buyer=initiator_is_buyer))
    counterpart_private, counterpart_info = _privacy_and_info(*_party(order, buyer=not initiator_is_buyer))
    return SolverDisputeInfo(
        id=order.id,
        kind=order.kind,
        status=order.status,
        hash=order.hold_invoice_hash,
        preimage=order.hold_invoice_preimage,
        order_previous_status=dispute.order_previous_status,
        initiator_pubkey=dispute.initiator_pubkey,
        buyer_pubkey=order.buyer_pubkey,
        seller_pubkey=order.seller_pubkey,
        initiator_full_privacy=initiator_private,
        counterpart_full_privacy=counterpart_private,
        initiator_info=initiator_info,
        counterpart_info=counterpart_info,
        premium=order.premium,
        payment_method=order.payment_method,
        amount=order.amount_sats,
        fiat_amount=order.fiat_amount,
        fee=order.fee_sats,
        routing_fee=order.routing_fee_sats,
        buyer_invoice=order.buyer_invoice,
        invoice_held_at=unix(order.invoice_held_at) or 0,
        taken_at=unix(order.taken_at) or 0,
        created_at=unix(order.created_at) or 0,
    )
