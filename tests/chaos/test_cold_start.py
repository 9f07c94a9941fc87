"""Cold start on an empty price table (issue 15, item 6): a market-priced order sent the moment the
node is up is answered, never dropped.

The node is stopped, its `BtcPrice` rows deleted, and started again; the first message is sent
as soon as the node's banner is out (the relay bridge is reading by then). Three cases: the
price API answers (the start's own tick prices the order), the price API is down at start and
back a moment later (the order waits in the inbox for an on-demand tick), and the price API
stays down (the order is answered `price_too_stale` after `MOSTRO_PRICE_WAIT_SECONDS`, here 3 s;
30 s by default). One market order is traded to the end; the ledger checks it.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from nostrbridge.protocol.enums import Action, Kind, Status
from nostrbridge.protocol.payloads import OrderPayload
from nostrbridge.protocol.structs import SmallOrder
from orders.pricing.quotes import market_amount_sats
from tests.chaos.support import (
    SQLITE_PASS_MARKS,
    STEP_TIMEOUT_S,
    USD_PRICE,
    Book,
    Recovery,
    SellTrade,
    close_all,
    dump,
    network_fixture,
    node_log_errors,
    start_node,
    trading_pair,
)
from tests.e2e.trade_clients import TradeNetwork

pytestmark = SQLITE_PASS_MARKS

PRICE_PATH = "/exrates/BTC"
WAIT_S = "3"  # MOSTRO_PRICE_WAIT_SECONDS of the give-up case (30 by default)


net = network_fixture("chaos-cold")


class MarketSellTrade(SellTrade):
    """A sell order priced at the market: `fiat_amount` USD, the sats fixed at the take."""

    fiat_amount: int = 0

    async def publish(self) -> None:
        self.s = self.seller.next_trade_index()
        order = SmallOrder(
            kind=Kind.SELL, status=Status.PENDING, amount=0, fiat_code="USD",
            fiat_amount=self.fiat_amount, payment_method="bank", premium=0,
        )  # fmt: skip
        await self.seller.send(Action.NEW_ORDER, key=self.s, trade_index=self.s, payload=OrderPayload(order))

    async def expect_ack(self, timeout_s: float = STEP_TIMEOUT_S) -> None:
        ack = await self.seller.expect("new-order", key=self.s, timeout_s=timeout_s)
        assert (ack.body["payload"]["order"]["amount"], ack.body["payload"]["order"]["fiat_amount"]) == (
            0,
            self.fiat_amount,
        )
        self.order_id = ack.body["id"]


def market_trade(seller, buyer, fiat_amount: int) -> MarketSellTrade:
    trade = MarketSellTrade(
        seller, buyer, market_amount_sats(fiat_amount=fiat_amount, price=Decimal(str(USD_PRICE)), premium=0)
    )
    trade.fiat_amount = fiat_amount
    return trade


def cold_restart(net: TradeNetwork, *, prices_up: bool, **env: str) -> None:
    """Stop the node, empty its price table, set the price API's state, start it again."""
    net.node.stop()
    net.node.query("DELETE FROM orders_btcprice")
    assert net.node.query("SELECT count(*) FROM orders_btcprice") == [(0,)]
    if prices_up:
        serve_prices(net)
    else:
        net.prices.set_status(PRICE_PATH, 503)
    for name in ("MOSTRO_PRICE_WAIT_SECONDS",):
        net.node.env.pop(name, None)
    net.node.env.update(env)
    start_node(net)


def serve_prices(net: TradeNetwork) -> None:
    net.prices.set_json(PRICE_PATH, {"BTC": {"USD": USD_PRICE}, "base": "BTC", "timestamp": int(time.time())})


def stored_prices(net: TradeNetwork) -> list[tuple]:
    return net.node.query("SELECT fiat_code, price FROM orders_btcprice")


def orders_of(net: TradeNetwork, pubkey: str) -> int:
    [(count,)] = net.node.query("SELECT count(*) FROM orders_order WHERE creator_pubkey = ?", (pubkey,))
    return count


async def test_a_market_order_in_the_first_second_is_priced_by_the_start_tick(net: TradeNetwork, book: Book):
    """The node prices before it reads: the order sent with the banner is answered and trades."""
    await asyncio.to_thread(cold_restart, net, prices_up=True)
    seller, buyer, conns = await trading_pair(net, book, "cold-price")
    trade = market_trade(seller, buyer, 25)
    await trade.publish()
    await trade.expect_ack()
    assert stored_prices(net) == [("USD", USD_PRICE)]
    assert "Prices: 1 currencies from 1 of 1 providers" in net.node.output  # before the banner
    await trade.send_take()
    await trade.pay_escrow()
    await trade.expect_active()
    await trade.complete()
    book.trades += [trade.record("success")]
    await close_all(conns)
    report = await book.check()
    assert report.problems == [], dump(report)


async def test_no_price_api_at_start_then_back_the_order_waits_and_is_answered(net: TradeNetwork, book: Book):
    """The price API is down when the node starts (nothing stored); the order sent at once waits
    in the inbox, unanswered, while on-demand ticks fail; the API comes back and the order is
    priced and acknowledged, once."""
    await asyncio.to_thread(cold_restart, net, prices_up=False)
    seller, buyer, conns = await trading_pair(net, book, "cold-wait")
    trade = market_trade(seller, buyer, 30)
    await trade.publish()
    assert await seller.quiet(2.0) == []  # waiting for a price, not dropped, not refused
    assert stored_prices(net) == []
    assert "Prices: 0 currencies from 0 of 1 providers" in net.node.output
    serve_prices(net)
    recovery = Recovery()
    await trade.expect_ack()
    recovery.done()
    assert stored_prices(net) == [("USD", USD_PRICE)]
    await cancel(trade)
    await close_all(conns)
    report = await book.check()
    assert report.problems == [], dump(report)


async def test_no_price_api_at_all_the_order_is_answered_price_too_stale(net: TradeNetwork, book: Book):
    """No provider answers: after MOSTRO_PRICE_WAIT_SECONDS the maker gets `price_too_stale`
    instead of silence, and nothing is stored."""
    await asyncio.to_thread(cold_restart, net, prices_up=False, MOSTRO_PRICE_WAIT_SECONDS=WAIT_S)
    seller, buyer, conns = await trading_pair(net, book, "cold-none")
    trade = market_trade(seller, buyer, 35)
    await trade.publish()
    refusal = await seller.expect("cant-do", key=trade.s, timeout_s=STEP_TIMEOUT_S)
    assert refusal.payload == {"cant_do": "price_too_stale"}
    assert orders_of(net, seller.pubkey(trade.s)) == 0
    assert stored_prices(net) == []
    await asyncio.to_thread(cold_restart, net, prices_up=True)
    await close_all(conns)
    report = await book.check()
    assert report.problems == [], dump(report)


async def cancel(trade: SellTrade) -> None:
    await trade.seller.send(Action.CANCEL, key=trade.s, order_id=trade.order_id)
    await trade.seller.expect("canceled", key=trade.s, timeout_s=STEP_TIMEOUT_S)


def test_no_tracebacks_in_any_node_log(net: TradeNetwork):
    assert node_log_errors(net) == []
