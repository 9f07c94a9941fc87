"""Session helpers: `orders`, `restore-session`, `last-trade-index`, `trade-pubkey`
(docs/PROTOCOL.md §Orders).

Deliberate choice (docs/PROTOCOL.md §Restore-session, §Differences): restore-session excludes every terminal
status, plus `dispute` (those orders come back through the dispute list). mostrod's
unhyphenated exclusion list lets cooperatively-canceled and canceled-by-admin orders through.
"""

import functools
from uuid import UUID

from django.db import connection, transaction
from django.db.models import Field, Q

from mostro_site.config import node_config
from nostrbridge.context import Atomic, SilentDrop
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.structs import RestoredOrder
from nostrbridge.statements import db_connection, prep_lookup, select_rows
from orders.models import Order, Trader
from orders.services.lookup import order_get_or_not_found
from orders.status import PRE_TRADE_STATUSES, TERMINAL_STATUSES, OrderKind, OrderStatus
from orders.transitions import update_order_guarded
from orders.wire import send

RESTORE_EXCLUDED_STATUSES = TERMINAL_STATUSES | {OrderStatus.DISPUTE}


def orders_for_identity(*, identity: str, ids: list[UUID]) -> list[Order]:
    """The caller's orders among `ids`, in the requested order (`orders` action checks)."""
    if not ids:
        raise CantDo(CantDoReason.INVALID_PARAMETERS)
    if len(ids) > node_config().max_orders_per_response:
        raise CantDo(CantDoReason.TOO_MANY_REQUESTS)
    wanted = list(dict.fromkeys(ids))
    by_id = {order.pk: order for order in _orders_of(identity=identity, ids=wanted)}
    found = [by_id[order_id] for order_id in wanted if order_id in by_id]
    if not found:
        raise CantDo(CantDoReason.NOT_FOUND)
    return found


def _orders_of(*, identity: str, ids: list[UUID]) -> list[Order]:
    """Orders among `ids` where `identity` is the master buyer or seller.

    Plain SQL: `orders` is the query clients send most, and compiling this filter over the wide
    Order row (or a RawQuerySet's column mapping) cost the relay bridge several times what running
    it does (docs/PERFORMANCE.md); its text is built once per number of ids. Same rows as
    `Order.objects.filter(Q(master_buyer_pubkey=…) | Q(master_seller_pubkey=…), pk__in=…)`.
    """
    db = db_connection()
    params = [prep_lookup(_PK, order_id, db) for order_id in ids]
    return select_rows(Order, where=_orders_where(len(ids)), params=[*params, identity, identity])


_PK = Order._meta.pk


# Bounded: the id count is capped by the operator's max_orders_per_response, which may be large.
@functools.lru_cache(maxsize=64)
def _orders_where(count: int) -> str:
    quote = connection.ops.quote_name
    buyer = quote(_column("master_buyer_pubkey"))
    seller = quote(_column("master_seller_pubkey"))
    in_list = ", ".join(["%s"] * count)
    return f"{quote(_column('id'))} IN ({in_list}) AND ({buyer} = %s OR {seller} = %s)"


def _column(name: str) -> str:
    field = Order._meta.get_field(name)
    assert isinstance(field, Field), name
    assert field.column is not None, name  # a concrete field has its column
    return field.column


def restorable_orders(*, identity: str) -> list[RestoredOrder]:
    """The identity's open orders for `restore-session`, oldest first (its disputes come from
    disputes, which builds the reply)."""
    orders = (
        Order.objects.filter(Q(master_buyer_pubkey=identity) | Q(master_seller_pubkey=identity))
        .exclude(status__in=RESTORE_EXCLUDED_STATUSES)
        .order_by("created_at", "id")
    )
    return [
        RestoredOrder(
            order_id=order.id,
            trade_index=identity_trade_index(order, identity),
            status=order.status,
            counterparty_trade_pubkey=counterparty_trade_pubkey(order, identity),
        )
        for order in orders
    ]


def counterparty_trade_pubkey(order: Order, identity: str) -> str | None:
    """The other side's trade key (docs/PROTOCOL.md §Restore-session): the buyer's for the seller's
    identity and the other way round; None while nobody took the order."""
    if order.master_seller_pubkey == identity:
        return order.buyer_pubkey or None
    return order.seller_pubkey or None


def last_trade_index_get(*, identity: str) -> int:
    index = Trader.objects.filter(pk=identity).values_list("last_trade_index", flat=True).first()
    if index is None:
        raise CantDo(CantDoReason.NOT_FOUND)
    if index == 0:
        raise CantDo(CantDoReason.INVALID_TRADE_INDEX)
    return index


def order_rotate_trade_pubkey(
    *,
    order_id: UUID | str | None,
    sender: str,
    identity: str,
    request_id: int | None,
    atomic: Atomic = transaction.atomic,
) -> Order:
    """A maker moves its unpublished-taker order to a new trade key (the sender)."""
    order = order_get_or_not_found(order_id)
    if order.status not in PRE_TRADE_STATUSES:
        raise CantDo(CantDoReason.INVALID_ORDER_STATUS)
    side = "seller" if order.kind == OrderKind.SELL else "buyer"
    if identity != getattr(order, f"master_{side}_pubkey"):
        raise SilentDrop("trade-pubkey from an identity that is not the maker's")
    with atomic():
        moved = update_order_guarded(
            order_id=order.id,
            statuses=PRE_TRADE_STATUSES,
            set_fields={f"{side}_pubkey": sender, "creator_pubkey": sender},
        )
        if not moved:
            raise CantDo(CantDoReason.INVALID_ORDER_STATUS)
        order.refresh_from_db()
        send(sender, Action.TRADE_PUBKEY, order, request_id=request_id)
    return order


def identity_trade_index(order: Order, identity: str) -> int:
    """The trade index `identity` used on its side of the order (0 when it has none)."""
    index = order.trade_index_seller if order.master_seller_pubkey == identity else order.trade_index_buyer
    return index or 0
