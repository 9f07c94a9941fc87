"""`rate-user` (docs/PROTOCOL.md §Rate-user, §Rating-event).

Deliberate deviations (docs/ARCHITECTURE.md):
* the 38384 event is published at once instead of in mostrod's hourly batch: clients see
  the new reputation sooner and nothing waits in memory;
* its `d` tag is the RATED user's trade key (what the book documents), not the rater's
  own key as mostrod writes by mistake (docs/PROTOCOL.md §Differences).
"""

import time
from dataclasses import dataclass
from uuid import UUID

from django.db import transaction
from django.db.models import F, Q

from nostrbridge.context import Atomic, SilentDrop
from nostrbridge.event_settings import publisher_settings
from nostrbridge.models import OutboundMessage
from nostrbridge.outbox import enqueue_event, node_keys
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.payloads import Payload, RatingUserPayload
from nostrbridge.protocol.published_events import build_rating_event
from nostrbridge.protocol.reputation import round_half_away
from orders.models import Order, Trader
from orders.services.lookup import order_get_or_not_found
from orders.status import OrderStatus
from orders.transitions import update_order_guarded
from orders.wire import send

MIN_RATING, MAX_RATING = 1, 5


@dataclass(frozen=True)
class RatingAggregate:
    total_reviews: int
    total_rating: float
    last_rating: int
    max_rating: int
    min_rating: int

    @classmethod
    def of(cls, trader: Trader) -> "RatingAggregate":
        return cls(trader.total_reviews, trader.total_rating, trader.last_rating, trader.max_rating, trader.min_rating)


def rating_apply(current: RatingAggregate, vote: int) -> RatingAggregate:
    """The corrected running average (docs/PROTOCOL.md §Rate-user): the first vote counts half,
    every later one moves the average by `(vote − average) / reviews`."""
    reviews = current.total_reviews + 1
    if reviews == 1:
        return RatingAggregate(reviews, vote / 2, vote, vote, vote)
    total = current.total_rating + (vote - current.total_rating) / reviews
    return RatingAggregate(reviews, total, vote, max(current.max_rating, vote), min(current.min_rating, vote))


def reputation_merge(current: RatingAggregate, *, reviews: int, rating: float) -> RatingAggregate:
    """An import added to the user's reputation, never written over it (docs/PROTOCOL.md §Import-reputation):
    reviews add up, the average is weighted by each origin's reviews, and min/max/last take the
    rounded imported rating only where they are still 0 (no vote yet)."""
    total_reviews = current.total_reviews + reviews
    total = (current.total_rating * current.total_reviews + rating * reviews) / total_reviews
    rounded = int(round_half_away(rating))
    return RatingAggregate(
        total_reviews,
        total,
        current.last_rating or rounded,
        current.max_rating or rounded,
        current.min_rating or rounded,
    )


def order_rate_user(
    *,
    order_id: UUID | str | None,
    sender: str,
    request_id: int | None,
    payload: Payload | None,
    atomic: Atomic = transaction.atomic,
) -> Trader:
    """Record the sender's vote on its counterparty and reply `rate-received`."""
    order = order_get_or_not_found(order_id)
    if not (order.buyer_pubkey and order.seller_pubkey):
        raise SilentDrop("rate-user on an order without both parties")
    is_seller = sender == order.seller_pubkey
    if not (order.status == OrderStatus.SUCCESS or (order.status == OrderStatus.SETTLED_HOLD_INVOICE and is_seller)):
        raise CantDo(CantDoReason.INVALID_ORDER_STATUS)
    if not is_seller and sender != order.buyer_pubkey:
        raise SilentDrop("rate-user from a key that is not a party")
    flag = "seller_sent_rate" if is_seller else "buyer_sent_rate"
    if getattr(order, flag):
        raise SilentDrop("this party already rated")
    vote = payload.rating if isinstance(payload, RatingUserPayload) else None
    if vote is None or not MIN_RATING <= vote <= MAX_RATING:
        raise SilentDrop("rating outside 1..5")
    rated_identity, rated_trade_key = _counterparty(order, is_seller)
    if not rated_identity or rated_identity == rated_trade_key:
        raise SilentDrop("the counterparty is in full-privacy mode")
    with atomic():
        claimed = update_order_guarded(
            order_id=order.id,
            statuses=[OrderStatus.SUCCESS, OrderStatus.SETTLED_HOLD_INVOICE],
            set_fields={flag: True},
            guard=Q(**{flag: False}),
        )
        if not claimed:
            raise SilentDrop("this party already rated")
        trader = _apply_vote(rated_identity, vote)
        publish_rating_event(trader=trader, d_pubkey=rated_trade_key, order_id=order.id)
        send(sender, Action.RATE_RECEIVED, order, request_id=request_id, payload=RatingUserPayload(vote))
    return trader


def _counterparty(order: Order, rater_is_seller: bool) -> tuple[str | None, str]:
    """(identity, trade key) of the rated party; the caller checked both trade keys are set."""
    if rater_is_seller:
        return order.master_buyer_pubkey, order.buyer_pubkey or ""
    return order.master_seller_pubkey, order.seller_pubkey or ""


def _apply_vote(identity: str, vote: int) -> Trader:
    """Update the rated identity's aggregates under a row lock (caller's transaction)."""
    Trader.objects.get_or_create(pubkey=identity)
    trader = Trader.objects.select_for_update().get(pk=identity)
    new = rating_apply(RatingAggregate.of(trader), vote)
    if not (0 <= new.total_rating <= MAX_RATING and new.total_rating <= MAX_RATING * new.total_reviews):
        raise CantDo(CantDoReason.INVALID_RATING)
    # The native sum is what an export attests (docs/PROTOCOL.md §Export-reputation step 7).
    return trader_rating_store(identity=identity, aggregate=new, native_rating_sum=F("native_rating_sum") + vote)


def trader_rating_store(*, identity: str, aggregate: RatingAggregate, **fields) -> Trader:
    """Write `aggregate` (and `fields`) to the identity's record; caller holds its row lock."""
    Trader.objects.filter(pk=identity).update(
        total_reviews=aggregate.total_reviews,
        total_rating=aggregate.total_rating,
        last_rating=aggregate.last_rating,
        max_rating=aggregate.max_rating,
        min_rating=aggregate.min_rating,
        **fields,
    )
    return Trader.objects.get(pk=identity)


def publish_rating_event(*, trader: Trader, d_pubkey: str, order_id=None, now: int | None = None) -> OutboundMessage:
    """The 38384 event for `trader`'s aggregates, published at once (plain `now` created_at)."""
    now = int(time.time()) if now is None else now
    days = max(0, (now - int(trader.created_at.timestamp())) // 86_400) if trader.created_at else 0
    since = int(trader.created_at.timestamp()) if trader.created_at else None
    event = build_rating_event(
        node_keys(),
        d_pubkey=d_pubkey,
        total_reviews=trader.total_reviews,
        total_rating=trader.total_rating,
        last_rating=trader.last_rating,
        max_rate=trader.max_rating,
        min_rate=trader.min_rating,
        days=days,
        since=since,
        settings=publisher_settings(),
        now=now,
    )
    return enqueue_event(event=event, order_id=order_id, d_tag=d_pubkey)
