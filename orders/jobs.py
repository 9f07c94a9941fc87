"""Order jobs run by django-q2 (declared in `mostro_site/schedules.py`; mostrod `src/scheduler.rs`),
the development-fee sweep among them (mostrod `job_process_dev_fee_payment`).

Each job is a sweep: select a bounded batch, call one service per order, log and return the
counts. Every service re-checks its order under a guarded transition, so two runs of the
same job at once (or a run racing a trader) do each change at most once. `now` exists for
tests; the scheduler calls the jobs without arguments.
"""

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from django.utils import timezone

from devfee import services as devfee
from nostrbridge.log_context import log_context
from orders.selectors import dev_fee_billable_orders
from orders.services import timeouts
from orders.services.escrow_refund import escrow_refunds_retry
from orders.services.event_reconciliation import order_event_republish, parked_order_event_ids
from orders.services.payout_sweeps import payout_reconcile_inflight, payout_retry_due

logger = logging.getLogger(__name__)

# Expiry is one short transaction per order and no LND call: 500 orders take well under a
# second, and a backlog (node down for a day) drains at 500 a minute.
EXPIRE_BATCH = 500
# A timeout may wait on two LND calls (lookup + cancel, each bounded by the client deadline,
# 10 s): 20 orders stay inside the 240 s task timeout even with a slow node.
TIMEOUT_BATCH = 20
# Parked order events are rare; a republish is one short transaction.
RECONCILE_BATCH = 100

# Ledger rows are cheap inserts.
DEV_FEE_CREATE_BATCH = 500
# One TrackPayment each (no waiting): cheap.
DEV_FEE_RECONCILE_BATCH = 50
# An attempt can take ~40 s (two LNURL requests of 4 s, the send's 25 s result window and the
# client deadline): 5 keep a tick inside the 240 s task timeout.
DEV_FEE_PAY_BATCH = 5


def expire_pending_orders(now: datetime | None = None) -> dict[str, int]:
    """docs/PROTOCOL.md §Expiry: pre-trade orders past `expires_at` → expired (every 60 s)."""
    now = now or timezone.now()
    ids = timeouts.expired_order_ids(now=now, limit=EXPIRE_BATCH)
    expired = sum(_per_order(ids, lambda order_id: timeouts.order_expire(order_id=order_id, now=now)))
    counts = {"candidates": len(ids), timeouts.EXPIRED: expired}
    logger.info("expire_pending_orders: %d candidates, %d expired", counts["candidates"], expired)
    return counts


def cancel_timed_out_trades(now: datetime | None = None) -> dict[str, int]:
    """docs/PROTOCOL.md §Waiting-timeout: waiting orders whose duty is older than `expiration_seconds` (every 60 s)."""
    now = now or timezone.now()
    # Refunds decided (a cancel, a timeout, admin-cancel) that LND did not confirm: retried here.
    escrow_refunds_retry()
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


def retry_failed_payouts(now: datetime | None = None) -> dict[str, int]:
    """docs/PROTOCOL.md §Payout: buyer payouts whose next attempt is due, plus lost post-release starts."""
    started = payout_retry_due(now=now)
    logger.info("retry_failed_payouts: %d payouts attempted", started)
    return {"attempted": started}


def reconcile_inflight_payouts(now: datetime | None = None) -> dict[str, int]:
    """docs/PROTOCOL.md §Payout: ask the node about payout claims older than the grace window."""
    checked = payout_reconcile_inflight(now=now)
    logger.info("reconcile_inflight_payouts: %d claims checked", checked)
    return {"checked": checked}


def reconcile_order_events(*, now: float | None = None) -> int:
    """Republish the current 38383 revision of orders whose last publication reached no relay
    (every 60 s; also run by a `--periodic-jobs` bridge). Returns how many were queued."""
    now = time.time() if now is None else now
    ids = parked_order_event_ids(now=now, limit=RECONCILE_BATCH)
    if not ids:
        return 0
    return sum(1 for order_id in ids if order_event_republish(order_id=order_id, now=int(now)))


def pay_pending_dev_fees(now: datetime | None = None) -> dict[str, int]:
    """docs/PROTOCOL.md §Dev-fee: the development fee of settled orders (every 60 s).

    One sweep per tick, in the daemon's order: give back stale claims, open ledger rows for newly
    settled orders, settle in-flight payments with the node's word, then attempt the due rows.
    Each step is guarded per row, so two runs at once pay nothing twice.
    """
    now = now or timezone.now()
    reset = devfee.dev_fee_reset_stale_claims(now=now)
    created = devfee.dev_fee_rows_create(billable=dev_fee_billable_orders(limit=DEV_FEE_CREATE_BATCH))
    inflight_ids = devfee.dev_fee_inflight_ids(limit=DEV_FEE_RECONCILE_BATCH)
    outcomes = Counter(devfee.dev_fee_reconcile(payment_id=pk, now=now) for pk in inflight_ids)
    due_ids = devfee.dev_fee_due_ids(now=now, limit=DEV_FEE_PAY_BATCH)
    outcomes.update(devfee.dev_fee_pay(payment_id=pk, now=now) for pk in due_ids)
    counts = {
        "stale_claims_reset": reset,
        "rows_created": created,
        "reconciled": len(inflight_ids),
        "attempted": len(due_ids),
    } | {key: outcomes.get(key, 0) for key in (devfee.PAID, devfee.FAILED, devfee.PENDING, devfee.SKIPPED)}
    logger.info(
        "pay_pending_dev_fees: %d stale claims reset, %d rows created, %d in flight checked, %d attempted; "
        "%d paid, %d failed, %d pending, %d skipped",
        reset,
        created,
        len(inflight_ids),
        len(due_ids),
        counts[devfee.PAID],
        counts[devfee.FAILED],
        counts[devfee.PENDING],
        counts[devfee.SKIPPED],
    )
    return counts


def _per_order(ids: list, service: Callable[[Any], Any]) -> Iterator[Any]:
    """Each order's outcome, its log lines tagged with its id (the JSON log's `order_id`)."""
    for order_id in ids:
        with log_context(order_id=order_id):
            yield service(order_id)


def _counts(ids: list, outcomes: Counter, keys: tuple[str, ...]) -> dict[str, int]:
    counts = {"candidates": len(ids)} | {key: outcomes.get(key, 0) for key in keys}
    counts["skipped"] = outcomes.get("skipped", 0)
    return counts
