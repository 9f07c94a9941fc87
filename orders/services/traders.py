"""Trader (identity) bookkeeping: the trade-index gate and counter, and the reputation views the
wire carries.

Full-privacy users (identity == trade key) never get a row (docs/PROTOCOL.md §Keys); every helper
here treats a missing row as "no reputation": zeros.
"""

import functools
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from lightning.lnurl import is_lnurl_destination
from nostrbridge.context import SilentDrop
from nostrbridge.guarded import update_guarded, update_guarded_returning
from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.published_events import MakerReputation
from nostrbridge.protocol.structs import UserInfo
from nostrbridge.statement_sql import quoted_column, table_name
from nostrbridge.statements import db_connection, insert_instance, run_statement, select_one
from orders.models import Order, Trader
from orders.services.bans import BAN_POLICY, active_ban_exists_sql
from orders.status import OrderKind

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, slots=True)
class TradeGate:
    """What the ban gate and the trade-index gate of `new-order`, `take-sell` and `take-buy` read,
    taken in one statement at the ban gate (`trade_gate_read`)."""

    banned: bool  # the identity or the trade key has an active ban (`orders.services.bans`)
    last_trade_index: int | None  # the identity's stored index; None: no trader row

    def refuse_banned(self) -> None:
        """`ban_refuse`'s answer: the first check of the actions a ban closes, before anything is
        written (even the trade-index registration)."""
        if self.banned:
            raise CantDo(CantDoReason.NOT_AUTHORIZED, policy=BAN_POLICY)

    def unless_waited(self, destination: str | None) -> "TradeGate | None":
        """This read, or None when `lightning_address_ready` may have waited on a Lightning
        address's server since it was taken (up to a quarter second): the index gate then reads
        again, so the index is still read after every network wait."""
        text = (destination or "").strip()
        return None if text and is_lnurl_destination(text) else self


def trade_gate_read(*, identity: str, sender: str, now: datetime | None = None) -> TradeGate:
    """The ban gate's and the trade-index gate's reads as one statement (every new-order and take
    made both, two statements, docs/PERFORMANCE.md): the same rows as `active_ban(identity,
    sender)` and `select_one(Trader, pubkey=identity)`, outside any transaction as they were."""
    banned_sql, params = active_ban_exists_sql(identity, sender, now=now)
    db = db_connection()
    rows = run_statement(db, f"SELECT {banned_sql}, ({_last_index_sql()})", [*params, identity], fetch=True)
    banned, last = rows[0]
    return TradeGate(banned=bool(banned), last_trade_index=last)


@functools.cache
def _last_index_sql() -> str:
    index, pubkey = quoted_column(Trader, "last_trade_index"), quoted_column(Trader, "pubkey")
    return f"SELECT {index} FROM {table_name(Trader)} WHERE {pubkey} = %s"  # noqa: S608 - quoted identifiers


def trade_index_check(*, identity: str, sender: str, trade_index: int | None, gate: TradeGate | None = None) -> None:
    """The trade-index gate of `new-order`, `take-sell` and `take-buy` (docs/PROTOCOL.md §Trade-index), the
    first step of their handlers: nothing else is checked before it (mostrod's pre-dispatch order).
    `gate`: the identity's index as `trade_gate_read` read it moments before (no network wait
    between), instead of a read here.

    Full privacy (identity == sender) has no index. A first-time identity is registered here, as
    mostrod does, but with the index below the announced one (mostrod: the announced one), so
    that a retry of the same message after a transient failure passes the gate again.
    Deliberate choice: a known identity sending `trade_index: 0` gets `invalid_trade_index`
    (mostrod accepts it and resets the counter, a quirk the spec allows us to refuse).
    """
    if identity == sender:
        return
    if trade_index is None:
        raise SilentDrop("reputation mode without trade_index", cause="missing-trade-index")
    if gate is not None:
        last = gate.last_trade_index
    else:
        trader = select_one(Trader, pubkey=identity)  # plain SQL: every new-order and take asks (docs/PERFORMANCE.md)
        last = None if trader is None else trader.last_trade_index
    if last is None:
        if trade_index == 0:
            raise SilentDrop("unknown identity with trade_index 0", cause="unknown-identity-index-0")
        # Registered one below the index: the index is spent by `trader_bump_trade_index` when
        # every check passed. Registering it spent here made the retry of this very message
        # (LND unreachable or slow at the take's hold invoice) fail `invalid_trade_index`.
        # The lookup above is get_or_create's "get": only its INSERT is left, precompiled (the model
        # has no save() or signals). A concurrent first message of the same identity may insert
        # first: its row stands, as with get_or_create; any other refusal (a negative index breaks
        # the CHECK) is raised, as get_or_create re-raises when the row is still missing.
        try:
            with transaction.atomic():
                insert_instance(Trader(pubkey=identity, last_trade_index=trade_index - 1))
        except IntegrityError:
            if select_one(Trader, pubkey=identity) is None:
                raise
        return
    if trade_index <= last or trade_index == 0:
        raise CantDo(CantDoReason.INVALID_TRADE_INDEX)


def trader_bump_trade_index(
    *, identity: str, sender: str, trade_index: int | None, returning: bool = True
) -> Trader | None:
    """Store the identity's latest trade index once a new-order/take passed every check.

    Runs inside the handler's final transaction. A no-op in full-privacy mode and when the
    message carried no index (the trade-index gate already dropped that case in reputation
    mode). Guarded (`last_trade_index < new`, as range orders spend theirs): a message checked
    against an older value never lowers what a concurrent one stored. The gate created the
    row for a first-time identity; the insert below only covers a row removed meanwhile.

    Returns the identity's row as the UPDATE left it (`RETURNING`) when it raised the index, else
    None: the new order's event takes the maker's reputation from it instead of a read. A caller
    that does not use the row (a take) passes `returning=False`: the plain UPDATE, no row built.
    """
    if identity == sender or trade_index is None:
        return None
    where = {"pk": identity, "last_trade_index__lt": trade_index}
    values = {"last_trade_index": trade_index}
    if returning:
        raised, rows = update_guarded_returning(Trader, where=where, guard=None, values=values)
    else:
        raised, rows = update_guarded(Trader, where=where, guard=None, values=values), None
    if raised == 0:
        Trader.objects.get_or_create(pubkey=identity, defaults={"last_trade_index": trade_index})
        return None
    return rows[0] if rows else None


def _operating_days(trader: Trader, now: datetime) -> int:
    if trader.created_at is None:
        return 0
    # Whole unix seconds on both sides, as the daemon computes it.
    return max(0, (int(now.timestamp()) - int(trader.created_at.timestamp())) // SECONDS_PER_DAY)


def trader_user_info(*, identity: str | None, now: datetime | None = None, known: Trader | None = None) -> UserInfo:
    """The `UserInfo` of the taker-reputation notices (docs/PROTOCOL.md §Escrow), the solver's
    dispute view and the `user-info` reply (§User-info): zeros and no `since` for an identity
    without a record, else `since` = the UTC day the record starts. `known`: the identity's row as
    this transaction just wrote it (`trader_bump_trade_index`), used instead of a read."""
    if known is not None and identity and known.pk == identity:
        trader: Trader | None = known
    else:
        trader = select_one(Trader, pubkey=identity) if identity else None  # plain SQL: every order event asks
    if trader is None:
        return UserInfo(rating=0.0, reviews=0, operating_days=0)
    return UserInfo(
        rating=float(trader.total_rating),
        reviews=trader.total_reviews,
        operating_days=_operating_days(trader, now or timezone.now()),
        since=None if trader.created_at is None else int(trader.created_at.timestamp()),
    )


def trader_reputation(
    *, identity: str | None, now: datetime | None = None, known: Trader | None = None
) -> MakerReputation:
    """The aggregates of the 38383 `rating` tag (docs/PROTOCOL.md §Order-event); `known`: as in
    `trader_user_info`."""
    info = trader_user_info(identity=identity, now=now, known=known)
    return MakerReputation(
        days=info.operating_days, since=info.since, total_rating=info.rating, total_reviews=info.reviews
    )


def maker_identity(order: Order) -> str | None:
    return order.master_seller_pubkey if order.kind == OrderKind.SELL else order.master_buyer_pubkey


def taker_identity(order: Order) -> str | None:
    return order.master_buyer_pubkey if order.kind == OrderKind.SELL else order.master_seller_pubkey
