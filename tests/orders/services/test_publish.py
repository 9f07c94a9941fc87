"""38383 publication rules and the LND network fetch."""

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
