"""`rate-user` through the pipeline (docs/PROTOCOL.md §Rate-user, §Rating-event)."""

import time

import pytest

from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.nip01 import Event
from nostrbridge.protocol.payloads import RatingUserPayload
from orders.models import Trader
from tests.orders.services.support import ln_writes, outbox_count, snapshot
from tests.orders.trade_states import KEYS, active_sell_trade, cant_do, vector
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def settle(node, fake_ln, django_capture_on_commit_callbacks):
    def run(*, payout_in_flight=False, **kwargs):
        trade = active_sell_trade(fake_ln, **kwargs)
        trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
        if payout_in_flight:
            fake_ln.leave_next_payment_in_flight()
        with django_capture_on_commit_callbacks(execute=True):
            trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)
        trade.seller.replies()
        trade.buyer.replies()
        return trade

    return run


def _rate(client, trade, vote, *, request_id=6):
    return client.send(
        Action.RATE_USER, index=1, order_id=trade.order.id, payload=RatingUserPayload(vote), request_id=request_id
    )


def _rating_events():
    return [Event.from_json(row.event_json) for row in OutboundMessage.objects.filter(kind=38384).order_by("pk")]


def test_buyer_rates_the_seller(settle):
    trade = settle()
    replies = _rate(trade.buyer, trade, 5)

    assert [r.message.to_json() for r in replies] == [vector("A22_rate_received", trade.order)]
    seller = Trader.objects.get(pk=KEYS["alice-identity"]["pk"])
    assert (seller.total_reviews, seller.total_rating, seller.last_rating, seller.max_rating, seller.min_rating) == (
        1,
        2.5,
        5,
        5,
        5,
    )
    assert trade.refresh().buyer_sent_rate is True
    [event] = _rating_events()
    expiration = int(event.tag_value("expiration"))
    created = int(seller.created_at.timestamp())
    assert event.tags == [
        ["d", trade.seller_key],  # the RATED user's trade key (deliberate: docs/PROTOCOL.md §Differences)
        ["expiration", str(expiration)],
        ["total_reviews", "1"],
        ["total_rating", "2.5"],
        ["last_rating", "5"],
        ["max_rate", "5"],
        ["min_rate", "5"],
        ["since", str(created - created % 86_400)],  # the record's UTC day (docs/PROTOCOL.md §Reputation)
        ["z", "rating"],
        ["days", "0"],
    ]
    assert seller.native_rating_sum == 5.0
    assert abs(expiration - (int(time.time()) + 90 * 86_400)) <= 2


def test_corrected_average_is_published_exactly(settle):
    """docs/PROTOCOL.md §Rate-user: 7 reviews at 4.5 plus a vote of 5 give 4.5625 (the one-step lag
    of docs/PROTOCOL.md §Rate-user (old text), folding in the previous last rating 4, gave 4.4375)."""
    trade = settle()
    Trader.objects.filter(pk=KEYS["alice-identity"]["pk"]).update(
        total_reviews=7, total_rating=4.5, last_rating=4, max_rating=5, min_rating=3, native_rating_sum=31.5
    )
    _rate(trade.buyer, trade, 5)
    [event] = _rating_events()
    assert [event.tag_value(t) for t in ("total_reviews", "total_rating", "last_rating", "min_rate")] == [
        "8",
        "4.5625",
        "5",
        "3",
    ]
    assert Trader.objects.get(pk=KEYS["alice-identity"]["pk"]).native_rating_sum == 36.5


def test_seller_may_rate_while_the_payout_is_pending(settle):
    trade = settle(payout_in_flight=True)
    assert trade.refresh().status == "settled-hold-invoice"
    replies = _rate(trade.seller, trade, 4, request_id=12)
    assert [(r.action, r.message.request_id, r.json["order"]["payload"]) for r in replies] == [
        ("rate-received", 12, {"rating_user": 4})
    ]
    buyer = Trader.objects.get(pk=KEYS["bob-identity"]["pk"])
    assert (buyer.total_reviews, buyer.total_rating) == (1, 2.0)
    assert _rating_events()[0].tag_value("d") == trade.buyer_key


def _silent_or_refused(trade, fake_ln, client, vote, *, request_id=6):
    identities = list(Trader.objects.order_by("pk").values())
    before, outbox, writes = snapshot(trade.order), outbox_count(), ln_writes(fake_ln)
    replies = _rate(client, trade, vote, request_id=request_id)
    assert snapshot(trade.order) == before
    assert list(Trader.objects.order_by("pk").values()) == identities
    assert (ln_writes(fake_ln), outbox_count()) == (writes, outbox + len(replies))
    return [r.json for r in replies]


def test_buyer_cannot_rate_before_success(settle, fake_ln):
    trade = settle(payout_in_flight=True)
    replies = _silent_or_refused(trade, fake_ln, trade.buyer, 5)
    assert replies == [cant_do("invalid_order_status", 6, trade.order.id)]


def test_rating_an_active_trade_is_refused(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    replies = _silent_or_refused(trade, fake_ln, trade.seller, 5)
    assert replies == [cant_do("invalid_order_status", 6, trade.order.id)]


def test_unknown_order_is_not_found(settle, fake_ln):
    trade = settle()
    missing = "00000000-0000-4000-8000-000000000000"
    replies = trade.buyer.send(Action.RATE_USER, index=1, order_id=missing, payload=RatingUserPayload(5), request_id=6)
    assert [r.json for r in replies] == [cant_do("not_found", 6, missing)]


@pytest.mark.parametrize(("_case", "vote"), [("zero", 0), ("six", 6)])
def test_vote_outside_one_to_five_is_ignored(_case, vote, settle, fake_ln):
    trade = settle()
    assert _silent_or_refused(trade, fake_ln, trade.buyer, vote) == []


def test_second_rating_is_ignored(settle, fake_ln):
    trade = settle()
    _rate(trade.buyer, trade, 5)
    assert _silent_or_refused(trade, fake_ln, trade.buyer, 1, request_id=7) == []


def test_stranger_rating_is_ignored(settle, fake_ln):
    trade = settle()
    assert _silent_or_refused(trade, fake_ln, TradeClient("eve"), 1) == []


def test_full_privacy_counterparty_is_not_rated(settle, fake_ln):
    trade = settle(seller=TradeClient("carol", full_privacy=True))
    assert trade.order.master_seller_pubkey == trade.order.seller_pubkey
    assert _silent_or_refused(trade, fake_ln, trade.buyer, 5) == []
