"""Escrow deadline guardian (behaviour §1.7.6, §1.14.7; 03-actions.md §6.5).

A seller's hold-invoice HTLC expires at a block height; LND cancels it on its own a few blocks
before that, and the seller's funds then return silently while the trade still relies on
them. The guardian acts first, once the chain tip is within `escrow_deadline_margin_blocks`
of the lowest accepted HTLC expiry (or the HTLC is already gone):

* `active` → the hold invoice is canceled, the order `canceled`, both parties told;
* `fiat-sent` → the fiat may have left, so a human decides: a buyer-initiated dispute is
  opened (a closed dispute row is reopened, the order has at most one).

Candidates are pre-filtered by time (`invoice_held_at` older than half the nominal window)
so the node is asked only about escrows that could be near their end.
"""

import functools
import logging
from datetime import datetime, timedelta
from uuid import UUID

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from disputes.events import publish_dispute_event
from disputes.models import OPEN_DISPUTE_STATUSES, Dispute, DisputeInitiator, DisputeStatus
from disputes.services.open import dispute_notify_opened
from lightning import get_lightning_client
from lightning.errors import InvoiceNotFound, LightningError
from lightning.types import InvoiceState
from mostro_site.config import node_config
from nostrbridge.event_settings import network_tag_prefetch
from nostrbridge.protocol.enums import Action
from orders.models import Order
from orders.publish import publish_order_event
from orders.services.escrow import BLOCK_SECONDS, EscrowCancelError, escrow_cancel
from orders.status import OrderStatus
from orders.transitions import transition_order
from orders.wire import send

logger = logging.getLogger(__name__)

ACTOR = "scheduler"
GUARDED_STATUSES = (OrderStatus.ACTIVE, OrderStatus.FIAT_SENT)

# Outcomes, also the keys of the job's count dict.
SAFE = "safe"
CANCELED = "canceled"
DISPUTED = "disputed"
SKIPPED = "skipped"
_AT_RISK = "at-risk"


def escrow_guard_margin_blocks() -> int:
    """The configured margin; one ≥ the CLTV delta would act at once, so it is clamped to half."""
    config = node_config()
    cltv, margin = config.hold_invoice_cltv_delta, config.escrow_deadline_margin_blocks
    if margin >= cltv:
        _warn_clamped(cltv, margin)
        return cltv // 2
    return margin


@functools.lru_cache(maxsize=8)
def _warn_clamped(cltv: int, margin: int) -> None:
    # Cached: logged once per process and setting pair, not once per order and tick.
    logger.error("escrow_deadline_margin_blocks %s >= hold_invoice_cltv_delta %s; using %s", margin, cltv, cltv // 2)


def escrow_guard_window_seconds() -> int:
    """Nominal escrow lifetime after `invoice_held_at`: (cltv_delta − margin) × 600 s."""
    return (node_config().hold_invoice_cltv_delta - escrow_guard_margin_blocks()) * BLOCK_SECONDS


def guardian_candidate_ids(*, now: datetime, limit: int) -> list[UUID]:
    """Locked escrows held for more than half the nominal window, oldest first."""
    cutoff = now - timedelta(seconds=escrow_guard_window_seconds() // 2)
    query = Order.objects.filter(
        status__in=GUARDED_STATUSES, hold_invoice_hash__isnull=False, invoice_held_at__lt=cutoff
    ).order_by("invoice_held_at")
    return list(query.values_list("pk", flat=True)[:limit])


def chain_tip_height() -> int | None:
    """The node's block height, or None when the node cannot be asked (the pass is skipped)."""
    try:
        return get_lightning_client().get_info().block_height
    except LightningError as exc:
        logger.warning("escrow guardian: LND get_info failed (%s); pass skipped", exc)
        return None


def order_enforce_escrow_deadline(*, order_id: UUID | str, tip_height: int, now: datetime | None = None) -> str:
    """Check one escrow against the chain tip and act when it is at risk; returns an outcome."""
    now = now or timezone.now()
    order = Order.objects.filter(pk=order_id).first()
    if order is None or order.status not in GUARDED_STATUSES or not order.hold_invoice_hash:
        return SKIPPED
    verdict = _escrow_verdict(order, tip_height)
    if verdict != _AT_RISK:
        return verdict
    if order.status == OrderStatus.ACTIVE:
        return _cancel_active(order, now)
    return _force_dispute(order, now)


def _escrow_verdict(order: Order, tip_height: int) -> str:
    try:
        update = get_lightning_client().lookup_invoice(payment_hash=bytes.fromhex(order.hold_invoice_hash))
    except InvoiceNotFound:
        return _AT_RISK  # LND forgot the invoice: the escrow is gone
    except LightningError as exc:
        logger.warning("order %s: hold invoice lookup failed (%s); guardian retries later", order.pk, exc)
        return SKIPPED
    if update.state is InvoiceState.SETTLED:
        # A release or admin settle won; its own transition finishes the order.
        logger.info("order %s: hold invoice already settled; guardian leaves it", order.pk)
        return SKIPPED
    lowest = update.lowest_htlc_expiry_height if update.state is InvoiceState.ACCEPTED else None
    if lowest is not None and tip_height + escrow_guard_margin_blocks() < lowest:
        return SAFE
    logger.error(
        "order %s (%s): escrow at risk (invoice %s, tip %s, lowest HTLC expiry %s)",
        order.pk,
        order.status,
        update.state,
        tip_height,
        lowest,
    )
    return _AT_RISK


def _cancel_active(order: Order, now: datetime) -> str:
    try:
        escrow_cancel(order=order)
    except EscrowCancelError as exc:
        logger.warning("order %s: guardian could not cancel the hold invoice: %s", order.pk, exc)
        return SKIPPED
    network_tag_prefetch()
    with transaction.atomic(durable=True):
        won = transition_order(
            order_id=order.pk,
            from_statuses=[OrderStatus.ACTIVE],
            to_status=OrderStatus.CANCELED,
            actor=ACTOR,
            reason="escrow deadline: canceled before the HTLC expires",
            guard=Q(hold_invoice_hash=order.hold_invoice_hash),
        )
        if not won:
            # e.g. fiat-sent arrived meanwhile: the next pass opens a dispute instead.
            return SKIPPED
        current = Order.objects.get(pk=order.pk)
        publish_order_event(current, now=int(now.timestamp()))
        send(current.maker_pubkey, Action.CANCELED, current)
        send(current.taker_pubkey, Action.CANCELED, current)
    return CANCELED


def _force_dispute(order: Order, now: datetime) -> str:
    with transaction.atomic(durable=True):
        won = transition_order(
            order_id=order.pk,
            from_statuses=[OrderStatus.FIAT_SENT],
            to_status=OrderStatus.DISPUTE,
            actor=ACTOR,
            reason="escrow deadline: dispute opened for the buyer",
            set_fields={"buyer_dispute": True},
            guard=Q(hold_invoice_hash=order.hold_invoice_hash),
        )
        if not won:
            return SKIPPED
        dispute = _dispute_open_or_reopen(order, now)
        dispute_notify_opened(order, dispute, sender=order.buyer_pubkey, request_id=None)
        # As for a user's dispute, the order's 38383 is not republished (§1.14.1).
        publish_dispute_event(dispute=dispute, now=int(now.timestamp()))
    return DISPUTED


def _dispute_open_or_reopen(order: Order, now: datetime) -> Dispute:
    """The order's one dispute row, initiated by the buyer. Caller holds the order lock."""
    fields = {
        "status": DisputeStatus.INITIATED,
        "initiator": DisputeInitiator.BUYER,
        "initiator_pubkey": order.buyer_pubkey,
        "order_previous_status": OrderStatus.FIAT_SENT,
    }
    existing = Dispute.objects.select_for_update().filter(order_id=order.pk).first()
    if existing is None:
        return Dispute.objects.create(order_id=order.pk, **fields)
    if existing.status in OPEN_DISPUTE_STATUSES:
        return existing  # unreachable through the protocol; keep the solver's work
    reopened = {"solver_pubkey": None, "taken_at": None, "resolved_at": None, "created_at": now, "updated_at": now}
    Dispute.objects.filter(pk=existing.pk).update(**fields, **reopened)
    existing.refresh_from_db()
    return existing
