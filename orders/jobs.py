"""Order jobs run by django-q2 (declared in `mostro_site/schedules.py`; mostrod `src/scheduler.rs`).

Each job is a sweep: select a bounded batch, call one service per order, log and return the
counts. Every service re-checks its order under a guarded transition, so two runs of the
same job at once (or a run racing a trader) do each change at most once. `now` exists for
tests; the scheduler calls the jobs without arguments.
"""

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from django.utils import timezone

from nostrbridge.log_context import log_context
from orders.services import guardian, timeouts
from orders.services.payout import payout_reconcile_inflight, payout_retry_due

logger = logging.getLogger(__name__)

# Expiry is one short transaction per order and no LND call: 500 orders take well under a
# second, and a backlog (node down for a day) drains at 500 a minute.
EXPIRE_BATCH = 500
# A timeout may wait on two LND calls (lookup + cancel, each bounded by the client deadline,
# 10 s): 20 orders stay inside the 240 s task timeout even with a slow node.
TIMEOUT_BATCH = 20
# One LookupInvoice per candidate, plus a cancel for the few at risk.
GUARDIAN_BATCH = 20


def expire_pending_orders(now: datetime | None = None) -> dict[str, int]:
    """§6.4: pre-trade orders past `expires_at` → expired (every 60 s)."""
    now = now or timezone.now()
    ids = timeouts.expired_order_ids(now=now, limit=EXPIRE_BATCH)
    expired = sum(_per_order(ids, lambda order_id: timeouts.order_expire(order_id=order_id, now=now)))
    counts = {"candidates": len(ids), timeouts.EXPIRED: expired}
    logger.info("expire_pending_orders: %d candidates, %d expired", counts["candidates"], expired)
    return counts


def cancel_timed_out_trades(now: datetime | None = None) -> dict[str, int]:
    """§6.3: waiting orders whose duty is older than `expiration_seconds` (every 60 s)."""
    now = now or timezone.now()
    ids = timeouts.timed_out_order_ids(now=now, limit=TIMEOUT_BATCH)
    outcomes = Counter(_per_order(ids, lambda order_id: timeouts.order_timeout(order_id=order_id, now=now)))
    counts = _counts(ids, outcomes, (timeouts.TAKER_RESET, timeouts.MAKER_CANCELED, timeouts.ESCROW_PAID))
    logger.info(
        "cancel_timed_out_trades: %d candidates, %d reset to pending, %d canceled, %d escrow paid, %d skipped",
        counts["candidates"],
        counts[timeouts.TAKER_RESET],
        counts[timeouts.MAKER_CANCELED],
        counts[timeouts.ESCROW_PAID],
        counts[timeouts.SKIPPED],
    )
    return counts


def enforce_escrow_deadline(now: datetime | None = None) -> dict[str, int]:
    """§1.7.6: cancel or dispute escrows near their HTLC expiry (every 300 s)."""
    now = now or timezone.now()
    ids = guardian.guardian_candidate_ids(now=now, limit=GUARDIAN_BATCH)
    tip = guardian.chain_tip_height() if ids else None  # no candidates: the node is not asked
    if tip is None:
        outcomes = Counter({guardian.SKIPPED: len(ids)})
    else:
        outcomes = Counter(
            _per_order(
                ids, lambda order_id: guardian.order_enforce_escrow_deadline(order_id=order_id, tip_height=tip, now=now)
            )
        )
    counts = _counts(ids, outcomes, (guardian.SAFE, guardian.CANCELED, guardian.DISPUTED))
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


def retry_failed_payouts(now: datetime | None = None) -> dict[str, int]:
    """§1.10.7: buyer payouts whose next attempt is due, plus lost post-release starts."""
    started = payout_retry_due(now=now)
    logger.info("retry_failed_payouts: %d payouts attempted", started)
    return {"attempted": started}


def reconcile_inflight_payouts(now: datetime | None = None) -> dict[str, int]:
    """§1.10.8: ask the node about payout claims older than the grace window."""
    checked = payout_reconcile_inflight(now=now)
    logger.info("reconcile_inflight_payouts: %d claims checked", checked)
    return {"checked": checked}


def _per_order(ids: list, service: Callable[[Any], Any]) -> Iterator[Any]:
    """Each order's outcome, its log lines tagged with its id (the JSON log's `order_id`)."""
    for order_id in ids:
        with log_context(order_id=order_id):
            yield service(order_id)


def _counts(ids: list, outcomes: Counter, keys: tuple[str, ...]) -> dict[str, int]:
    counts = {"candidates": len(ids)} | {key: outcomes.get(key, 0) for key in keys}
    counts["skipped"] = outcomes.get("skipped", 0)
    return counts
