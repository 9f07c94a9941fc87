"""Order rows → protocol payloads and messages (the views of docs/PROTOCOL.md §Actions).

Each reply in the spec shows a slightly different view of the order (amount with or without
the fee, with or without trade pubkeys, `expires_at` present or null). `small_order` builds
any of them from keyword toggles so handlers state the view they send, not how to build it.
"""

from typing import Any

from nostrbridge.outbox import enqueue_message
from nostrbridge.outbox import replies_together as replies_together  # for the services, beside `send`
from nostrbridge.protocol.enums import Action, Kind, MessageType, Status
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import OrderPayload, Payload
from nostrbridge.protocol.structs import SmallOrder
from orders.models import Order
from orders.services.amounts import buyer_payout_sats, seller_escrow_sats


def unix(value) -> int | None:
    return None if value is None else int(value.timestamp())


I64_MAX = 2**63 - 1


def small_order(
    order: Order,
    *,
    status: str | None = None,
    amount_sats: int | None = None,
    include_pubkeys: bool = False,
    include_maker_pubkey: bool = False,
    include_buyer_invoice: bool = False,
    include_expires_at: bool = True,
    include_created_at: bool = True,
) -> SmallOrder:
    kind_pubkeys: dict[str, Any] = {}
    if include_pubkeys:
        kind_pubkeys = {"buyer_trade_pubkey": order.buyer_pubkey, "seller_trade_pubkey": order.seller_pubkey}
    elif include_maker_pubkey:
        key = "seller_trade_pubkey" if order.kind == "sell" else "buyer_trade_pubkey"
        kind_pubkeys = {key: order.maker_pubkey}
    amount = order.amount_sats if amount_sats is None else amount_sats
    if not 0 <= amount <= I64_MAX:
        # Clients parse amounts as i64 ≥ 0: an amount outside that is a bug, never sent.
        raise ValueError(f"order {order.id}: amount {amount} outside 0…2^63−1")
    return SmallOrder(
        id=order.id,
        kind=Kind(order.kind),
        status=Status(status or order.status),
        amount=amount,
        fiat_code=order.fiat_code,
        min_amount=order.min_fiat_amount,
        max_amount=order.max_fiat_amount,
        fiat_amount=order.fiat_amount,
        payment_method=order.payment_method,
        premium=order.premium,
        buyer_invoice=order.buyer_invoice if include_buyer_invoice else None,
        created_at=unix(order.created_at) if include_created_at else None,
        expires_at=unix(order.expires_at) if include_expires_at else None,
        **kind_pubkeys,
    )


def seller_view_amount(order: Order) -> int:
    return seller_escrow_sats(amount_sats=order.amount_sats, fee_sats=order.fee_sats)


def buyer_view_amount(order: Order) -> int:
    return buyer_payout_sats(amount_sats=order.amount_sats, fee_sats=order.fee_sats)


def order_message(
    action: Action,
    order_id,
    *,
    request_id: int | None = None,
    trade_index: int | None = None,
    payload: Payload | None = None,
    type: MessageType = MessageType.ORDER,
) -> Message:
    return Message.new(action, type=type, request_id=request_id, trade_index=trade_index, id=order_id, payload=payload)


def send(
    recipient_pubkey: str | None,
    action: Action,
    order: Order,
    *,
    request_id: int | None = None,
    trade_index: int | None = None,
    payload: Payload | None = None,
) -> None:
    """Queue a message about `order` to `recipient_pubkey` (inside the caller's transaction)."""
    if not recipient_pubkey:
        return
    message = order_message(action, order.id, request_id=request_id, trade_index=trade_index, payload=payload)
    enqueue_message(recipient_pubkey=recipient_pubkey, message=message, order_id=order.id)


def order_payload(order: Order, **view: Any) -> OrderPayload:
    return OrderPayload(small_order(order, **view))
