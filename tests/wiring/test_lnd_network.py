"""The LND network is asked for once per process, at start (nostrbridge.event_settings).

Every entry point calls `lnd_network_fetch()` once (the `fake_ln` fixture plays that start);
the services read the remembered value, also inside their transactions, and never call LND
for it again.
"""

from datetime import timedelta

import pytest

from mostro_site.ops import job_hooks
from nostrbridge import event_settings
from nostrbridge.event_settings import clear_network_cache, lnd_network, lnd_network_fetch
from orders.services.payout import payout_start
from orders.services.timeouts import order_expire
from tests.guards.support import settled_trade
from tests.orders.services.support import make_order, order_events, set_price, tag
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node")]


def _get_info_calls(fake_ln) -> int:
    return [name for name, _ in fake_ln.calls].count("get_info")


def test_a_whole_trade_asks_lnd_for_the_network_once_at_start(fake_ln):
    clear_network_cache()
    assert lnd_network_fetch() == "regtest"  # the process start
    set_price()
    expired = make_order(TradeClient("carol"), index=1)
    trade = settled_trade(fake_ln)  # new-order, take-sell with invoice, escrow paid, fiat-sent, release

    assert payout_start(order_id=trade.order.id) == "succeeded"
    assert order_expire(order_id=expired.id, now=expired.expires_at + timedelta(seconds=1)) is True

    assert _get_info_calls(fake_ln) == 1
    assert [(tag(e, "s"), tag(e, "network")) for e in order_events(trade.order.id)] == [
        (["pending"], ["regtest"]),
        (["success"], ["regtest"]),
    ]
    assert trade.refresh().status == "success"
    assert [(tag(e, "s"), tag(e, "network")) for e in order_events(expired.id)] == [
        (["pending"], ["regtest"]),
        (["canceled"], ["regtest"]),
    ]


def test_reading_the_network_never_asks_lnd(fake_ln):
    clear_network_cache()
    assert lnd_network() == "unknown"
    assert _get_info_calls(fake_ln) == 0


def test_a_node_down_at_start_is_asked_again_by_the_invoice_checks_only(fake_ln, monkeypatch):
    asked = []
    real_get_info = fake_ln.get_info
    monkeypatch.setattr(fake_ln, "get_info", lambda: asked.append(1) or real_get_info())
    clear_network_cache()
    fake_ln.set_unavailable()
    assert lnd_network_fetch() == "unknown"
    set_price()
    order = make_order(TradeClient("alice"))  # no invoice to check: LND is not asked
    assert tag(order_events(order.id)[0], "network") == ["unknown"]
    assert event_settings.invoice_network() is None  # inside the retry pause: not asked either
    assert len(asked) == 1

    fake_ln.set_unavailable(False)
    monkeypatch.setattr(event_settings, "NETWORK_RETRY_SECONDS", 0.0)
    assert event_settings.invoice_network() == "regtest"
    assert (lnd_network(), len(asked)) == ("regtest", 2)


def test_a_job_worker_asks_at_spawn(fake_ln, monkeypatch):
    monkeypatch.setattr(job_hooks.Conf, "SYNC", False)
    monkeypatch.setattr("mostro_site.ops.persist.start_for_process", lambda: None)
    monkeypatch.setattr("nostrbridge.log_context._process_role", "cli")  # restored after the test
    clear_network_cache()
    job_hooks.on_spawn(sender="django_q", proc_name="Worker-1")
    assert (lnd_network(), _get_info_calls(fake_ln)) == ("regtest", 1)
