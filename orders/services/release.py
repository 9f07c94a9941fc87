"""The fiat leg and the release of the escrow (docs/PROTOCOL.md §Fiat-sent, §Release).

Both services run the protocol checks in the daemon's order and raise `CantDo` for refusals.
`atomic` is the caller's transaction factory: the dispatcher passes `ctx.atomic`, so the
inbound event is marked done in the same commit as the status change and the replies.
"""

from uuid import UUID

from django.db import transaction

from mostro_site.config.faults import kill_point
from nostrbridge.context import Atomic, SilentDrop
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.payloads import NextTradePayload, Payload, PeerPayload
from nostrbridge.protocol.structs import Peer
from orders.models import Order
from orders.publish import publish_order_event
from orders.services.escrow_reconcile import escrow_ensure_held, escrow_settle_after
from orders.services.lookup import order_get_or_not_found
from orders.services.payout import payout_schedule
from orders.services.range import range_child_create
from orders.status import OrderStatus
from orders.transitions import transition_order
from orders.wire import replies_together, send
from orders.wiring import orders_wiring

RELEASABLE_STATUSES = (OrderStatus.FIAT_SENT, OrderStatus.DISPUTE)


def next_trade_from_payload(payload: Payload | None) -> tuple[str, int] | None:
    """`null` or `next_trade` are the only payloads fiat-sent and release accept (else silent)."""
    if payload is None:
        return None
    if isinstance(payload, NextTradePayload):
        return (payload.trade_pubkey, payload.trade_index)
    raise SilentDrop(f"unexpected payload {payload.TAG}")


def order_mark_fiat_sent(
    *,
    order_id: UUID | str | None,
    sender: str,
    request_id: int | None,
    payload: Payload | None = None,
    atomic: Atomic = transaction.atomic,
) -> Order:
    """The buyer says the fiat left: `active` → `fiat-sent`, `fiat-sent-ok` to both parties."""
    order = order_get_or_not_found(order_id)
    if order.status != OrderStatus.ACTIVE:
        raise CantDo(CantDoReason.INVALID_ORDER_STATUS)
    if sender != order.buyer_pubkey:
        raise CantDo(CantDoReason.INVALID_PUBKEY)
    next_trade = next_trade_from_payload(payload)
    fields = {}
    if next_trade is not None and order.is_range:
        # A buy range's maker announces here the key of its child order (docs/PROTOCOL.md §Range-orders).
        fields = {"next_trade_pubkey": next_trade[0], "next_trade_index": next_trade[1]}
    with atomic():
        moved = transition_order(
            order_id=order.id,
            from_statuses=[OrderStatus.ACTIVE],
            to_status=OrderStatus.FIAT_SENT,
            actor=sender,
            reason="fiat-sent",
            set_fields=fields,
            reload=order,  # the row as it stands now: the replies and the event are built from it
        )
        if not moved:
            raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
        publish_order_event(order, fresh=True)
        with replies_together():  # one outbox INSERT for both
            send(order.seller_pubkey, Action.FIAT_SENT_OK, order, payload=PeerPayload(Peer(pubkey=sender)))
            send(
                order.buyer_pubkey,
                Action.FIAT_SENT_OK,
                order,
                request_id=request_id,
                payload=PeerPayload(Peer(pubkey=order.seller_pubkey or "")),
            )
    return order


def order_release(
    *,
    order_id: UUID | str | None,
    sender: str,
    request_id: int | None,
    payload: Payload | None = None,
    atomic: Atomic = transaction.atomic,
) -> Order:
    """The seller releases: `settled-hold-invoice`, the replies and the payout decided in one
    transaction, then the escrow settled at LND (docs/PROTOCOL.md §Release).

    The guarded transition is the arbiter against a concurrent cooperative cancel, admin
    decision or timeout: whoever records first wins, and the loser never calls LND. A settle
    that fails after the commit is retried by the payout, which settles before it pays. The job
    cluster is woken for the payout once the settle returned, not at the commit
    (`escrow_settle_after`).
    """
    order = order_get_or_not_found(order_id)
    if sender != order.seller_pubkey:
        raise CantDo(CantDoReason.INVALID_PEER)
    if order.status not in RELEASABLE_STATUSES:
        raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
    next_trade = next_trade_from_payload(payload)
    if not order.hold_invoice_preimage:
        raise CantDo(CantDoReason.INVALID_INVOICE)
    escrow_ensure_held(order=order)  # a read: an escrow LND already refunded is refused here
    with escrow_settle_after(order=order, atomic=atomic):  # decide, commit, settle, then wake the payout
        moved_from = _release_transition(order, sender=sender, request_id=request_id)
        if moved_from is None:
            # A cancel, admin decision or second release decided first: say so, never silence.
            raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
        # A dispute row is created only with the order's move to `dispute`, which also sets its
        # opener's flag, and nothing leads from `dispute` back to `fiat-sent`
        # (ALLOWED_TRANSITIONS): a release from `fiat-sent` of an order no dispute flagged has
        # no dispute to close.
        disputed = moved_from == OrderStatus.DISPUTE or order.buyer_dispute or order.seller_dispute
        _after_settle(order, next_trade=next_trade, request_id=request_id, disputed=disputed)
    kill_point("release-settled")
    return order


def _release_transition(order: Order, *, sender: str, request_id: int | None) -> str | None:
    """The guarded move to `settled-hold-invoice`, from the status the order was read in, else
    from the other releasable one (the read was stale: a dispute opened meanwhile), as
    `transition_order`'s own fallback does, the UPDATE being the guard. Returns the status it
    moved from; None when neither matched. A won move leaves `order` as the row stands after it."""
    for status in (order.status, *(other for other in RELEASABLE_STATUSES if other != order.status)):
        if transition_order(
            order_id=order.id,
            from_statuses=[status],
            to_status=OrderStatus.SETTLED_HOLD_INVOICE,
            actor=sender,
            reason="release",
            set_fields={"payout_request_id": request_id},
            reload=order,  # the row as it stands now: the replies and the event are built from it
        ):
            return status
    return None


def _after_settle(
    order: Order, *, next_trade: tuple[str, int] | None, request_id: int | None, disputed: bool = True
) -> None:
    """Step 3 of docs/PROTOCOL.md §Release, in order, inside the release transaction. `disputed`:
    the order may have a dispute to close (False: none was ever opened, the read is saved)."""
    # Settled-hold-invoice is not a published bucket: a no-op today. The caller refreshed `order`.
    publish_order_event(order, fresh=True)
    if disputed:
        orders_wiring().trade_closed_by_parties(order_id=order.id, order_status=order.status, actor=order.seller_pubkey)
    # The three replies as one outbox INSERT, unless a range child may follow `released` (its
    # `new-order` comes between, in this order, docs/PROTOCOL.md §Range-orders).
    with replies_together() as replies:
        send(order.buyer_pubkey, Action.RELEASED, order)
        if order.fiat_range is not None:
            replies.flush()
        range_child_create(parent=order, next_trade=next_trade, request_id=request_id)
        send(order.seller_pubkey, Action.HOLD_INVOICE_PAYMENT_SETTLED, order, request_id=request_id)
        send(order.seller_pubkey, Action.RATE, order)
    payout_schedule(order_id=order.id, request_id=request_id, buyer_invoice=order.buyer_invoice)
