"""Duplicate delivery (issue 15, item 5): the same client event through three relays, and again after a
restart, is processed once — one reply, one state change.

The node reads three relays. Each request of a trade (new-order, take-sell, fiat-sent,
release) is one signed event that the client sends to all three; after the node restarts, every
one of them is sent to all three relays again (and the relays replay what they stored to the
node's new subscriptions). The node's inbox stores an event id once (unique constraint) and the
handler runs once: one order, one status change per step, one reply per message; the ledger
check (tests/ledger.py) finds every sat and every reply exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from nostrbridge.protocol.enums import Action, Kind, Status
from nostrbridge.protocol.payloads import OrderPayload, PaymentRequestPayload
from nostrbridge.protocol.structs import SmallOrder
from tests.chaos.support import (
    SQLITE_PASS_MARKS,
    STEP_TIMEOUT_S,
    Book,
    Recovery,
    SellTrade,
    close_all,
    dump,
    network_fixture,
    node_log_errors,
    order_status,
    restart_node,
    trading_pair,
    wait_for,
)
from tests.e2e.trade_clients import RelayConnection, TradeNetwork, Trader
from tests.relays.local_relay import LocalRelayProcess

pytestmark = SQLITE_PASS_MARKS


def extra_relays(network: TradeNetwork) -> Iterator[None]:
    """Two more relays in the node's list, each connected, for the module's tests."""
    extra = [LocalRelayProcess(), LocalRelayProcess()]
    try:
        for relay in extra:
            relay.start()
        urls = [network.relay_url, *(relay.url for relay in extra)]
        network.set_relays(urls)
        for url in urls:
            wait_for(lambda url=url: network.relay_connected(url), what=f"{url} connected")
        network.extra_relays = extra  # type: ignore[attr-defined]
        yield
    finally:
        for relay in extra:
            relay.kill()


net = network_fixture("chaos-dup", around=extra_relays)


class Everywhere:
    """One client connection per relay: the same signed event goes to all of them."""

    def __init__(self, conns: list[RelayConnection]) -> None:
        self.conns = conns
        self.sent: list = []  # every event, for the replay after the restart

    async def send(self, trader: Trader, action: Action, *, key: int, **fields) -> None:
        _request_id, event = trader.build(action, key=key, **fields)
        self.sent.append(event)
        await self.broadcast(event)

    async def broadcast(self, event) -> None:
        for conn in self.conns:
            try:
                await conn.send(event)
            except RuntimeError as exc:
                if "duplicate" not in str(exc).lower():  # a relay that already has it may say so
                    raise


def counts(net: TradeNetwork, order_id: str, event_ids: list[str]) -> tuple:
    """(inbound rows of these events, status changes of the order, replies queued to anyone)."""
    marks = ",".join("?" * len(event_ids))
    [(inbound,)] = net.node.query(
        f"SELECT count(*) FROM nostrbridge_inboundevent WHERE event_id IN ({marks})", tuple(event_ids)
    )
    [(changes,)] = net.node.query(
        "SELECT count(*) FROM orders_orderstatuschange WHERE lower(order_id) = ?", (order_id.replace("-", ""),)
    )
    [(replies,)] = net.node.query("SELECT count(*) FROM nostrbridge_outboundmessage WHERE kind = 14")
    return inbound, changes, replies


async def test_one_event_through_three_relays_and_again_after_a_restart_is_processed_once(
    net: TradeNetwork, book: Book
):
    seller, buyer, conns = await trading_pair(net, book, "dup")
    extra = [await RelayConnection(relay.url, net.node_pubkey).connect() for relay in net.extra_relays]
    everywhere = Everywhere([conns[0], *extra])
    trade = SellTrade(seller, buyer, 40_000)

    # given: every request of the trade sent through the three relays
    trade.s = seller.next_trade_index()
    terms = SmallOrder(
        kind=Kind.SELL, status=Status.PENDING, amount=trade.amount, fiat_code="USD",
        fiat_amount=40, payment_method="bank", premium=0,
    )  # fmt: skip
    await everywhere.send(seller, Action.NEW_ORDER, key=trade.s, trade_index=trade.s, payload=OrderPayload(terms))
    trade.order_id = (await seller.expect("new-order", key=trade.s, timeout_s=STEP_TIMEOUT_S)).body["id"]
    trade.invoice = await buyer.wallet.invoice(trade.amount - trade.fee)
    trade.b = buyer.next_trade_index()
    take = PaymentRequestPayload(None, trade.invoice, None)
    await everywhere.send(
        buyer, Action.TAKE_SELL, key=trade.b, trade_index=trade.b, order_id=trade.order_id, payload=take
    )
    await trade.pay_escrow()
    await trade.expect_active()
    await everywhere.send(buyer, Action.FIAT_SENT, key=trade.b, order_id=trade.order_id)
    await buyer.expect("fiat-sent-ok", key=trade.b, timeout_s=STEP_TIMEOUT_S)
    await seller.expect("fiat-sent-ok", key=trade.s, timeout_s=STEP_TIMEOUT_S)
    assert (await seller.quiet(1.0), await buyer.quiet(0.0)) == ([], [])  # no second reply to any copy
    event_ids = [event.id().to_hex() for event in everywhere.sent]
    before = counts(net, trade.order_id, event_ids)
    # new-order, take (waiting-payment), active, fiat-sent: one status change each, three events stored once
    assert before[:2] == (3, 4)

    # when: the node restarts and every event comes again through every relay
    await asyncio.to_thread(restart_node, net)
    recovery = Recovery()
    for event in everywhere.sent:
        await everywhere.broadcast(event)

    # then: nothing processed twice — no reply, no status change, no new inbound row
    assert (await seller.quiet(3.0), await buyer.quiet(0.0)) == ([], [])
    assert counts(net, trade.order_id, event_ids) == before
    assert order_status(net, trade.order_id) == "fiat-sent"
    recovery.done()

    # and the trade still completes, its release also sent three times
    await everywhere.send(seller, Action.RELEASE, key=trade.s, order_id=trade.order_id)
    await trade.expect_released()
    await trade.expect_paid()
    await asyncio.to_thread(wait_for, lambda: order_status(net, trade.order_id) == "success", what="success")
    assert (await seller.quiet(1.0), await buyer.quiet(0.0)) == ([], [])
    book.trades += [trade.record("success")]
    await close_all(conns + extra)
    report = await book.check()
    assert report.problems == [], dump(report)


def test_no_tracebacks_in_any_node_log(net: TradeNetwork):
    assert node_log_errors(net) == []
