"""Database trouble on PostgreSQL (issue 15, item 7): every connection of the node killed under load.

Runs on the PostgreSQL pass only (`DATABASE_URL=postgres://…`): the node runs on its own
database next to the test database. With trades at several steps in flight, and messages
arriving, `pg_terminate_backend` ends every backend of the node's database at once (what a
PostgreSQL restart or a failover does to its clients; the server itself is shared and keeps
running). Every message is processed once, every trade completes, the ledger finds every sat.
"""

from __future__ import annotations

import asyncio
import os
import re
from urllib.parse import urlsplit, urlunsplit

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
    trading_pair,
)
from tests.e2e.trade_clients import TradeNetwork, start_trade_network

DATABASE_URL = os.environ.get("DATABASE_URL", "")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DATABASE_URL.startswith("postgres"), reason="the PostgreSQL pass"),
]

RECOVERY_TIMEOUT_S = 90.0


def _node_database_url() -> str:
    parts = urlsplit(DATABASE_URL)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_chaos_node"))


def _admin(sql: str, params: tuple = (), *, dbname: str = "postgres") -> list[tuple]:
    import psycopg

    parts = urlsplit(DATABASE_URL)
    with psycopg.connect(urlunsplit(parts._replace(path=f"/{dbname}")), autocommit=True) as db:
        cursor = db.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _pg_query(url: str):
    """`NodeProcess.query` for a node on PostgreSQL: the suite's SQL is written for SQLite."""
    import psycopg

    def query(sql: str, params: tuple = ()) -> list[tuple]:
        sql = re.sub(r"lower\((id|order_id)\)", r"replace(\1::text, '-', '')", sql).replace("?", "%s")
        with psycopg.connect(url, autocommit=True) as db:
            return [tuple(row) for row in db.execute(sql, params).fetchall()]

    return query


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    url = _node_database_url()
    name = urlsplit(url).path.lstrip("/")
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{name}"')
    try:
        network = start_trade_network(
            tmp_path_factory.mktemp("chaos-pg"),
            prices={"USD": USD_PRICE},
            MOSTRO_FEE=str(FEE_RATE),
            DATABASE_URL=url,
        )
        network.node.query = _pg_query(url)  # type: ignore[method-assign]
        yield network
        network.stop()
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def kill_node_connections() -> int:
    """End every backend of the node's database; returns how many there were."""
    name = urlsplit(_node_database_url()).path.lstrip("/")
    rows = _admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    )
    return len(rows)


async def test_every_connection_killed_with_trades_in_flight(net: TradeNetwork, book: Book):
    seller, buyer, conns = await trading_pair(net, book, "pg-kill")
    releasing = SellTrade(seller, buyer, 40_000)
    await releasing.to_active()
    await releasing.fiat_sent()
    taking = SellTrade(seller, buyer, 41_000)
    await taking.publish()
    newcomer = SellTrade(seller, buyer, 42_000)

    # when: the messages of three trades arrive and every connection of the node dies among them
    await releasing.send_release()
    await taking.send_take()
    publishing = asyncio.create_task(newcomer.publish())
    killed = await asyncio.to_thread(kill_node_connections)
    recovery = Recovery()
    assert killed > 0

    # then: each is processed once and every trade finishes
    await releasing.expect_released(timeout_s=RECOVERY_TIMEOUT_S)
    await releasing.expect_paid(timeout_s=RECOVERY_TIMEOUT_S)
    await taking.pay_escrow(timeout_s=RECOVERY_TIMEOUT_S)
    await taking.expect_active(timeout_s=RECOVERY_TIMEOUT_S)
    await asyncio.wait_for(publishing, RECOVERY_TIMEOUT_S)
    recovery.done()
    killed_again = await asyncio.to_thread(kill_node_connections)  # and once more, mid-trade
    assert killed_again > 0
    await taking.complete()
    await newcomer.seller.send(Action.CANCEL, key=newcomer.s, order_id=newcomer.order_id)
    await newcomer.seller.expect("canceled", key=newcomer.s, timeout_s=STEP_TIMEOUT_S)
    assert (await seller.quiet(1.0), await buyer.quiet(0.0)) == ([], [])
    book.trades += [releasing.record("success"), taking.record("success")]
    await close_all(conns)
    report = await book.check()
    assert report.problems == [], dump(report)
