"""Database trouble (issue 15, item 7): SQLite busy beyond its busy timeout.

Another process (here: this test, through its own sqlite3 connection) holds the node's write
lock for `LOCK_S`, three times the node's busy timeout (`MOSTRO_SQLITE_BUSY_TIMEOUT_S`, 1 s here
for speed; 20 s by default), while traders send messages: every write the node tries meanwhile
fails "database is locked". Once the lock is gone, every message is processed once (one reply,
one status change), and the trade completes; the ledger finds every sat once.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import threading

import pytest

from nostrbridge.protocol.enums import Action
from tests.chaos.support import (
    FEE_RATE,
    STEP_TIMEOUT_S,
    USD_PRICE,
    Book,
    Recovery,
    SellTrade,
    close_all,
    dump,
    order_status,
    trading_pair,
)
from tests.e2e.trade_clients import TradeNetwork, start_trade_network

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="same run as the SQLite pass"),
]

BUSY_TIMEOUT_S = float(os.environ.get("MOSTRO_CHAOS_BUSY_TIMEOUT_S", "1"))
LOCK_S = 3 * BUSY_TIMEOUT_S
RECOVERY_TIMEOUT_S = 90.0
LOCKED = "database is locked"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    network = start_trade_network(
        tmp_path_factory.mktemp("chaos-db"),
        prices={"USD": USD_PRICE},
        MOSTRO_FEE=str(FEE_RATE),
        MOSTRO_SQLITE_BUSY_TIMEOUT_S=str(BUSY_TIMEOUT_S),
    )
    yield network
    network.stop()


@pytest.fixture(scope="module")
def book(net: TradeNetwork) -> Book:
    return Book(net)


class WriteLock:
    """Holds the node database's write lock (BEGIN IMMEDIATE) from another connection."""

    def __init__(self, net: TradeNetwork) -> None:
        self.db = sqlite3.connect(net.node.db_path, timeout=30, isolation_level=None, check_same_thread=False)
        self.held = threading.Event()

    def take(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.held.set()

    def release(self) -> None:
        self.db.execute("ROLLBACK")
        self.db.close()
        self.held.clear()


def status_changes(net: TradeNetwork, order_id: str) -> list[str]:
    rows = net.node.query(
        "SELECT to_status FROM orders_orderstatuschange WHERE lower(order_id) = ? ORDER BY id",
        (order_id.replace("-", ""),),
    )
    return [status for (status,) in rows]


async def test_writes_locked_out_beyond_the_busy_timeout_are_retried_once_the_lock_is_gone(
    net: TradeNetwork, book: Book
):
    seller, buyer, conns = await trading_pair(net, book, "db-busy")
    trade = SellTrade(seller, buyer, 40_000)
    await trade.to_active()
    other = SellTrade(seller, buyer, 41_000)

    # given: the write lock held by someone else for three busy timeouts
    lock = WriteLock(net)
    await asyncio.to_thread(lock.take)
    log_mark = len(net.node.output)
    # when: a state change and a new order arrive meanwhile
    await buyer.send(Action.FIAT_SENT, key=trade.b, order_id=trade.order_id)
    publishing = asyncio.create_task(other.publish())
    await asyncio.sleep(LOCK_S)
    assert LOCKED in net.node.output[log_mark:]  # the node did run into the lock
    assert order_status(net, trade.order_id) == "active"
    await asyncio.to_thread(lock.release)
    recovery = Recovery()

    # then: each is processed once the lock is gone, once
    await buyer.expect("fiat-sent-ok", key=trade.b, timeout_s=RECOVERY_TIMEOUT_S)
    await seller.expect("fiat-sent-ok", key=trade.s, timeout_s=RECOVERY_TIMEOUT_S)
    await asyncio.wait_for(publishing, RECOVERY_TIMEOUT_S)
    recovery.done()
    assert status_changes(net, trade.order_id) == ["pending", "waiting-payment", "active", "fiat-sent"]
    assert (await seller.quiet(1.0), await buyer.quiet(0.0)) == ([], [])
    await trade.send_release()
    await trade.expect_released()
    await trade.expect_paid()
    await other.seller.send(Action.CANCEL, key=other.s, order_id=other.order_id)
    await other.seller.expect("canceled", key=other.s, timeout_s=STEP_TIMEOUT_S)
    book.trades += [trade.record("success")]
    await close_all(conns)
    report = await book.check()
    assert report.problems == [], dump(report)


def test_the_only_errors_logged_are_the_lock(net: TradeNetwork):
    """Every error the node logged is a write that met the lock and is retried; nothing else."""
    lines = net.node.output.splitlines()
    exceptions = {line for line in lines if line.startswith(("django.db.utils.", "sqlite3."))}
    assert exceptions == {
        "django.db.utils.OperationalError: database is locked",
        "sqlite3.OperationalError: database is locked",
    }
    errors = {re.sub(r"\d+", "N", line.split(" ERROR ", 1)[1].split(";")[0]) for line in lines if " ERROR " in line}
    retried = {
        "nostrbridge.bridge.intake inbox insert failed",  # the received event stays in memory, stored again
        "nostrbridge.publisher could not record N deliveries",  # re-published (same event id) after the lease
        "nostrbridge.publisher outbox claim failed",  # nothing claimed (rolled back): the next poll claims it
        "nostrbridge.bridge.runner bridge task relay list failed",  # written again after the debounce
    }
    assert errors <= retried, errors
