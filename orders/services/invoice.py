"""The buyer's payout destination: validation (docs/PROTOCOL.md §Invoices) and `add-invoice` (§Add-invoice).

Every lightning-side refusal (each `InvoiceInvalid` code, each `LnurlError`) becomes
`CantDo(invalid_invoice)`; the distinct codes only reach the log.
"""

import logging
from datetime import datetime
from uuid import UUID

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from lightning.address_check import address_checker
from lightning.bolt11 import InvoiceInvalid, validate_buyer_invoice
from lightning.errors import LightningUnavailable
from lightning.lnurl import LnurlError, PayRequest, is_lnurl_destination
from mostro_site.config import node_config
from nostrbridge.context import Atomic, RetryLater, SilentDrop
from nostrbridge.event_settings import invoice_network
from nostrbridge.protocol.enums import Action, CantDoReason, Kind
from nostrbridge.protocol.errors import CantDo
from nostrbridge.wake import INBOX_CHANNEL, wake
from orders.models import Order
from orders.publish import publish_order_event
from orders.selectors import order_get
from orders.services.amounts import buyer_payout_sats
from orders.services.escrow import (
    EscrowInvoice,
    escrow_cancel_unused,
    escrow_create_hold_invoice,
    escrow_watch_on_commit,
    notify_active,
    notify_pay_invoice,
    notify_taker_reputation,
)
from orders.status import OrderStatus
from orders.transitions import transition_order, update_order_guarded
from orders.wire import send

logger = logging.getLogger(__name__)


def node_network() -> str:
    """The LND node's network ("regtest", …) for the invoice chain check; never in a transaction."""
    network = invoice_network()
    if network is None:
        # Without the node's network no invoice can be judged: an internal error (retried).
        raise LightningUnavailable("LND network unknown; cannot validate the buyer invoice")
    return network


# A deferred message is looked at again after this, or sooner when its check completes.
RECHECK_SECONDS = 0.2


def _nudge_inbox() -> None:
    wake(INBOX_CHANNEL)  # a deferred message's Lightning-address verdict is in


def _address_verdict(text: str) -> PayRequest | None:
    checker = address_checker()
    checker.on_done = _nudge_inbox
    # Off the serial path: waits at most a quarter second for the outside server.
    return checker.check(text)


def lightning_address_ready(destination: str | None) -> None:
    """First step of the handlers that take a payout destination (before even the trade-index
    gate, which registers a first-time identity): a Lightning address whose check is still
    running hands the message back to the inbox, so the retry runs every step afresh. A failed
    check is not raised here: it is answered at its own step (`invalid_invoice`)."""
    text = (destination or "").strip()
    if not text or not is_lnurl_destination(text):
        return
    try:
        verdict = _address_verdict(text)
    except LnurlError:
        return
    if verdict is None:
        raise RetryLater("Lightning address still being checked", seconds=RECHECK_SECONDS)


def buyer_invoice_validate(*, destination: str | None, expected_amount_sats: int | None) -> str:
    """Return `destination` if it is an acceptable payout target, else raise CantDo(invalid_invoice).

    A bolt11 with an amount must be for exactly `expected_amount_sats`; a Lightning address or
    LNURL must resolve to a payRequest (an HTTP call: never inside a transaction).
    """
    text = (destination or "").strip()
    if not text:
        raise CantDo(CantDoReason.INVALID_INVOICE)
    if is_lnurl_destination(text):
        try:
            verdict = _address_verdict(text)
        except LnurlError as exc:
            logger.info("payout destination refused (%s): %s", exc.code, exc.message)
            raise CantDo(CantDoReason.INVALID_INVOICE) from exc
        if verdict is None:
            raise RetryLater("Lightning address still being checked", seconds=RECHECK_SECONDS)
        return destination or ""
    config = node_config()
    try:
        validate_buyer_invoice(
            text,
            expected_amount_sats=expected_amount_sats,
            network=node_network(),
            min_payment_amount_sats=config.min_payment_amount_sats,
            invoice_expiration_window_seconds=config.invoice_expiration_window,
            max_final_cltv_expiry_delta=config.max_final_cltv_expiry_delta,
        )
    except InvoiceInvalid as exc:
        logger.info("buyer invoice refused (%s): %s", exc.code, exc.message)
        raise CantDo(CantDoReason.INVALID_INVOICE) from exc
    return destination or ""


def order_add_invoice(
    *,
    order_id: UUID | str | None,
    sender: str,
    invoice: str | None,
    request_id: int | None,
    atomic: Atomic = transaction.atomic,
) -> Order:
    """The buyer's `add-invoice` (docs/PROTOCOL.md §Add-invoice), checks in the spec's order.

    `atomic` opens the final transaction (the handler passes `ctx.atomic`).
    """
    order = order_get(order_id=order_id)
    if order is None:
        raise CantDo(CantDoReason.NOT_FOUND)
    if sender != order.buyer_pubkey:
        raise CantDo(CantDoReason.INVALID_PEER)
    expected = buyer_payout_sats(amount_sats=order.amount_sats, fee_sats=order.fee_sats)
    destination = buyer_invoice_validate(destination=invoice, expected_amount_sats=expected)
    if order.status == OrderStatus.SETTLED_HOLD_INVOICE:
        return _replace_failed_payout_invoice(order, destination=destination, request_id=request_id, atomic=atomic)
    if order.status != OrderStatus.WAITING_BUYER_INVOICE:
        raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
    if order.invoice_held_at is not None:
        return _activate(order, destination=destination, request_id=request_id, atomic=atomic)
    return _request_escrow(order, destination=destination, request_id=request_id, atomic=atomic)


def _replace_failed_payout_invoice(order: Order, *, destination: str, request_id: int | None, atomic: Atomic) -> Order:
    """After a failed payout: swap the invoice for the retry job, unless a payout is in flight.

    A payout is in flight while its claim (`payout_payment_hash`) is set (orders.services.payout).
    The attempts restart and the retry sweep picks the order up at its next run.
    """
    with atomic():
        replaced = update_order_guarded(
            order_id=order.pk,
            statuses=[OrderStatus.SETTLED_HOLD_INVOICE],
            set_fields={"buyer_invoice": destination, "payment_attempts": 0, "next_payout_at": None},
            guard=Q(payout_payment_hash__isnull=True),
        )
        if replaced:
            send(order.buyer_pubkey, Action.INVOICE_UPDATED, order, request_id=request_id)
    if not replaced:
        raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
    order.refresh_from_db()
    return order


def _activate(order: Order, *, destination: str, request_id: int | None, atomic: Atomic) -> Order:
    """Buy order whose seller already paid: the trade becomes `active`."""
    with atomic():
        won = transition_order(
            order_id=order.pk,
            from_statuses=[OrderStatus.WAITING_BUYER_INVOICE],
            to_status=OrderStatus.ACTIVE,
            actor=order.buyer_pubkey or "",
            reason="add-invoice, escrow already locked",
            set_fields={"buyer_invoice": destination},
            guard=Q(invoice_held_at__isnull=False, buyer_pubkey=order.buyer_pubkey),
        )
        if won:
            order.refresh_from_db()
            notify_active(order, seller_request_id=None, buyer_request_id=request_id, include_buyer_invoice=True)
            publish_order_event(order)
    if not won:
        raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
    return order


def _request_escrow(order: Order, *, destination: str, request_id: int | None, atomic: Atomic) -> Order:
    """Sell order: the buyer's invoice is in, so the seller now gets the hold invoice."""
    escrow = escrow_create_hold_invoice(order=order)
    now = timezone.now()
    try:
        won = _commit_escrow(
            order, escrow=escrow, destination=destination, request_id=request_id, now=now, atomic=atomic
        )
    except Exception:
        escrow_cancel_unused(invoice=escrow, order_id=order.pk)  # rolled back: nobody will see it
        raise
    if not won:
        escrow_cancel_unused(invoice=escrow, order_id=order.pk)
        # The daemon wraps every hold-invoice failure of add-invoice into an internal error.
        raise SilentDrop(f"add-invoice on order {order.pk} lost a concurrent state change")
    return order


def _commit_escrow(
    order: Order, *, escrow: EscrowInvoice, destination: str, request_id: int | None, now: datetime, atomic: Atomic
) -> bool:
    with atomic():
        won = transition_order(
            order_id=order.pk,
            from_statuses=[OrderStatus.WAITING_BUYER_INVOICE],
            to_status=OrderStatus.WAITING_PAYMENT,
            actor=order.buyer_pubkey or "",
            reason="add-invoice, hold invoice issued",
            # The seller's duty starts now: the waiting timeout is measured from here.
            set_fields={"buyer_invoice": destination, "taken_at": now, **escrow.order_fields(request_id=request_id)},
            guard=Q(hold_invoice_hash__isnull=True, buyer_pubkey=order.buyer_pubkey),
        )
        if won:
            escrow_watch_on_commit(payment_hash_hex=escrow.payment_hash_hex)
            order.refresh_from_db()
            if order.kind == Kind.SELL:
                notify_taker_reputation(
                    order,
                    recipient=order.seller_pubkey,
                    action=Action.PAY_INVOICE,
                    taker_identity=order.master_buyer_pubkey,
                )
            notify_pay_invoice(order, request_id=request_id)
            publish_order_event(order)
    return won
