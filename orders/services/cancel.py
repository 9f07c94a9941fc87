"""`cancel` in every status (docs/PROTOCOL.md §Cancel).

The status change, the refund decision (`orders.services.escrow_refund`), the order event and
the replies commit together; only then is LND asked to cancel the hold invoice. Against a
concurrent `release` or HTLC the guarded transition decides: the loser never reaches LND.
"""

import logging
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Q

from nostrbridge.context import Atomic
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from orders.bonds.cancel import bond_taker_cancel
from orders.bonds.maker import maker_bond_cancel
from orders.models import Order
from orders.publish import publish_order_event
from orders.services.escrow_refund import escrow_refund_decide, escrow_refund_execute
from orders.services.lookup import order_get_or_not_found
from orders.status import (
    ALREADY_CANCELED_STATUSES,
    ESCROW_LOCKED_STATUSES,
    PRE_TRADE_STATUSES,
    WAITING_STATUSES,
    OrderKind,
    OrderStatus,
)
from orders.transitions import transition_order, update_order_guarded
from orders.wire import order_payload, send
from orders.wiring import orders_wiring

logger = logging.getLogger(__name__)


def order_cancel(
    *, order_id: UUID | str | None, sender: str, request_id: int | None, atomic: Atomic = transaction.atomic
) -> Order:
    """Dispatch on the current status and the sender's role (the table of docs/PROTOCOL.md §Cancel)."""
    order = order_get_or_not_found(order_id)
    status = order.status
    if status in ALREADY_CANCELED_STATUSES:
        raise CantDo(CantDoReason.ORDER_ALREADY_CANCELED)
    if status in PRE_TRADE_STATUSES or status in WAITING_STATUSES:
        group = PRE_TRADE_STATUSES if status in PRE_TRADE_STATUSES else WAITING_STATUSES
        if sender == order.maker_pubkey:
            return _maker_cancel(order, group, request_id, atomic)
        if order.taker_pubkey and sender == order.taker_pubkey:
            return _taker_cancel(order, group, request_id, atomic)
        if status in PRE_TRADE_STATUSES and bond_taker_cancel(
            order=order, sender=sender, request_id=request_id, atomic=atomic
        ):
            return order
        raise CantDo(CantDoReason.IS_NOT_YOUR_ORDER if status in PRE_TRADE_STATUSES else CantDoReason.INVALID_PUBKEY)
    if status == OrderStatus.WAITING_MAKER_BOND:
        return maker_bond_cancel(order=order, sender=sender, request_id=request_id, atomic=atomic)
    if status in ESCROW_LOCKED_STATUSES:
        if sender not in (order.buyer_pubkey, order.seller_pubkey):
            raise CantDo(CantDoReason.INVALID_PUBKEY)
        return _cooperative_cancel(order, sender, request_id, atomic)
    raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)


def order_reset_fields(order: Order) -> dict[str, Any]:
    """Columns that put a taken order back on the book (taker cancel, taker timeout: docs/PROTOCOL.md §Cancel).

    Market orders lose their quote (re-priced at the next take); a range order gets its
    range back. The maker's own payout invoice on a buy order is kept.
    """
    taker = "buyer" if order.kind == OrderKind.SELL else "seller"
    fields: dict[str, Any] = {
        "hold_invoice_hash": None,
        "hold_invoice_preimage": None,
        "hold_invoice_payment_request": None,
        "hold_invoice_request_id": None,
        "invoice_held_at": None,
        "taken_at": None,
        f"{taker}_pubkey": None,
        f"master_{taker}_pubkey": None,
        f"trade_index_{taker}": None,
    }
    if order.kind == OrderKind.SELL:
        fields["buyer_invoice"] = None
    if order.price_from_api:
        fields |= {"amount_sats": 0, "fee_sats": 0, "dev_fee_sats": 0}
    if order.is_range:
        fields["fiat_amount"] = 0
    return fields


# --- pending and waiting orders -------------------------------------------------------------


def _maker_cancel(order: Order, group: frozenset, request_id: int | None, atomic: Atomic) -> Order:
    with atomic():
        moved = transition_order(
            order_id=order.id,
            from_statuses=group,
            to_status=OrderStatus.CANCELED,
            actor=order.maker_pubkey or "",
            reason="maker cancel",
            guard=_same_escrow(order),
        )
        if not moved:
            raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
        refund = escrow_refund_decide(order=order, reason="maker cancel")
        order.refresh_from_db()
        publish_order_event(order)
        send(order.maker_pubkey, Action.CANCELED, order, request_id=request_id)
        send(order.taker_pubkey, Action.CANCELED, order)
    escrow_refund_execute(refund)
    return order


def _taker_cancel(order: Order, group: frozenset, request_id: int | None, atomic: Atomic) -> Order:
    taker = order.taker_pubkey or ""  # order_cancel routed here because it is the sender
    taker_field = "buyer_pubkey" if order.kind == OrderKind.SELL else "seller_pubkey"
    with atomic():
        moved = transition_order(
            order_id=order.id,
            from_statuses=group,
            to_status=OrderStatus.PENDING,
            actor=taker,
            reason="taker cancel",
            set_fields=order_reset_fields(order),
            guard=Q(**{taker_field: taker}) & _same_escrow(order),
        )
        if not moved:
            raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
        refund = escrow_refund_decide(order=order, reason="taker cancel")
        order.refresh_from_db()
        send(taker, Action.CANCELED, order, request_id=request_id)
        publish_order_event(order)
        send(
            order.maker_pubkey,
            Action.NEW_ORDER,
            order,
            request_id=request_id,
            payload=order_payload(order, include_maker_pubkey=True),
        )
    escrow_refund_execute(refund)
    return order


def _same_escrow(order: Order) -> Q:
    """The escrow the canceler saw: an HTLC recorded meanwhile changes what the cancel means."""
    return Q(hold_invoice_hash=order.hold_invoice_hash, invoice_held_at__isnull=order.invoice_held_at is None)


# --- active trades: cooperative only --------------------------------------------------------


def _cooperative_cancel(order: Order, sender: str, request_id: int | None, atomic: Atomic) -> Order:
    initiator = order.cancel_initiator_pubkey
    if initiator == sender:
        raise CantDo(CantDoReason.INVALID_PUBKEY)
    if initiator is None:
        return _cooperative_initiate(order, sender, request_id, atomic)
    return _cooperative_accept(order, sender, initiator, request_id, atomic)


def _side_flag(order: Order, pubkey: str) -> str:
    return "seller_cooperative_cancel" if pubkey == order.seller_pubkey else "buyer_cooperative_cancel"


def _counterparty(order: Order, pubkey: str) -> str | None:
    return order.buyer_pubkey if pubkey == order.seller_pubkey else order.seller_pubkey


def _cooperative_initiate(order: Order, sender: str, request_id: int | None, atomic: Atomic) -> Order:
    with atomic():
        recorded = update_order_guarded(
            order_id=order.id,
            statuses=ESCROW_LOCKED_STATUSES,
            set_fields={"cancel_initiator_pubkey": sender, _side_flag(order, sender): True},
            guard=Q(cancel_initiator_pubkey__isnull=True),
        )
        if not recorded:
            raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
        order.refresh_from_db()
        send(sender, Action.COOPERATIVE_CANCEL_INITIATED_BY_YOU, order, request_id=request_id)
        send(_counterparty(order, sender), Action.COOPERATIVE_CANCEL_INITIATED_BY_PEER, order)
    return order


def _cooperative_accept(order: Order, sender: str, initiator: str, request_id: int | None, atomic: Atomic) -> Order:
    # The refund is decided with the status change; a release or admin-settle that decided
    # first moved the order, so this guard loses and LND is never asked to cancel.
    with atomic():
        moved = transition_order(
            order_id=order.id,
            from_statuses=ESCROW_LOCKED_STATUSES,
            to_status=OrderStatus.COOPERATIVELY_CANCELED,
            actor=sender,
            reason="cooperative cancel accepted",
            set_fields={_side_flag(order, sender): True},
            guard=Q(cancel_initiator_pubkey=initiator),
        )
        if not moved:
            raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
        refund = escrow_refund_decide(order=order, reason="cooperative cancel")
        order.refresh_from_db()
        publish_order_event(order)
        send(sender, Action.COOPERATIVE_CANCEL_ACCEPTED, order, request_id=request_id)
        send(initiator, Action.COOPERATIVE_CANCEL_ACCEPTED, order)
        orders_wiring().trade_closed_by_parties(order_id=order.id, order_status=order.status, actor=sender)
    escrow_refund_execute(refund)
    return order
