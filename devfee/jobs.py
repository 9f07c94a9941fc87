"""The dev-fee job (behaviour §1.18.4; mostrod `job_process_dev_fee_payment`), every 60 s.

One sweep per tick, in the daemon's order: give back stale claims, open ledger rows for newly
settled orders, settle in-flight payments with the node's word, then attempt the due rows.
Each step is guarded per row, so two runs at once pay nothing twice.
"""

import logging
from collections import Counter
from datetime import datetime

from django.utils import timezone

from devfee import services

logger = logging.getLogger(__name__)

# Ledger rows are cheap inserts.
CREATE_BATCH = 500
# One TrackPayment each (no waiting): cheap.
RECONCILE_BATCH = 50
# An attempt can take ~40 s (two LNURL requests of 4 s, the send's 25 s result window and the
# client deadline): 5 keep a tick inside the 240 s task timeout.
PAY_BATCH = 5


def pay_pending_dev_fees(now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    reset = services.dev_fee_reset_stale_claims(now=now)
    created = services.dev_fee_rows_create(limit=CREATE_BATCH)
    inflight_ids = services.dev_fee_inflight_ids(limit=RECONCILE_BATCH)
    outcomes = Counter(services.dev_fee_reconcile(payment_id=pk, now=now) for pk in inflight_ids)
    due_ids = services.dev_fee_due_ids(now=now, limit=PAY_BATCH)
    outcomes.update(services.dev_fee_pay(payment_id=pk, now=now) for pk in due_ids)
    counts = {
        "stale_claims_reset": reset,
        "rows_created": created,
        "reconciled": len(inflight_ids),
        "attempted": len(due_ids),
    } | {key: outcomes.get(key, 0) for key in (services.PAID, services.FAILED, services.PENDING, services.SKIPPED)}
    logger.info(
        "pay_pending_dev_fees: %d stale claims reset, %d rows created, %d in flight checked, %d attempted; "
        "%d paid, %d failed, %d pending, %d skipped",
        reset,
        created,
        len(inflight_ids),
        len(due_ids),
        counts[services.PAID],
        counts[services.FAILED],
        counts[services.PENDING],
        counts[services.SKIPPED],
    )
    return counts
