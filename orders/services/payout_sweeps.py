"""The payout's sweeps: what the jobs run on a schedule (`orders.jobs`), apart from one attempt.

* `payout_retry_due` starts the payouts nobody is paying: a failed one whose next attempt is
  due, an attempt that could not ask LND (it marked itself due), and an orphan whose
  post-commit task was lost.
* `payout_reconcile_inflight` asks the node about claims kept past a grace window (a timeout,
  IN_FLIGHT or UNKNOWN at the send) and records its answer.

Split from orders/services/payout.py when it outgrew the house's ~400 lines: the sweeps decide
which orders and when (the grace, the orphan wait, the Lightning-address expiry), payout.py how
one attempt runs. They hold no claim logic of their own: a start is `payout_start` and the
node's answer is recorded by `payout_record_outcome`, so the claim's guards decide for a sweep
as they do for the release.
"""

import logging
from datetime import datetime, timedelta
from uuid import UUID

from django.db.models import Q
from django.utils import timezone

from lightning import get_lightning_client
from lightning.errors import LightningError
from lightning.lnurl import is_lnurl_destination
from lightning.types import PaymentOutcome, PaymentStatus
from mostro_site.config import node_config
from orders.models import Order
from orders.services.payout import SETTLED, Claim, payout_record_outcome, payout_start

logger = logging.getLogger(__name__)

RECONCILE_MIN_GRACE_SECONDS = 30
# A settled order nobody started paying (its post-commit task was lost) is picked up by the
# retry sweep after this long; the claim makes a late duplicate start harmless. An attempt that
# could not ask LND marks itself due (payout.py `_retry_soon`) and is not kept waiting for this.
ORPHAN_GRACE_SECONDS = 300
SWEEP_BATCH = 50  # each item may wait up to a payment timeout; keep one sweep short


def payout_reconcile(*, order_id: UUID | str, now: datetime | None = None) -> str:
    """Ask the node about a kept claim ("unknown, ask the node") and act on its answer."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None or order.status != SETTLED or not order.payout_payment_hash:
        return "skipped"
    claim = (order.payout_payment_hash, order.payout_claimed_at)
    try:
        outcome = get_lightning_client().track_payment(payment_hash=bytes.fromhex(claim[0]))
    except LightningError as exc:
        logger.warning("order %s: cannot track payout %s: %s", order.id, claim[0][:16], exc)
        return "pending"
    if outcome.status is PaymentStatus.UNKNOWN and not _claim_is_old(claim, now):
        return "pending"  # the send may not have reached the node yet
    if outcome.status is PaymentStatus.UNKNOWN and _fresh_invoice_could_double_pay(order, now):
        # A retry would fetch a new invoice (a new hash LND cannot deduplicate) while a late
        # first send could still pay the old one: wait until LND knows it or it expires.
        return "pending"
    if outcome.status is PaymentStatus.UNKNOWN:
        # The node has no record of a payment claimed long ago: it never left.
        outcome = PaymentOutcome(status=PaymentStatus.FAILED, payment_hash_hex=claim[0], failure_reason="not found")
    return payout_record_outcome(order=order, claim=claim, outcome=outcome, request_id=order.payout_request_id)


def payout_reconcile_inflight(*, now: datetime | None = None) -> int:
    """Sweep: reconcile claims older than the grace window. Returns how many were checked."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=_grace_seconds())
    ids = list(
        Order.objects.filter(status=SETTLED, payout_payment_hash__isnull=False, payout_claimed_at__lt=cutoff)
        .order_by("payout_claimed_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for order_id in ids:
        payout_reconcile(order_id=order_id, now=now)
    return len(ids)


def payout_retry_due(*, now: datetime | None = None) -> int:
    """Sweep for the retry job: failed payouts whose next attempt is due, plus orphans.

    Retries run with `request_id` null (a scheduler action). Returns how many were started.
    """
    now = now or timezone.now()
    config = node_config()
    unclaimed = Order.objects.filter(status=SETTLED, payout_payment_hash__isnull=True)
    due = unclaimed.filter(
        Q(next_payout_at__isnull=True) | Q(next_payout_at__lte=now),
        failed_payment=True,
        payment_attempts__lt=config.payment_attempts,
    )
    orphans = unclaimed.filter(
        Q(updated_at__lt=now - timedelta(seconds=ORPHAN_GRACE_SECONDS)) | Q(next_payout_at__lte=now),
        failed_payment=False,
    )
    ids = list((due | orphans).order_by("updated_at").values_list("pk", flat=True)[:SWEEP_BATCH])
    for order_id in ids:
        payout_start(order_id=order_id, request_id=None)
    return len(ids)


# --- the sweeps' windows --------------------------------------------------------------------


# A claim made before the expiry was stored: assume the longest invoice a wallet would issue.
UNKNOWN_EXPIRY_SECONDS = 24 * 3600


def _fresh_invoice_could_double_pay(order: Order, now: datetime | None) -> bool:
    """A Lightning-address payout whose claimed invoice has not expired yet."""
    if not order.buyer_invoice or not is_lnurl_destination(order.buyer_invoice):
        return False  # a BOLT11 retry pays the same hash: LND refuses a second payment
    expires_at = order.payout_invoice_expires_at
    if expires_at is None and order.payout_claimed_at is not None:
        expires_at = order.payout_claimed_at + timedelta(seconds=UNKNOWN_EXPIRY_SECONDS)
    return expires_at is None or (now or timezone.now()) < expires_at


def _grace_seconds() -> int:
    return max(node_config().payment_retries_interval, RECONCILE_MIN_GRACE_SECONDS)


def _claim_is_old(claim: Claim, now: datetime | None) -> bool:
    claimed_at = claim[1]
    return claimed_at is not None and claimed_at < (now or timezone.now()) - timedelta(seconds=_grace_seconds())
