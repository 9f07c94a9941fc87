"""Releasing bonds and finishing every decided bond at LND (docs/PROTOCOL.md §Bonds, Release).

A release is decided in the transaction that ends the trade (`transition_order` calls
`bonds_on_order_transition`), so a trade never ends with its bonds forgotten; the HTLC cancel
runs after the commit, and `bonds_finish_htlcs` is repeated by the reconciliation job until
LND confirms it (`htlc_resolved_at`).
"""

import functools
import logging
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from mostro_site.config.faults import kill_point
from nostrbridge.protocol.enums import Action
from nostrbridge.statement_sql import quoted_column, table_name
from nostrbridge.statements import db_connection, prep_lookup, run_statement, select_one, select_where
from orders.bonds.htlc import BondHtlcError, bond_htlc_cancel, bond_htlc_settle
from orders.bonds.models import Bond, BondPart, BondRole, BondState
from orders.bonds.ranges import range_bond_close, range_continues, range_maker_bond
from orders.bonds.transitions import OPEN_STATES, bond_transition, bond_update_guarded
from orders.models import Order
from orders.status import PRE_TRADE_STATUSES, TERMINAL_STATUSES, WAITING_STATUSES, OrderStatus
from orders.wire import send

logger = logging.getLogger(__name__)

SETTLED_STATES = frozenset({BondState.PENDING_PAYOUT, BondState.SLASHED, BondState.FORFEITED, BondState.FAILED})


def bonds_on_order_transition(*, order_id, from_status: str, to_status: str, actor: str) -> None:
    """Inside the order's transition: release the bonds this move ends.

    A trade's end (success, any cancel, expiry) releases every open bond; a taken order put
    back on the book releases the taker's (the maker's stays locked, docs/PROTOCOL.md §Waiting-timeout).
    A bond slashed earlier in the same transaction is no longer open and is left alone. A range
    maker's bond outlives a slice whose child order carries the range on (`orders/bonds/ranges.py`).
    """
    if to_status in TERMINAL_STATUSES:
        # A cancel of an order on the book tells every taker still racing: the maker's cancel with
        # `canceled` (docs/PROTOCOL.md §Cancel), the operator's with `admin-canceled` (§Admin-cancel).
        notice = TAKER_NOTICES.get(to_status) if from_status in PRE_TRADE_STATUSES else None
        bonds_trade_end(order_id=order_id, actor=actor, reason=f"order {to_status}", notify_takers=notice)
    elif to_status == OrderStatus.PENDING and from_status in WAITING_STATUSES:
        # Plain SQL: every status change of every order asks, bonds or not (docs/PERFORMANCE.md).
        bonds = select_where(Bond, where={"order_id": order_id, "state": list(OPEN_STATES), "role": BondRole.TAKER})
        bonds_release(bonds=bonds, actor=actor, reason=f"order {to_status}")


def bonds_trade_end(*, order_id, actor: str, reason: str, notify_takers: Action | None = None) -> None:
    """Inside the caller's transaction: the trade is over for its bonds. Every open bond is
    released, except a range maker's, which ends only with the range (`orders/bonds/ranges.py`).
    Also called by a solver's settle: the ruling ends the trade for the bonds before the buyer's
    payout does (mostrod releases them at the resolution)."""
    # Plain SQL: every trade's end runs this (a third of the payout's success transition through
    # the ORM, docs/PERFORMANCE.md). Most trades are neither a range's nor bonded: one statement
    # of a few columns says so, and then nothing below could act.
    if not _trade_end_has_bonds(order_id):
        return
    order = select_one(Order, id=order_id)
    if order is None:
        raise Order.DoesNotExist(order_id)
    range_bond = range_maker_bond(order)
    bonds = select_where(Bond, where={"order_id": order_id, "state": list(OPEN_STATES), "part": BondPart.WHOLE})
    if range_bond is not None:
        bonds = [bond for bond in bonds if bond.pk != range_bond.pk]
    bonds_release(bonds=bonds, actor=actor, reason=reason, notify_takers=notify_takers)
    if range_bond is not None and range_bond.state in OPEN_STATES and not range_continues(order_id):
        range_bond_end(bond=range_bond, actor=actor)


def _trade_end_has_bonds(order_id) -> bool:
    """Whether the trade's end may have a bond to release: the order has an open whole bond of
    its own, or belongs to a range (a child of a range order, or a range itself), whose maker's
    bond `range_maker_bond` finds. When it is False the full path reads nothing to act on: no
    range bond (the order is its own range root and not a range) and no open whole bond.
    Raises `Order.DoesNotExist` as the full path's read does."""
    db = db_connection()
    rows = run_statement(db, _has_bonds_sql(), [*_OPEN_WHOLE, prep_lookup(Order._meta.pk, order_id, db)], fetch=True)
    if not rows:
        raise Order.DoesNotExist(order_id)
    return bool(rows[0][0])


_OPEN_WHOLE = (*sorted(state.value for state in OPEN_STATES), BondPart.WHOLE.value)


@functools.cache
def _has_bonds_sql() -> str:
    order, bond, column = table_name(Order), table_name(Bond), quoted_column
    return (
        f"SELECT {column(Order, 'range_parent_id')} IS NOT NULL"  # noqa: S608 - quoted identifiers, values are parameters
        f" OR ({column(Order, 'min_fiat_amount')} IS NOT NULL AND {column(Order, 'max_fiat_amount')} IS NOT NULL)"
        f" OR EXISTS (SELECT 1 FROM {bond} WHERE {bond}.{column(Bond, 'order_id')} = {order}.{column(Order, 'id')}"
        f" AND {bond}.{column(Bond, 'state')} IN ({', '.join(['%s'] * len(OPEN_STATES))})"
        f" AND {bond}.{column(Bond, 'part')} = %s)"
        f" FROM {order} WHERE {column(Order, 'id')} = %s"
    )


def range_bond_end(*, bond: Bond, actor: str) -> None:
    """The range ended: release the maker's bond, or settle it (after commit) when a slice was slashed."""
    if range_bond_close(bond=bond, actor=actor):
        transaction.on_commit(lambda: bonds_finish_htlcs(bond_ids=[bond.pk]))


TAKER_NOTICES: dict[str, Action] = {
    OrderStatus.CANCELED: Action.CANCELED,
    OrderStatus.CANCELED_BY_ADMIN: Action.ADMIN_CANCELED,
}


def bonds_release(*, bonds: Iterable[Bond], actor: str, reason: str, notify_takers: Action | None = None) -> list[int]:
    """Decide the release of `bonds` (inside the caller's transaction); LND cancels after commit.
    With `notify_takers`, each released taker bond's trader gets that action (null payload)."""
    released = []
    now = timezone.now()
    for bond in bonds:
        won = bond_transition(
            bond_id=bond.pk,
            from_states=OPEN_STATES,
            to_state=BondState.RELEASED,
            actor=actor,
            reason=reason,
            set_fields={"decided_at": now},
        )
        if not won:
            continue
        released.append(bond.pk)
        if notify_takers and bond.role == BondRole.TAKER:
            send(bond.pubkey, notify_takers, Order(pk=bond.order_id))
    if released:
        transaction.on_commit(lambda: bonds_finish_htlcs(bond_ids=released))
    return released


def bonds_finish_htlcs(*, bond_ids: Iterable[int]) -> int:
    """Carry out at LND what the database decided: cancel released HTLCs, settle slashed ones.

    Never raises (it runs after commits and in jobs); a failure is retried by the next sweep.
    Returns how many were confirmed.
    """
    done = 0
    # A range bond's parts have no HTLC of their own: their parent's is the one settled.
    for bond in Bond.objects.filter(pk__in=list(bond_ids), htlc_resolved_at__isnull=True, hash__isnull=False):
        try:
            if bond.state == BondState.RELEASED:
                assert bond.hash is not None  # parts were filtered out above
                bond_htlc_cancel(payment_hash_hex=bond.hash)
                kill_point("bond-released")
            elif bond.state in SETTLED_STATES:
                bond_htlc_settle(preimage_hex=bond.preimage)
                kill_point("bond-slash-settled")
            else:
                continue
        except BondHtlcError as exc:
            logger.error(
                "bond %s of order %s (%s): %s; retried by the next sweep", bond.pk, bond.order_id, bond.state, exc
            )
            continue
        except Exception:
            logger.exception("bond %s of order %s: LND call failed; retried by the next sweep", bond.pk, bond.order_id)
            continue
        with transaction.atomic():
            bond_update_guarded(
                bond_id=bond.pk,
                states=[bond.state],
                set_fields={"htlc_resolved_at": timezone.now()},
                guard=Q(htlc_resolved_at__isnull=True),
            )
        done += 1
    return done


def unfinished_bond_ids(*, limit: int = 100) -> list[int]:
    """Decided bonds LND has not confirmed yet (the reconciliation job's work)."""
    states = [BondState.RELEASED, *SETTLED_STATES]
    query = Bond.objects.filter(state__in=states, htlc_resolved_at__isnull=True, hash__isnull=False).order_by("pk")
    return list(query.values_list("pk", flat=True)[:limit])
