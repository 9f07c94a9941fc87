"""Refunding the seller's escrow: the decision first, then LND (docs/PROTOCOL.md §Escrow).

Every path that gives a seller the escrow back (cancels, waiting timeouts, admin-cancel, the
escrow guardian) records an `EscrowRefund` row in the transaction of its guarded status
change, and only after the commit asks LND to cancel the hold invoice. So no competitor (an
`add-invoice`, an HTLC report, a release) can act on an escrow that is being refunded: it finds
the order already moved and loses its own guard. A cancel LND did not confirm (node down) is
retried by `escrow_refunds_retry` until LND says the invoice is canceled or unknown.
"""

import logging

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from lightning import get_lightning_client
from lightning.errors import AlreadySettledOrCanceled, InvoiceNotFound, LightningError
from nostrbridge.guarded import exists_where
from orders.models import EscrowRefund, Order

logger = logging.getLogger(__name__)

RETRY_BATCH = 50

# Outcomes of one attempt.
REFUNDED = "refunded"
PENDING = "pending"  # LND could not be asked; the sweep retries
ALREADY_SETTLED = "already-settled"  # a bug elsewhere: a settle without its own decision


def escrow_refund_decide(*, order: Order, reason: str) -> EscrowRefund | None:
    """Record that the order's hold invoice is to be canceled. Call inside the decision's
    transaction, after its guarded transition won, with the order as it was before it."""
    if not order.hold_invoice_hash:
        return None
    try:
        with transaction.atomic():  # a savepoint: a replayed decision keeps the first row
            return EscrowRefund.objects.create(order=order, hold_invoice_hash=order.hold_invoice_hash, reason=reason)
    except IntegrityError:
        return EscrowRefund.objects.get(hold_invoice_hash=order.hold_invoice_hash)


def escrow_refund_execute(refund: EscrowRefund | None) -> str | None:
    """Cancel the hold invoice at LND now. Must run after the decision committed (the
    Lightning client refuses a call inside a transaction under tests and DEBUG)."""
    if refund is None:
        return None
    EscrowRefund.objects.filter(pk=refund.pk).update(attempts=F("attempts") + 1)
    try:
        get_lightning_client().cancel_invoice(payment_hash=bytes.fromhex(refund.hold_invoice_hash))
    except InvoiceNotFound:
        logger.warning("hold invoice %s of order %s unknown to LND; nothing to refund", _short(refund), refund.order_id)
    except AlreadySettledOrCanceled as exc:
        if exc.settled:
            logger.error("order %s: refund decided but the hold invoice is settled", refund.order_id)
            _confirm(refund)
            return ALREADY_SETTLED
    except LightningError as exc:
        logger.warning("order %s: refund not confirmed by LND (%s); retried", refund.order_id, exc)
        return PENDING
    _confirm(refund)
    return REFUNDED


def escrow_refunds_retry(*, limit: int = RETRY_BATCH) -> int:
    """The sweep: refunds decided but not confirmed by LND, oldest first. Returns how many were refunded."""
    refunds = EscrowRefund.objects.filter(confirmed_at__isnull=True).order_by("created_at")[:limit]
    return sum(1 for refund in list(refunds) if escrow_refund_execute(refund) == REFUNDED)


def escrow_refund_is_decided(*, payment_hash_hex: str) -> bool:
    # Plain SQL: every accepted escrow asks (docs/PERFORMANCE.md, third round).
    return exists_where(EscrowRefund, where={"hold_invoice_hash": payment_hash_hex})


def _confirm(refund: EscrowRefund) -> None:
    EscrowRefund.objects.filter(pk=refund.pk, confirmed_at__isnull=True).update(confirmed_at=timezone.now())


def _short(refund: EscrowRefund) -> str:
    return refund.hold_invoice_hash[:16]
