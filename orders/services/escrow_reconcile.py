"""What LND reports about an escrow, reconciled against the order (docs/PROTOCOL.md §Escrow).

The node's own refunds are recorded before LND cancels (`EscrowRefund`), and its settles follow
a recorded `settled-hold-invoice`. So a CANCELED report for an order that still relies on its
escrow is never one of ours: the escrow is gone, and the order must not stay (or become)
`active`/`fiat-sent`. Releases and admin settles read the invoice first, and refuse with a
`cant-do` (never silence) when LND already refunded the seller.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from lightning import get_lightning_client
from lightning.errors import InvoiceNotFound
from lightning.types import InvoiceState
from nostrbridge.context import Atomic
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.wake import hints_held
from orders.models import Order
from orders.publish import publish_order_event
from orders.selectors import order_get_by_hold_hash
from orders.services.escrow import EscrowAlreadyCanceled, EscrowSettleError, escrow_settle
from orders.services.escrow_refund import escrow_refund_is_decided
from orders.status import OrderStatus
from orders.transitions import transition_order
from orders.wire import send
from orders.wiring import orders_wiring

logger = logging.getLogger(__name__)

ACTOR = "lightning"
S = OrderStatus
# Statuses that rely on an accepted escrow (waiting-buyer-invoice only once the HTLC is held).
RELYING_STATUSES = frozenset({S.WAITING_BUYER_INVOICE, S.ACTIVE, S.FIAT_SENT, S.DISPUTE})
CANCELABLE = frozenset({S.WAITING_BUYER_INVOICE, S.ACTIVE})


def escrow_on_canceled(*, payment_hash_hex: str, now: datetime | None = None) -> bool:
    """LND canceled a hold invoice. True when the order relied on it and the parties were told.

    `waiting-buyer-invoice`/`active` → `canceled`; `fiat-sent` → a dispute for the buyer (the
    fiat may have left: a solver decides); `dispute` stays for its solver. Both parties get
    `hold-invoice-payment-canceled`. This replaces the daemon's "before the deadline it is
    ours" guess: ours carry a refund row (docs/PROTOCOL.md §Escrow).
    """
    now = now or timezone.now()
    order = order_get_by_hold_hash(payment_hash_hex=payment_hash_hex)
    if order is None or not _relies_on_escrow(order):
        return False
    if escrow_refund_is_decided(payment_hash_hex=payment_hash_hex):
        logger.info("hold invoice of order %s canceled by its own refund", order.pk)
        return False
    with transaction.atomic(durable=True):
        current = Order.objects.select_for_update().filter(pk=order.pk).first()
        if current is None or not _relies_on_escrow(current) or current.hold_invoice_hash != order.hold_invoice_hash:
            return False
        canceled = current.status in CANCELABLE and transition_order(
            order_id=current.pk,
            from_statuses=[current.status],
            to_status=S.CANCELED,
            actor=ACTOR,
            reason="hold invoice canceled by LND",
        )
        current.refresh_from_db()
        for pubkey in (current.buyer_pubkey, current.seller_pubkey):
            send(pubkey, Action.HOLD_INVOICE_PAYMENT_CANCELED, current)
        if canceled:
            for pubkey in (current.buyer_pubkey, current.seller_pubkey):
                send(pubkey, Action.CANCELED, current)
            publish_order_event(current)
    logger.error("escrow of order %s canceled at LND while the trade relied on it (%s)", order.pk, current.status)
    if current.status == S.FIAT_SENT:
        orders_wiring().escrow_lost_in_fiat_sent(order_id=current.pk, now=now)
    return True


def escrow_on_settled(*, payment_hash_hex: str) -> bool:
    """LND settled a hold invoice: only a recorded release or admin-settle does that. True
    when the order disagrees (logged for the operator; nothing to undo)."""
    order = order_get_by_hold_hash(payment_hash_hex=payment_hash_hex)
    if order is None or order.status in (S.SETTLED_HOLD_INVOICE, S.SUCCESS):
        return False
    logger.error("hold invoice of order %s settled at LND while the order is %s", order.pk, order.status)
    return True


def escrow_ensure_held(*, order: Order) -> None:
    """Before a release or admin-settle decides: refuse when LND already refunded the escrow.

    A read, not a decision: the escrow is reconciled (`escrow_on_canceled`) and the sender
    gets `not_allowed_by_status`. A node that cannot be asked raises (the message is retried).
    """
    assert order.hold_invoice_hash, order.pk
    try:
        state = get_lightning_client().lookup_invoice(payment_hash=bytes.fromhex(order.hold_invoice_hash)).state
    except InvoiceNotFound:
        state = InvoiceState.CANCELED
    if state is InvoiceState.CANCELED:
        escrow_on_canceled(payment_hash_hex=order.hold_invoice_hash)
        raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)


def escrow_settle_decided(*, order: Order) -> bool:
    """Settle an escrow whose `settled-hold-invoice` is committed. True when LND confirmed.

    A failure is not undone (the decision stands): the payout settles again before it pays,
    and pays nothing while the escrow is not settled.
    """
    try:
        escrow_settle(order=order)
    except EscrowAlreadyCanceled:
        logger.error("order %s: settle decided but LND already refunded the escrow; payout withheld", order.pk)
        return False
    except EscrowSettleError as exc:
        logger.warning("order %s: settle not confirmed by LND (%s); the payout retries it", order.pk, exc)
        return False
    return True


@contextmanager
def escrow_settle_after(*, order: Order, atomic: Atomic) -> Iterator[None]:
    """The block is the decision's transaction (`atomic()`); once it committed, the escrow is
    settled at LND (`escrow_settle_decided`), and only then is the job cluster woken for the
    payout the block queued (`nostrbridge.wake.hints_held`). The release and the admin settle
    share this order: woken at the commit, the payout often read the escrow still ACCEPTED and
    settled it a second time. A block that raises rolls back and settles nothing."""
    with hints_held():
        with atomic():
            yield
        escrow_settle_decided(order=order)


def _relies_on_escrow(order: Order) -> bool:
    return order.status in RELYING_STATUSES and order.invoice_held_at is not None
