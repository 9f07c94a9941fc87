"""`new-order` through the real pipeline (docs/PROTOCOL.md §New-order)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from nostrbridge.models import OutboundMessage
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.enums import Action
from orders.models import Order, OrderStatusChange, Trader
from tests.orders.services.support import (
    VECTORS,
    canonical,
    make_order,
    mint_invoice,
    order_events,
    order_terms,
    set_price,
)
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node")]

VECTOR_ID = "c7dba9db-f13f-4c3f-a77f-3b82e43c2b1a"


def _unix(value) -> int:
    return int(value.timestamp())


def test_sell_market_order_ack_matches_vector(fake_ln):
    set_price()
    alice = TradeClient("alice")
    replies = alice.send(Action.NEW_ORDER, index=1, payload=order_terms(), request_id=1)

    order = Order.objects.get()
    assert len(replies) == 1
    assert replies[0].recipient == alice.pubkey(1)
    ack = canonical(
        replies[0].message.to_json(),
        {
            str(order.id): VECTOR_ID,
            str(_unix(order.created_at)): "1700000000",
            str(_unix(order.expires_at)): "1700086400",
        },
    )
    assert ack == VECTORS["A02_new_order_ack"]
    assert _unix(order.expires_at) - _unix(order.created_at) == 24 * 3600


def test_order_row_holds_the_maker_terms():
    set_price()
    alice = TradeClient("alice")
    order = make_order(alice, index=3)

    assert (order.kind, order.status, order.creator_pubkey) == ("sell", "pending", alice.pubkey(3))
    assert (order.seller_pubkey, order.master_seller_pubkey, order.trade_index_seller) == (
        alice.pubkey(3),
        alice.identity.public_key_hex,
        3,
    )
    assert (order.buyer_pubkey, order.master_buyer_pubkey, order.trade_index_buyer) == (None, None, None)
    assert (order.amount_sats, order.fee_sats, order.dev_fee_sats, order.price_from_api) == (0, 0, 0, True)
    assert (order.fiat_code, order.fiat_amount, order.premium) == ("VES", 100, 1)
    assert order.payment_method == "face to face,bank transfer"
    assert list(OrderStatusChange.objects.values_list("from_status", "to_status", "actor")) == [
        ("", "pending", alice.pubkey(3))
    ]
    assert Trader.objects.get(pk=alice.identity.public_key_hex).last_trade_index == 3


def test_pending_revision_is_published_with_rating_and_source():
    set_price()
    alice = TradeClient("alice")
    order = make_order(alice)

    (event,) = order_events(order.id)
    expires = str(_unix(order.expires_at))
    created = _unix(Trader.objects.get(pk=alice.identity.public_key_hex).created_at)
    since = created - created % 86_400  # the maker's record starts with this order (§Reputation `since`)
    assert event.kind == 38383
    assert event.pubkey == node_pubkey()
    assert event.tags == [
        ["d", str(order.id)],
        ["k", "sell"],
        ["f", "VES"],
        ["s", "pending"],
        ["amt", "0"],
        ["fa", "100"],
        ["pm", "face to face", "bank transfer"],
        ["premium", "1"],
        ["rating", f'["rating",{{"days":0,"since":{since},"total_rating":0.0,"total_reviews":0}}]'],
        [
            "source",
            f"mostro:{order.id}?relays=wss://relay.mostro.network,wss://nos.lol&mostro={node_pubkey()}",
        ],
        ["network", "regtest"],
        ["layer", "lightning"],
        ["expires_at", expires],
        ["published_at", str(_unix(order.created_at))],
        ["expiration", expires],
        ["y", "mostro", "Example Mostro"],
        ["z", "order"],
    ]
    order.refresh_from_db()
    assert order.event_id == event.id


def test_rating_tag_carries_the_maker_reputation():
    set_price()
    alice = TradeClient("alice")
    Trader.objects.create(
        pubkey=alice.identity.public_key_hex, last_trade_index=0, total_reviews=7, total_rating=4.5, last_rating=4
    )
    created = timezone.now() - timedelta(days=120)
    Trader.objects.filter(pk=alice.identity.public_key_hex).update(created_at=created)
    order = make_order(alice)

    (event,) = order_events(order.id)
    since = _unix(created) - _unix(created) % 86_400
    rating = f'["rating",{{"days":120,"since":{since},"total_rating":4.5,"total_reviews":7}}]'
    assert ["rating", rating] in event.tags


def test_range_order_publishes_both_limits():
    set_price()
    alice = TradeClient("alice")
    replies = alice.send(
        Action.NEW_ORDER,
        index=3,
        payload=order_terms(fiat_amount=0, min_amount=10, max_amount=50, payment_method="face to face"),
        request_id=21,
    )

    order = Order.objects.get()
    assert replies[0].json["order"]["payload"]["order"] == {
        "id": str(order.id),
        "kind": "sell",
        "status": "pending",
        "amount": 0,
        "fiat_code": "VES",
        "min_amount": 10,
        "max_amount": 50,
        "fiat_amount": 0,
        "payment_method": "face to face",
        "premium": 1,
        "created_at": _unix(order.created_at),
        "expires_at": _unix(order.expires_at),
    }
    (event,) = order_events(order.id)
    assert ["fa", "10", "50"] in event.tags


def test_fixed_amount_order_gets_its_fee_now():
    alice = TradeClient("alice")
    order = make_order(alice, amount=10_000, premium=0, fiat_code="USD", fiat_amount=10)

    assert (order.amount_sats, order.fee_sats, order.dev_fee_sats, order.price_from_api) == (10_000, 30, 0, False)
    (event,) = order_events(order.id)
    assert ["amt", "10000"] in event.tags


def test_buy_order_with_lightning_address_echoes_it(lnurl_server):
    set_price()
    lnurl_server.pay_request("alice")
    alice = TradeClient("alice")
    address = lnurl_server.address("alice")
    replies = alice.send(
        Action.NEW_ORDER,
        index=3,
        payload=order_terms(kind="buy", payment_method="face to face", buyer_invoice=address),
        request_id=14,
    )

    order = Order.objects.get()
    assert (order.kind, order.buyer_invoice, order.buyer_pubkey, order.trade_index_buyer) == (
        "buy",
        address,
        alice.pubkey(3),
        3,
    )
    assert replies[0].json["order"]["payload"]["order"]["buyer_invoice"] == address
    assert replies[0].json["order"]["trade_index"] == 3


def test_fixed_buy_order_accepts_an_invoice_for_the_full_amount():
    alice = TradeClient("alice")
    invoice = mint_invoice(amount_sats=10_000)
    order = make_order(
        alice, kind="buy", amount=10_000, premium=0, fiat_code="USD", fiat_amount=10, buyer_invoice=invoice
    )

    assert order.buyer_invoice == invoice


def test_full_privacy_maker_has_no_trader_row_and_null_index():
    set_price()
    alice = TradeClient("alice", full_privacy=True)
    replies = alice.send(Action.NEW_ORDER, index=0, payload=order_terms())

    order = Order.objects.get()
    assert replies[0].json["order"]["trade_index"] is None
    assert (order.seller_pubkey, order.master_seller_pubkey, order.trade_index_seller) == (
        alice.pubkey(0),
        alice.pubkey(0),
        0,
    )
    assert Trader.objects.count() == 0
    (event,) = order_events(order.id)
    assert ["rating", '["rating",{"days":0,"total_rating":0.0,"total_reviews":0}]'] in event.tags


@pytest.mark.parametrize(
    ("_case", "offset", "expected_hours"),
    [
        ("null gets the default", None, 24),
        ("zero gets the default (quirk fixed)", 0, 24),
        ("past gets the default (quirk fixed)", -3600, 24),
        ("inside the cap is kept", 48 * 3600, 48),
        ("beyond the cap is capped", 30 * 86400, 15 * 24),
    ],
)
def test_expires_at(_case, offset, expected_hours):
    set_price()
    now = int(timezone.now().timestamp())
    requested = None if offset is None else (0 if offset == 0 else now + offset)
    order = make_order(TradeClient("alice"), expires_at=requested)

    lifetime = order.expires_at - order.created_at
    assert round(lifetime.total_seconds() / 3600) == expected_hours


def test_replayed_event_creates_one_order():
    set_price()
    alice = TradeClient("alice")
    event = alice.build(Action.NEW_ORDER, index=1, payload=order_terms())
    from tests.trade.harness import deliver

    deliver(event, relay="ws://r1")
    deliver(event, relay="ws://r2")
    assert Order.objects.count() == 1
    assert OutboundMessage.objects.filter(kind=14).count() == 1


def test_the_new_order_is_inserted_with_its_event_id_and_never_updated():
    # The pending revision is built before the INSERT, so no UPDATE stores its id; the maker's
    # reply still comes before the revision in the outbox.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    set_price()
    alice = TradeClient("alice")
    with CaptureQueriesContext(connection) as queries:
        order = make_order(alice)

    (event,) = order_events(order.id)
    assert Order.objects.get(pk=order.pk).event_id == event.id
    assert [q["sql"] for q in queries if q["sql"].startswith('UPDATE "orders_order"')] == []
    # The reply and the revision: one outbox INSERT.
    assert len([q for q in queries if q["sql"].startswith('INSERT INTO "nostrbridge_outboundmessage"')]) == 1
    rows = OutboundMessage.objects.filter(order_id=order.id).order_by("pk").values_list("action", "kind", "event_id")
    assert [(action, kind) for action, kind, _ in rows] == [("new-order", 14), ("", 38383)]
    assert rows[1][2] == event.id


def test_the_rating_tag_comes_from_the_row_the_index_bump_returned():
    # One trader read (the trade-index gate's); the event's reputation is the row the bump's
    # UPDATE … RETURNING gave back, in the order's own transaction.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    set_price()
    alice = TradeClient("alice")
    Trader.objects.create(
        pubkey=alice.identity.public_key_hex, last_trade_index=0, total_reviews=3, total_rating=2.5, last_rating=2
    )
    with CaptureQueriesContext(connection) as queries:
        order = make_order(alice)

    trader_reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and 'FROM "orders_trader"' in q["sql"]]
    assert len(trader_reads) == 1
    (event,) = order_events(order.id)
    (rating,) = [tag for tag in event.tags if tag[0] == "rating"]
    stored = Trader.objects.get(pk=alice.identity.public_key_hex)
    since = _unix(stored.created_at) - _unix(stored.created_at) % 86_400
    assert rating == ["rating", f'["rating",{{"days":0,"since":{since},"total_rating":2.5,"total_reviews":3}}]']
    assert stored.last_trade_index == 1
