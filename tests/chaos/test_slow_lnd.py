"""Slow LND (issue 15, item 4): the node's LND answers late — calls hang until their deadline.

simnet's `delay` makes the node's unary gRPC calls answer `HANG_S` late (longer than the node's
`LND_CALL_TIMEOUT_SECONDS`, here 2 s for speed; 10 s by default), so every call ends with
DEADLINE_EXCEEDED. Two shapes: a settle that takes effect and whose answer is lost ("unknown,
ask the node"), and calls that hang before they take effect (a take's hold invoice). Meanwhile
another trader's new-order (no LND needed) is answered without waiting for the hanging call (the
bridge's network lane; its reply time is a figure here, the ordering is proven by events in
tests/nostrbridge/test_network_lane.py); the order that needed LND changes no state on a timeout
and completes once LND answers again; the ledger finds every sat once.
"""

from __future__ import annotations

import asyncio
import os
import time

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
    trading_pair,
    wait_for,
)
from tests.e2e.trade_clients import TradeNetwork

pytestmark = SQLITE_PASS_MARKS

CALL_TIMEOUT_S = float(os.environ.get("MOSTRO_CHAOS_LND_CALL_TIMEOUT_S", "2"))
HANG_S = 3600.0  # far beyond any deadline: each call ends at the client's deadline
RECOVERY_TIMEOUT_S = 90.0  # the inbox backoff after repeated LND timeouts (2, 4, 8 … s)


net = network_fixture("chaos-slow-lnd", LND_CALL_TIMEOUT_SECONDS=str(CALL_TIMEOUT_S))


def lnd_timeouts(net: TradeNetwork, action: str) -> int:
    """How often the node logged an LND call of `action` that did not answer in time."""
    return net.node.output.count(f"LND unavailable handling {action}")


def status_changes(net: TradeNetwork, order_id: str) -> list[str]:
    rows = net.node.query(
        "SELECT to_status FROM orders_orderstatuschange WHERE lower(order_id) = ? ORDER BY id",
        (order_id.replace("-", ""),),
    )
    return [status for (status,) in rows]


async def bystander_answered(trade: SellTrade) -> float:
    """Another trader's new-order while LND hangs; returns its reply time (a figure)."""
    started = time.monotonic()
    await trade.publish()
    return time.monotonic() - started


async def test_a_settle_whose_answer_is_lost_completes_once(net: TradeNetwork, book: Book):
    """The release's settle takes effect at LND but its answer never comes back in time (every
    SettleInvoice hangs). The release's decision stands (`settled-hold-invoice`, recorded before
    the call), nothing is recorded as failed, and the payout asks LND (LookupInvoice) before it
    pays: the escrow is SETTLED, so the buyer is paid, once, while SettleInvoice still hangs."""
    seller, buyer, conns = await trading_pair(net, book, "slow-settle")
    trade = SellTrade(seller, buyer, 40_000)
    await trade.to_active()
    await trade.fiat_sent()
    net.simnet.control.delay("mostro", HANG_S, methods=["SettleInvoice"], after_effect=True)
    other_seller, other_buyer, other_conns = await trading_pair(net, book, "slow-settle-other")
    bystander = SellTrade(other_seller, other_buyer, 41_000)
    await trade.send_release()
    recovery = Recovery()  # here: from the release to the buyer paid, SettleInvoice hanging throughout
    reply_s = await bystander_answered(bystander)  # sent while the release's settle hangs
    await asyncio.to_thread(wait_for, lambda: settle_timeouts(net) == 1, what="the settle timed out")
    await trade.expect_released(timeout_s=RECOVERY_TIMEOUT_S)
    await trade.expect_paid(timeout_s=RECOVERY_TIMEOUT_S)
    await asyncio.to_thread(wait_for, lambda: order_status(net, trade.order_id) == "success", what="success")
    recovery.done()
    figure("bystander_reply_s", reply_s)
    assert status_changes(net, trade.order_id) == [
        "pending", "waiting-payment", "active", "fiat-sent", "settled-hold-invoice", "success",
    ]  # fmt: skip
    net.simnet.control.delay("mostro", 0)
    await cancel_pending(bystander)
    book.trades += [trade.record("success")]
    await close_all(conns + other_conns)
    report = await book.check()
    assert report.problems == [], dump(report)


def settle_timeouts(net: TradeNetwork) -> int:
    return net.node.output.count("settle not confirmed by LND")


async def test_a_take_while_lnd_hangs_waits_and_other_traders_are_answered(net: TradeNetwork, book: Book):
    """Every call to LND hangs, before it takes effect: a take (needs a hold invoice) times out
    and is retried, the order stays `pending` with no hold invoice; another trader's new-order
    is answered meanwhile; when LND answers, the take completes and the trade settles."""
    seller, buyer, conns = await trading_pair(net, book, "slow-take")
    trade = SellTrade(seller, buyer, 42_000)
    await trade.publish()
    other_seller, other_buyer, other_conns = await trading_pair(net, book, "slow-take-other")
    bystander = SellTrade(other_seller, other_buyer, 43_000)
    net.simnet.control.delay("mostro", HANG_S)
    await trade.send_take()
    reply_s = await bystander_answered(bystander)  # sent while the take's AddHoldInvoice hangs
    await asyncio.to_thread(wait_for, lambda: lnd_timeouts(net, "take-sell") >= 1, what="the take timed out")
    assert order_status(net, trade.order_id) == "pending"
    assert hold_invoice_of(net, trade.order_id) is None
    assert await trade.seller.quiet(0.0) == []

    net.simnet.control.delay("mostro", 0)
    recovery = Recovery()
    await trade.pay_escrow(timeout_s=RECOVERY_TIMEOUT_S)
    await trade.expect_active()
    recovery.done()
    figure("bystander_reply_s", reply_s)
    await trade.complete()
    await cancel_pending(bystander)
    book.trades += [trade.record("success")]
    await close_all(conns + other_conns)
    report = await book.check()
    assert report.problems == [], dump(report)


def hold_invoice_of(net: TradeNetwork, order_id: str) -> str | None:
    [(hold_hash,)] = net.node.query(
        "SELECT hold_invoice_hash FROM orders_order WHERE lower(id) = ?", (order_id.replace("-", ""),)
    )
    return hold_hash or None


async def cancel_pending(trade: SellTrade) -> None:
    from nostrbridge.protocol.enums import Action

    await trade.seller.send(Action.CANCEL, key=trade.s, order_id=trade.order_id)
    await trade.seller.expect("canceled", key=trade.s, timeout_s=STEP_TIMEOUT_S)


def figure(name: str, seconds: float) -> None:
    """A figure for docs/RELIABILITY.md (never asserted), next to the recovery times."""
    path = os.environ.get("MOSTRO_CHAOS_FIGURES")
    if path:
        import json

        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        with open(path, "a") as out:
            out.write(json.dumps({"test": test, name: round(seconds, 2)}) + "\n")


def test_no_tracebacks_in_any_node_log(net: TradeNetwork):
    assert node_log_errors(net) == []
