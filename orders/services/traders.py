"""Trader (identity) bookkeeping: the trade-index gate and counter, and the reputation views the
wire carries.

Full-privacy users (identity == trade key) never get a row (docs/PROTOCOL.md §Keys); every helper
here treats a missing row as "no reputation": zeros.
"""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from nostrbridge.context import SilentDrop
from nostrbridge.guarded import update_guarded_returning
from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.published_events import MakerReputation
from nostrbridge.protocol.structs import UserInfo
from nostrbridge.statements import insert_instance, select_one
from orders.models import Order, Trader
from orders.status import OrderKind

SECONDS_PER_DAY = 86_400


def trade_index_check(*, identity: str, sender: str, trade_index: int | None) -> None:
    """The trade-index gate of `new-order`, `take-sell` and `take-buy` (docs/PROTOCOL.md §Trade-index), the
    first step of their handlers: nothing else is checked before it (mostrod's pre-dispatch order).

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


def trader_bump_trade_index(*, identity: str, sender: str, trade_index: int | None) -> Trader | None:
    """Store the identity's latest trade index once a new-order/take passed every check.

    Runs inside the handler's final transaction. A no-op in full-privacy mode and when the
    message carried no index (the trade-index gate already dropped that case in reputation
    mode). Guarded (`last_trade_index < new`, as range orders spend theirs): a message checked
    against an older value never lowers what a concurrent one stored. The gate created the
    row for a first-time identity; the insert below only covers a row removed meanwhile.

    Returns the identity's row as the UPDATE left it (`RETURNING`) when it raised the index, else
    None: the new order's event takes the maker's reputation from it instead of a read.
    """
    if identity == sender or trade_index is None:
        return None
    raised, rows = update_guarded_returning(
        Trader, where={"pk": identity, "last_trade_index__lt": trade_index}, guard=None,
        values={"last_trade_index": trade_index},
    )  # fmt: skip
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
