"""The seller's escrow: one LND hold invoice per order (docs/PROTOCOL.md §Escrow).

Shape of every money step: the LND call runs outside any transaction; the hash, preimage and
payment request are stored by the guarded transition that follows it. LND replays an
invoice's state on every resubscription, so the HTLC handlers are idempotent
(`invoice_held_at` marks an accepted escrow).
"""

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from lightning import get_lightning_client
from lightning.errors import AlreadySettledOrCanceled, InvoiceNotFound, LightningError
from mostro_site.config import node_config
from mostro_site.config.faults import kill_point
from nostrbridge.guarded import select_locked_columns
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload, PeerPayload
from nostrbridge.protocol.structs import Peer
from orders.models import Order
from orders.publish import publish_order_event
from orders.selectors import order_get_by_hold_hash
from orders.services.amounts import seller_escrow_sats
from orders.services.escrow_refund import escrow_refund_is_decided
from orders.services.traders import trader_user_info
from orders.status import WAITING_STATUSES, OrderStatus
from orders.transitions import transition_order, update_order_guarded
from orders.watch_handoff import hold_invoice_follow_on_commit
from orders.wire import buyer_view_amount, order_payload, replies_together, seller_view_amount, send, small_order

logger = logging.getLogger(__name__)

ACTOR = "lightning"
BLOCK_SECONDS = 600


class EscrowError(Exception):
    """The escrow could not be created, settled or canceled; nothing is known to have moved."""


class EscrowSettleError(EscrowError):
    pass


class EscrowCancelError(EscrowError):
    pass


class EscrowAlreadyCanceled(EscrowSettleError, AlreadySettledOrCanceled):
    """Settle refused: the hold invoice was canceled first (the seller got the refund).

    Also LND's `AlreadySettledOrCanceled` (`settled` False), so callers written against the
    Lightning error see the same type.
    """


@dataclass(frozen=True, slots=True)
class EscrowInvoice:
    payment_request: str
    payment_hash_hex: str
    preimage_hex: str

    def order_fields(self, *, request_id: int | None) -> dict[str, Any]:
        """Columns the guarded transition stores with the new status."""
        return {
            "hold_invoice_hash": self.payment_hash_hex,
            "hold_invoice_preimage": self.preimage_hex,
            "hold_invoice_payment_request": self.payment_request,
            "hold_invoice_request_id": request_id,
            "invoice_held_at": None,
        }


def escrow_watch_on_commit(*, payment_hash_hex: str) -> None:
    """Have an in-process invoice watcher subscribe the new hold invoice as soon as it is stored,
    instead of at its next poll (up to a second later: the seller may already be paying)."""
    hold_invoice_follow_on_commit(payment_hash_hex=payment_hash_hex)


def escrow_memo(order: Order) -> str:
    # Always "SELL BTC", whatever the order kind: the daemon's exact wording (docs/PROTOCOL.md §Escrow).
    return (
        f"Escrow amount Order #{order.id}: SELL BTC for {order.fiat_code} {order.fiat_amount} - It WILL "
        "FREEZE IN WALLET. It will release once you release. It will return if buyer does not confirm the payment"
    )


def escrow_create_hold_invoice(*, order: Order) -> EscrowInvoice:
    """Ask LND for the seller's hold invoice (amount + fee). Must run outside a transaction.

    `order` carries the amounts fixed by the take (possibly not saved yet).
    """
    amount = seller_escrow_sats(amount_sats=order.amount_sats, fee_sats=order.fee_sats)
    if amount <= 0:
        # An amountless hold invoice would let the seller lock any amount.
        raise EscrowError(f"refusing a hold invoice of {amount} sats for order {order.id}")
    preimage = secrets.token_bytes(32)
    payment_hash = hashlib.sha256(preimage).hexdigest()
    hold = get_lightning_client().add_hold_invoice(
        amount_sats=amount,
        preimage=preimage,
        memo=escrow_memo(order),
        cltv_expiry=node_config().hold_invoice_cltv_delta,
    )
    if hold.payment_hash_hex.lower() != payment_hash:
        raise EscrowError(f"LND returned hash {hold.payment_hash_hex} for order {order.id}")
    logger.info("hold invoice %s created for order %s (%s sats)", payment_hash, order.id, amount)
    return EscrowInvoice(
        payment_request=hold.payment_request, payment_hash_hex=payment_hash, preimage_hex=preimage.hex()
    )


def escrow_settle(*, order: Order) -> None:
    """Settle the seller's hold invoice with the stored preimage; settling twice is a no-op.

    Raises `EscrowSettleError` when the invoice is canceled, missing, or LND cannot be reached.
    """
    if not order.hold_invoice_preimage:
        raise EscrowSettleError(f"order {order.id} has no hold-invoice preimage")
    try:
        get_lightning_client().settle_invoice(preimage=bytes.fromhex(order.hold_invoice_preimage))
    except AlreadySettledOrCanceled as exc:
        if exc.settled:
            logger.info("hold invoice of order %s was already settled", order.id)
            return
        raise EscrowAlreadyCanceled(
            f"hold invoice of order {order.id} is canceled", code=exc.code, details=exc.details
        ) from exc
    except LightningError as exc:
        raise EscrowSettleError(f"settling order {order.id} failed: {exc.message}") from exc


def escrow_cancel(*, order: Order) -> None:
    """Cancel the seller's hold invoice (refund); "already canceled" and "no invoice" succeed.

    Raises `EscrowCancelError` when the invoice was settled or LND cannot be reached.
    """
    if not order.hold_invoice_hash:
        return
    _cancel(payment_hash_hex=order.hold_invoice_hash, label=str(order.id))


def escrow_cancel_unused(*, invoice: EscrowInvoice, order_id: Any) -> None:
    """Best-effort cancel of a hold invoice nobody was shown (a take that lost its race)."""
    try:
        _cancel(payment_hash_hex=invoice.payment_hash_hex, label=str(order_id))
    except EscrowCancelError:
        # Never shown to anyone, so it cannot be paid; LND expires it on its own.
        logger.warning("could not cancel unused hold invoice %s of order %s", invoice.payment_hash_hex, order_id)


def _cancel(*, payment_hash_hex: str, label: str) -> None:
    try:
        get_lightning_client().cancel_invoice(payment_hash=bytes.fromhex(payment_hash_hex))
    except InvoiceNotFound:
        logger.warning("hold invoice %s of order %s unknown to LND; nothing to cancel", payment_hash_hex, label)
    except AlreadySettledOrCanceled as exc:
        if exc.settled:
            raise EscrowCancelError(f"hold invoice of order {label} is already settled") from exc
    except LightningError as exc:
        raise EscrowCancelError(f"canceling the hold invoice of order {label} failed: {exc.message}") from exc


# --- replies shared by the take, add-invoice and HTLC flows (inside the caller's transaction) ---


def notify_pay_invoice(order: Order, *, request_id: int | None) -> None:
    """`pay-invoice` to the seller and `waiting-seller-to-pay` to the buyer (docs/PROTOCOL.md §Take)."""
    view = small_order(order, status=OrderStatus.WAITING_PAYMENT, amount_sats=seller_view_amount(order))
    payload = PaymentRequestPayload(view, order.hold_invoice_payment_request or "", None)
    with replies_together():  # one outbox INSERT for both
        send(
            order.seller_pubkey,
            Action.PAY_INVOICE,
            order,
            request_id=request_id,
            trade_index=order.trade_index_seller,
            payload=payload,
        )
        send(
            order.buyer_pubkey,
            Action.WAITING_SELLER_TO_PAY,
            order,
            request_id=request_id,
            trade_index=order.trade_index_buyer,
        )


def notify_active(order: Order, *, seller_request_id: int | None, buyer_request_id: int | None, **view: bool) -> None:
    """`buyer-took-order` to the seller and `hold-invoice-payment-accepted` to the buyer."""
    common = {"status": OrderStatus.ACTIVE, "include_pubkeys": True}
    seller_view = order_payload(order, amount_sats=seller_view_amount(order), **common)
    buyer_view = order_payload(order, amount_sats=buyer_view_amount(order), **common, **view)
    with replies_together():  # one outbox INSERT for both
        send(order.seller_pubkey, Action.BUYER_TOOK_ORDER, order, request_id=seller_request_id, payload=seller_view)
        send(
            order.buyer_pubkey,
            Action.HOLD_INVOICE_PAYMENT_ACCEPTED,
            order,
            request_id=buyer_request_id,
            payload=buyer_view,
        )


def notify_taker_reputation(order: Order, *, recipient: str | None, action: Action, taker_identity: str | None) -> None:
    """The taker-reputation notice (docs/PROTOCOL.md §Add-invoice, §Escrow), sent for compatibility.

    mostro-core clients discard it (its payload fails `verify()` for this action); kept so a
    node swap is invisible to clients that do read it.
    """
    peer = Peer(pubkey="", reputation=trader_user_info(identity=taker_identity))
    send(recipient, action, order, payload=PeerPayload(peer))


# --- HTLC events (the invoice watcher calls these) -------------------------------------------


# What `escrow_on_accepted` reads under the lock: the status, whether the HTLC is recorded, and
# whether the buyer's invoice is known (which way the order goes).
_ACCEPT_COLUMNS = ("status", "invoice_held_at", "buyer_invoice")


def escrow_on_accepted(*, payment_hash_hex: str) -> bool:
    """The seller's HTLC is locked in (docs/PROTOCOL.md §Escrow). True when this call acted."""
    order = order_get_by_hold_hash(payment_hash_hex=payment_hash_hex)
    if order is not None and order.invoice_held_at is not None:
        return False  # LND replaying the state of an escrow already recorded
    if (
        order is None
        or order.status not in WAITING_STATUSES
        or escrow_refund_is_decided(payment_hash_hex=payment_hash_hex)
    ):
        _refund_unwanted(payment_hash_hex, order)
        return False
    kill_point("hold-accepted")
    now = timezone.now()
    guard = Q(invoice_held_at__isnull=True, hold_invoice_hash=order.hold_invoice_hash)
    with transaction.atomic(durable=True):
        # The three columns the decision needs, locked; not the wide row again: the transition
        # below reloads `order` from its guarded UPDATE (RETURNING), so no other column of the
        # instance read above is used before it is refreshed.
        current = select_locked_columns(Order, pk=order.pk, columns=_ACCEPT_COLUMNS)
        if current is None:
            return False
        status, held_at, buyer_invoice = current
        if status not in WAITING_STATUSES or held_at is not None:
            return False
        order.status = status
        if buyer_invoice:
            acted = _accept_to_active(order, now=now, guard=guard)
        else:
            acted = _accept_to_waiting_buyer_invoice(order, now=now, guard=guard)
    if acted:
        logger.info("escrow of order %s accepted (hash %s)", order.id, payment_hash_hex)
    return acted


def _refund_unwanted(payment_hash_hex: str, order: Order | None) -> None:
    """A seller paid an escrow no order waits for any more (the take was reset or canceled
    meanwhile): cancel the HTLC now so the funds are not locked until the CLTV expiry."""
    logger.warning(
        "accepted HTLC %s not wanted (order %s, status %s); refunding",
        payment_hash_hex,
        order.pk if order else None,
        order.status if order else None,
    )
    try:
        _cancel(payment_hash_hex=payment_hash_hex, label=str(order.pk) if order else "?")
    except EscrowCancelError:
        logger.exception("could not refund the unwanted HTLC %s", payment_hash_hex)


def _accept_to_active(order: Order, *, now: datetime, guard: Q) -> bool:
    won = transition_order(
        order_id=order.pk,
        from_statuses=[order.status],
        to_status=OrderStatus.ACTIVE,
        actor=ACTOR,
        reason="hold invoice accepted, buyer invoice known",
        set_fields={"invoice_held_at": now},
        guard=guard,
        reload=order,
    )
    if won:
        request_id = order.hold_invoice_request_id
        notify_active(order, seller_request_id=request_id, buyer_request_id=request_id)
        publish_order_event(order, fresh=True)
    return won


def _accept_to_waiting_buyer_invoice(order: Order, *, now: datetime, guard: Q) -> bool:
    if order.status == OrderStatus.WAITING_BUYER_INVOICE:
        # Unreachable through the protocol: the escrow is created only on the way to
        # waiting-payment. Record the lock; the buyer already owes the invoice.
        logger.warning("order %s: HTLC accepted while already waiting for the buyer invoice", order.pk)
        return update_order_guarded(
            order_id=order.pk, statuses=[order.status], set_fields={"invoice_held_at": now}, guard=guard
        )
    won = transition_order(
        order_id=order.pk,
        from_statuses=[OrderStatus.WAITING_PAYMENT],
        to_status=OrderStatus.WAITING_BUYER_INVOICE,
        actor=ACTOR,
        reason="hold invoice accepted, buyer invoice missing",
        # The buyer's duty starts now: the waiting timeout is measured from here (docs/PROTOCOL.md §Waiting-timeout).
        set_fields={"invoice_held_at": now, "taken_at": now},
        guard=guard,
        reload=order,
    )
    if not won:
        return False
    request_id = order.hold_invoice_request_id
    view = order_payload(order, amount_sats=buyer_view_amount(order))
    send(order.buyer_pubkey, Action.ADD_INVOICE, order, request_id=request_id, payload=view)
    send(order.seller_pubkey, Action.WAITING_BUYER_INVOICE, order, request_id=request_id)
    notify_taker_reputation(
        order, recipient=order.buyer_pubkey, action=Action.ADD_INVOICE, taker_identity=order.master_seller_pubkey
    )
    publish_order_event(order, fresh=True)
    return True


def escrow_deadline(order: Order) -> datetime | None:
    """Nominal end of the escrow: `invoice_held_at + (cltv_delta − margin) × 600 s` (docs/PROTOCOL.md §Escrow)."""
    if order.invoice_held_at is None:
        return None
    config = node_config()
    margin = config.escrow_deadline_margin_blocks
    if margin >= config.hold_invoice_cltv_delta:
        margin = config.hold_invoice_cltv_delta // 2  # the daemon's clamp for a misconfigured margin
    return order.invoice_held_at + timedelta(seconds=(config.hold_invoice_cltv_delta - margin) * BLOCK_SECONDS)
