"""Read-only order queries shared by handlers, services, jobs and the invoice watcher."""

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from django.db.models import Q

from devfee.models import DevFeePayment, DevFeeStatus
from nostrbridge.guarded import exists_where
from nostrbridge.statement_sql import quoted_column, table_name
from nostrbridge.statements import db_connection, execute_statement, select_one
from orders.bonds.models import Bond, BondState
from orders.models import Order
from orders.status import ESCROW_LOCKED_STATUSES, TERMINAL_STATUSES, WAITING_STATUSES, OrderStatus

# The two lookups every trade step makes go through plain SQL (`select_one`): compiling the
# ORM query over the wide Order row cost the node more than running it (docs/PERFORMANCE.md).


def order_get(*, order_id: UUID | str | None) -> Order | None:
    return select_one(Order, id=order_id)


def order_get_by_hold_hash(*, payment_hash_hex: str) -> Order | None:
    return select_one(Order, hold_invoice_hash=payment_hash_hex.lower())


def order_refresh(order: Order) -> None:
    """`order.refresh_from_db()` on plain SQL, for the re-read after each guarded transition of
    a trade step: every field reloaded, cached relations and prefetches dropped."""
    fresh = select_one(Order, id=order.pk)
    if fresh is None:
        raise Order.DoesNotExist(f"order {order.pk} no longer exists")
    order_fill(order, fresh)


def order_fill(order: Order, fresh: Order) -> None:
    """`order` takes every column of `fresh` (the same row, just loaded), as `refresh_from_db`
    fills an instance: cached relations and prefetches dropped."""
    # Straight into the instance's dict (where `setattr` puts a column's value): the related
    # object a foreign key's `setattr` would drop from the cache goes with the whole cache below.
    loaded = fresh.__dict__
    order.__dict__.update({name: loaded[name] for name in _order_attnames()})
    order._state.fields_cache = {}
    order._prefetched_objects_cache = {}  # type: ignore[attr-defined]
    order._state.db = fresh._state.db


@functools.cache
def _order_attnames() -> tuple[str, ...]:
    return tuple(field.attname for field in Order._meta.concrete_fields)


def buyer_has_pending_order(*, identity: str) -> bool:
    """The identity already owes a payout invoice as buyer (take-sell's `pending_order_exists`)."""
    return exists_where(Order, where={"master_buyer_pubkey": identity, "status": OrderStatus.WAITING_BUYER_INVOICE})


def seller_has_pending_order(*, identity: str) -> bool:
    """The identity already owes an escrow payment as seller (take-buy's `pending_order_exists`)."""
    return exists_where(Order, where={"master_seller_pubkey": identity, "status": OrderStatus.WAITING_PAYMENT})


def watched_invoice_hashes() -> list[str]:
    """Hold invoices whose LND state still matters (docs/PROTOCOL.md §Escrow).

    Waiting orders with a hash (the seller may still pay) and locked escrows (LND may still
    cancel the HTLC, which docs/PROTOCOL.md §Escrow reports to the parties). In pk order.
    """
    # Plain SQL, the ORM's rows: the invoice watcher asks at every take (docs/PERFORMANCE.md).
    statuses = [status.value for status in (*sorted(WAITING_STATUSES), *sorted(ESCROW_LOCKED_STATUSES))]
    return column_values(_watched_sql(), statuses)


@functools.cache
def _watched_sql() -> str:
    column = functools.partial(quoted_column, Order)
    waiting = ", ".join(["%s"] * len(WAITING_STATUSES))
    locked = ", ".join(["%s"] * len(ESCROW_LOCKED_STATUSES))
    # Identifiers from the model's metadata; every value is a parameter.
    return (
        f"SELECT {column('hold_invoice_hash')} FROM {table_name(Order)} WHERE {column('hold_invoice_hash')} IS NOT NULL"  # noqa: S608
        f" AND ({column('status')} IN ({waiting})"
        f" OR ({column('status')} IN ({locked}) AND {column('invoice_held_at')} IS NOT NULL)) ORDER BY {column('id')}"
    )


def column_values(sql: str, params: Sequence[object]) -> list:
    """The first column of each row of a plain SELECT, leaving out NULLs and empty strings."""
    with db_connection().cursor() as cursor:
        execute_statement(cursor, sql, params)
        return [row[0] for row in cursor.fetchall() if row[0]]


DEV_FEE_DUE_STATUSES = (OrderStatus.SETTLED_HOLD_INVOICE, OrderStatus.SUCCESS)


def dev_fee_billable_orders(*, limit: int) -> list[tuple[UUID, int]]:
    """(order id, dev fee in sats) of settled or successful orders whose fee has no ledger row yet.

    The fee is owed from the settlement on, even when the buyer payout later fails (docs/PROTOCOL.md §Dev-fee).
    """
    query = Order.objects.filter(
        status__in=DEV_FEE_DUE_STATUSES, dev_fee_sats__gt=0, dev_fee_payment__isnull=True
    ).order_by("updated_at")
    return list(query.values_list("pk", "dev_fee_sats")[:limit])


def trade_key_in_active_order(*, pubkey: str) -> bool:
    """The key trades (as buyer, seller or maker) in an order that is not finished yet."""
    query = Order.objects.filter(Q(buyer_pubkey=pubkey) | Q(seller_pubkey=pubkey) | Q(creator_pubkey=pubkey))
    return query.exclude(status__in=TERMINAL_STATUSES).exists()


@dataclass(frozen=True)
class DrainCounters:
    """What still ties the node to its Lightning node (docs/PROTOCOL.md §Maintenance, mostrod's
    `drain_counters`). `pending_orders` is informational: a pending order holds no escrow."""

    escrowed_orders: int
    inflight_payouts: int
    inflight_dev_fees: int
    open_bonds: int
    pending_bond_payouts: int
    pending_orders: int

    @property
    def drained(self) -> bool:
        return not (
            self.escrowed_orders
            or self.inflight_payouts
            or self.inflight_dev_fees
            or self.open_bonds
            or self.pending_bond_payouts
        )


# mostrod's terminal list for the drain count, which also names the legacy admin statuses.
_DRAIN_TERMINAL = frozenset({*TERMINAL_STATUSES, OrderStatus.SETTLED_BY_ADMIN, OrderStatus.COMPLETED_BY_ADMIN})


def drain_counters() -> DrainCounters:
    """Count with mostrod's predicates. A settled escrow whose payout failed and has no payment in
    flight is not counted (the sats are the node's balance now; the buyer's new invoice can be
    paid from any node). Bonds: an issued or locked bond (its HTLC may still be accepted or is
    held) and a slashed bond whose counterparty's share is being paid."""
    escrowed = (
        Order.objects.filter(hold_invoice_hash__isnull=False)
        .exclude(status__in=_DRAIN_TERMINAL)
        .exclude(status=OrderStatus.SETTLED_HOLD_INVOICE, failed_payment=True, payout_payment_hash__isnull=True)
    )
    return DrainCounters(
        escrowed_orders=escrowed.count(),
        inflight_payouts=Order.objects.filter(
            payout_payment_hash__isnull=False, status=OrderStatus.SETTLED_HOLD_INVOICE
        ).count(),
        inflight_dev_fees=DevFeePayment.objects.filter(payment_hash__isnull=False)
        .exclude(status=DevFeeStatus.PAID)
        .count(),
        open_bonds=Bond.objects.filter(state__in=[BondState.REQUESTED, BondState.LOCKED]).count(),
        pending_bond_payouts=Bond.objects.filter(state=BondState.PENDING_PAYOUT, payout_hash__isnull=False).count(),
        pending_orders=Order.objects.filter(status=OrderStatus.PENDING).count(),
    )
