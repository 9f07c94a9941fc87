"""The bond sweep (django-q2, every 60 s; docs/PROTOCOL.md §Bonds).

Finishes at LND what the database decided (a crash between a decision and its Lightning call
is repaired here), releases bond invoices nobody paid in time, and resumes a take whose bond
locked while its resumption failed (LND unreachable for the escrow invoice).
"""

import logging

from django.db import transaction
from django.utils import timezone

from orders.bonds.cancel import order_back_on_book_if_unbonded
from orders.bonds.maker import maker_bond_unpaid
from orders.bonds.models import Bond, BondRole, BondState
from orders.bonds.release import bonds_finish_htlcs, bonds_release, unfinished_bond_ids
from orders.models import Order
from orders.status import PRE_TRADE_STATUSES

logger = logging.getLogger(__name__)
BATCH = 100
ACTOR = "scheduler"


def reconcile_bonds(now=None) -> dict[str, int]:
    now = now or timezone.now()
    expired = bonds_expire_unpaid(now=now)
    finished = bonds_finish_htlcs(bond_ids=unfinished_bond_ids(limit=BATCH))
    resumed = bonds_resume_takes()
    counts = {"expired": expired, "finished": finished, "resumed": resumed}
    if any(counts.values()):
        logger.info("bond sweep: %s", counts)
    return counts


def bonds_expire_unpaid(*, now) -> int:
    """Requested bonds past their invoice's life: released; an order left without racing
    takers goes back on the book (the maker's unpaid bond: `orders/bonds/maker.py`)."""
    count = 0
    due = Bond.objects.filter(state=BondState.REQUESTED, invoice_expires_at__lt=now).order_by("pk")[:BATCH]
    for bond in due:
        with transaction.atomic():
            if not bonds_release(bonds=[bond], actor=ACTOR, reason="bond invoice not paid in time"):
                continue
            count += 1
            if bond.role == BondRole.TAKER:
                order_back_on_book_if_unbonded(order=Order.objects.get(pk=bond.order_id), actor=ACTOR, request_id=None)
            else:
                maker_bond_unpaid(order_id=bond.order_id)
    return count


def bonds_resume_takes() -> int:
    from orders.services.take import order_take_resume

    stuck = Bond.objects.filter(
        role=BondRole.TAKER, state=BondState.LOCKED, order__status__in=list(PRE_TRADE_STATUSES)
    ).values_list("pk", flat=True)[:BATCH]
    resumed = 0
    for bond_id in stuck:
        try:
            resumed += order_take_resume(bond_id=bond_id)
        except Exception:
            logger.exception("bond %s: take still cannot resume", bond_id)
    return resumed
