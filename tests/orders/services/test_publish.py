"""38383 publication rules and the LND network fetch."""

import json

import pytest
from django.db import transaction
from django.utils import timezone

from nostrbridge import event_settings
from nostrbridge.event_settings import clear_network_cache, lnd_network_fetch
from nostrbridge.protocol.enums import Action
from orders.models import Order, Trader
from orders.publish import publish_order_event
from orders.selectors import watched_invoice_hashes
from orders.services.traders import trader_bump_trade_index, trader_user_info
from tests.orders.services.support import make_order, order_events, published_statuses, set_price, tag
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node")]


def test_network_fetch_asks_lnd_once(fake_ln):
    clear_network_cache()
    assert lnd_network_fetch() == "regtest"
    assert lnd_network_fetch() == "regtest"
    assert [name for name, _ in fake_ln.calls] == ["get_info"]


def test_network_unknown_while_lnd_is_down_then_retried(fake_ln, monkeypatch):
    clear_network_cache()
    fake_ln.set_unavailable()
    assert lnd_network_fetch() == "unknown"
    assert lnd_network_fetch() == "unknown"  # inside the retry pause: LND not asked again
    fake_ln.set_unavailable(False)
    monkeypatch.setattr(event_settings, "NETWORK_RETRY_SECONDS", 0.0)
    assert lnd_network_fetch() == "regtest"


def test_network_is_never_fetched_inside_a_transaction(fake_ln):
    clear_network_cache()
    with transaction.atomic():
        assert lnd_network_fetch() == "unknown"
    assert fake_ln.calls == []


def test_unpublished_status_gives_no_event():
    set_price()
    order = make_order(TradeClient("alice"))
    Order.objects.filter(pk=order.pk).update(status="active")
    with transaction.atomic():
        assert publish_order_event(order) is None
    assert published_statuses(order.id) == ["pending"]


def test_revisions_get_increasing_created_at():
    set_price()
    order = make_order(TradeClient("alice"))
    Order.objects.filter(pk=order.pk).update(status="expired")
    now = int(timezone.now().timestamp())
    with transaction.atomic():
        publish_order_event(order, now=now - 100)
    first, second = order_events(order.id)
    assert second.created_at == first.created_at + 1
    assert tag(second, "s") == ["canceled"]
    assert tag(second, "expiration") == [str(now - 100 + 30 * 86400)]
    order.refresh_from_db()
    assert order.event_id == second.id


@pytest.mark.django_db(transaction=True)
def test_publish_refuses_to_run_outside_a_transaction():
    set_price()
    order = make_order(TradeClient("alice"))
    with pytest.raises(RuntimeError):
        publish_order_event(order)
    assert published_statuses(order.id) == ["pending"]


def test_trade_index_bump_skips_full_privacy():
    trader_bump_trade_index(identity="a" * 64, sender="a" * 64, trade_index=5)
    trader_bump_trade_index(identity="b" * 64, sender="c" * 64, trade_index=7)
    assert trader_user_info(identity="a" * 64).reviews == 0
    assert list(Trader.objects.values_list("pubkey", "last_trade_index")) == [("b" * 64, 7)]


def test_trade_index_bump_never_lowers_the_stored_index():
    # A message checked before a concurrent one stored a higher index commits after it.
    Trader.objects.create(pubkey="b" * 64, last_trade_index=9)
    trader_bump_trade_index(identity="b" * 64, sender="c" * 64, trade_index=7)
    trader_bump_trade_index(identity="b" * 64, sender="c" * 64, trade_index=9)
    assert Trader.objects.get(pk="b" * 64).last_trade_index == 9
    trader_bump_trade_index(identity="b" * 64, sender="c" * 64, trade_index=10)
    assert Trader.objects.get(pk="b" * 64).last_trade_index == 10


def test_watched_hashes_follow_the_escrow_states(fake_ln):
    set_price()
    alice, bob = TradeClient("alice"), TradeClient("bob")
    order = make_order(alice, kind="buy")
    assert watched_invoice_hashes() == []
    bob.send(Action.TAKE_BUY, index=1, order_id=order.id)
    order.refresh_from_db()
    assert watched_invoice_hashes() == [order.hold_invoice_hash]
    Order.objects.filter(pk=order.pk).update(status="active")
    assert watched_invoice_hashes() == []  # active without invoice_held_at: never paid
    Order.objects.filter(pk=order.pk).update(invoice_held_at=timezone.now())
    assert watched_invoice_hashes() == [order.hold_invoice_hash]
    Order.objects.filter(pk=order.pk).update(status="settled-hold-invoice")
    assert watched_invoice_hashes() == []


def test_watched_hashes_are_the_orm_query_rows_in_pk_order():
    # Every status, with and without a held HTLC, plus orders without a hash: the plain statement
    # returns exactly what the ORM query it replaced returns, in the same order.
    from django.db.models import Q

    from orders.status import ESCROW_LOCKED_STATUSES, WAITING_STATUSES, OrderStatus
    from tests.foundation.factories import make_order as factory_order

    now = timezone.now()
    for number, status in enumerate(OrderStatus.values):
        factory_order(status=status, hold_invoice_hash=f"{2 * number:064x}")
        factory_order(status=status, hold_invoice_hash=f"{2 * number + 1:064x}", invoice_held_at=now)
        factory_order(status=status, invoice_held_at=now)
    reference = Order.objects.filter(
        Q(status__in=WAITING_STATUSES, hold_invoice_hash__isnull=False)
        | Q(status__in=ESCROW_LOCKED_STATUSES, invoice_held_at__isnull=False, hold_invoice_hash__isnull=False)
    ).order_by("pk")
    expected = list(reference.values_list("hold_invoice_hash", flat=True))

    assert watched_invoice_hashes() == expected
    assert len(expected) == 2 * len(WAITING_STATUSES) + len(ESCROW_LOCKED_STATUSES)


def test_publish_of_a_fresh_order_reads_no_order_row_and_publishes_the_same_revision(fake_ln):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from orders.selectors import order_refresh

    set_price()
    order = make_order(TradeClient("alice"))
    with transaction.atomic():
        order_refresh(order)
        now = int(order.created_at.timestamp()) + 60
        reread = publish_order_event(order, now=now)
        with CaptureQueriesContext(connection) as queries:
            fresh = publish_order_event(order, now=now, fresh=True)
    order_reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and '"orders_order"' in q["sql"]]
    assert order_reads == []

    def revision(row) -> tuple:
        event = json.loads(row.event_json)
        return event["kind"], event["content"], event["tags"]

    assert revision(fresh) == revision(reread)
    assert Order.objects.get(pk=order.pk).event_id == fresh.event_id
