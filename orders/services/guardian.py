"""Escrow deadline guardian (docs/PROTOCOL.md §Escrow-guardian).

A seller's hold-invoice HTLC expires at a block height; LND cancels it on its own a few blocks
before that, and the seller's funds then return silently while the trade still relies on
them. The guardian acts first, once the chain tip is within `escrow_deadline_margin_blocks`
of the lowest accepted HTLC expiry (or the HTLC is already gone):

* `active` → the hold invoice is canceled, the order `canceled`, both parties told;
* `fiat-sent` → the fiat may have left, so a human decides: a buyer-initiated dispute is
  opened (a closed dispute row is reopened, the order has at most one).

Candidates are pre-filtered by time (`invoice_held_at` older than half the nominal window)
so the node is asked only about escrows that could be near their end. This module holds the
order side (candidates, the chain test, the `active` cancel); the pass over one order and
the job live in disputes (`disputes.services.escrow_deadline`, `disputes.jobs`), because the
`fiat-sent` branch opens a dispute and orders sits below disputes.
"""

import functools
import logging
from datetime import datetime, timedelta
from uuid import UUID

from django.db import transaction
from django.db.models import Q

from lightning import get_lightning_client
from lightning.errors import InvoiceNotFound, LightningError
from lightning.types import InvoiceState
from mostro_site.config import node_config
from nostrbridge.protocol.enums import Action
from orders.models import Order
from orders.publish import publish_order_event
from orders.services.escrow import BLOCK_SECONDS
from orders.services.escrow_refund import escrow_refund_decide, escrow_refund_execute
from orders.status import OrderStatus
from orders.transitions import transition_order
from orders.wire import send

logger = logging.getLogger(__name__)

ACTOR = "scheduler"
GUARDED_STATUSES = (OrderStatus.ACTIVE, OrderStatus.FIAT_SENT)

# Outcomes, also the keys of the job's count dict (AT_RISK is a verdict, never an outcome).
SAFE = "safe"
CANCELED = "canceled"
DISPUTED = "disputed"
SKIPPED = "skipped"
AT_RISK = "at-risk"


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


def escrow_verdict(order: Order, tip_height: int) -> str:
    """SAFE, AT_RISK, or SKIPPED (the node could not say, or a release already settled it)."""
    assert order.hold_invoice_hash, order.pk  # candidates are held escrows
    try:
        update = get_lightning_client().lookup_invoice(payment_hash=bytes.fromhex(order.hold_invoice_hash))
    except InvoiceNotFound:
        return AT_RISK  # LND forgot the invoice: the escrow is gone
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
    return AT_RISK


def order_cancel_at_risk_escrow(order: Order, now: datetime) -> str:
    """`active` → the order `canceled` and the refund decided, both told; then LND cancels."""
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
        refund = escrow_refund_decide(order=order, reason="escrow deadline")
        current = Order.objects.get(pk=order.pk)
        publish_order_event(current, now=int(now.timestamp()))
        send(current.maker_pubkey, Action.CANCELED, current)
        send(current.taker_pubkey, Action.CANCELED, current)
    escrow_refund_execute(refund)  # a refund LND does not confirm is retried by the sweep
    return CANCELED
