"""Dispute jobs run by django-q2 (declared in `mostro_site/schedules.py`; mostrod `src/scheduler.rs`)."""

import logging
from collections import Counter
from datetime import datetime

from django.utils import timezone

from disputes.services.escrow_deadline import escrow_deadline_enforce
from orders.services import guardian

logger = logging.getLogger(__name__)

# One LookupInvoice per candidate, plus a cancel for the few at risk.
GUARDIAN_BATCH = 20


def enforce_escrow_deadline(now: datetime | None = None) -> dict[str, int]:
    """docs/PROTOCOL.md §Escrow-guardian: cancel or dispute escrows near their HTLC expiry (every 300 s).

    A job of disputes because an at-risk `fiat-sent` escrow becomes a buyer dispute.
    """
    now = now or timezone.now()
    ids = guardian.guardian_candidate_ids(now=now, limit=GUARDIAN_BATCH)
    tip = guardian.chain_tip_height() if ids else None  # no candidates: the node is not asked
    if tip is None:
        outcomes = Counter({guardian.SKIPPED: len(ids)})
    else:
        outcomes = Counter(escrow_deadline_enforce(order_id=order_id, tip_height=tip, now=now) for order_id in ids)
    keys = (guardian.SAFE, guardian.CANCELED, guardian.DISPUTED, guardian.SKIPPED)
    counts = {"candidates": len(ids)} | {key: outcomes.get(key, 0) for key in keys}
    logger.info(
        "enforce_escrow_deadline: %d candidates at tip %s, %d safe, %d canceled, %d disputed, %d skipped",
        counts["candidates"],
        tip,
        counts[guardian.SAFE],
        counts[guardian.CANCELED],
        counts[guardian.DISPUTED],
        counts[guardian.SKIPPED],
    )
    return counts
