"""Maintenance (drain) mode end to end (docs/OPERATIONS.md "Maintenance mode"): the node
(`manage.py mostrod`), nostr-sdk's LocalRelay, simnet, nostr-sdk traders, and the operator's
`manage.py maintenance` run as a separate process against the node's database.

A drained node refuses new orders and takes with `cant-do` `maintenance_mode` (request_id echoed,
the take's order id echoed), republishes its info event with `maintenance_mode` `true`, and finishes
the trade whose escrow was already locked: release, payout, `success`; then `maintenance status`
says the node is drained.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from nostrbridge.protocol.enums import Action, Kind, Status
from nostrbridge.protocol.payloads import OrderPayload, PaymentRequestPayload
from nostrbridge.protocol.structs import SmallOrder
from tests.e2e.bridge_support import fetch_node_events
from tests.e2e.trade_clients import RelayConnection, TradeNetwork, Trader, start_trade_network
from tests.relays.net import REPO_ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="same run as the SQLite pass"),
]

USD_PRICE = 50_000.0
INFO_KIND = 38385
AMOUNT_SATS = 20_000


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    network = start_trade_network(tmp_path_factory.mktemp("maintenance-e2e"), prices={"USD": USD_PRICE})
    yield network
    network.stop()


def maintenance(net: TradeNetwork, *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "manage.py", "maintenance", *args],
        cwd=REPO_ROOT,
        env=net.node.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


async def info_tag(net: TradeNetwork, value: str, timeout_s: float = 30.0) -> dict[str, str]:
    """The node's latest info event once its `maintenance_mode` tag reads `value`."""
    deadline = time.monotonic() + timeout_s
    while True:
        events = await fetch_node_events(net.relay_url, net.node_pubkey, INFO_KIND)
        if events:
            latest = max(events, key=lambda e: e["created_at"])
            tags = {tag[0]: tag[1] if len(tag) > 1 else "" for tag in latest["tags"]}
            if tags.get("maintenance_mode") == value:
                return tags
        assert time.monotonic() < deadline, f"maintenance_mode never became {value}: {events}"
        await asyncio.sleep(0.5)


def sell(amount_sats: int) -> SmallOrder:
    return SmallOrder(
        kind=Kind.SELL, status=Status.PENDING, amount=amount_sats, fiat_code="USD", fiat_amount=10, premium=0,
        payment_method="bank",
    )  # fmt: skip


async def make(person: Trader, order: SmallOrder) -> tuple[int, str]:
    index = person.next_trade_index()
    await person.send(Action.NEW_ORDER, key=index, trade_index=index, payload=OrderPayload(order))
    ack = await person.expect("new-order", key=index)
    return index, ack.body["id"]


async def test_a_drained_node_refuses_new_trades_and_finishes_the_open_one(net: TradeNetwork):
    connections = [await RelayConnection(net.relay_url, net.node_pubkey).connect(book=True) for _ in range(3)]
    alice = await Trader("alice", connections[0], net.wallet("alice")).start()
    bob = await Trader("bob", connections[1], net.wallet("bob")).start()
    carol = await Trader("carol", connections[2]).start()
    try:
        # Before: one trade with its escrow locked, one order still on the book.
        a, order_id = await make(alice, sell(AMOUNT_SATS))
        a2, waiting_id = await make(alice, sell(AMOUNT_SATS))
        b = bob.next_trade_index()
        invoice = await bob.wallet.invoice(AMOUNT_SATS)  # MOSTRO_FEE is 0 on this node
        await bob.send(
            Action.TAKE_SELL,
            key=b,
            trade_index=b,
            order_id=order_id,
            payload=PaymentRequestPayload(None, invoice, None),
        )
        pay = await alice.expect("pay-invoice", key=a)
        escrow = asyncio.create_task(alice.wallet.pay(pay.payload["payment_request"][1]))
        await alice.expect("buyer-took-order", key=a)
        await bob.expect("hold-invoice-payment-accepted", key=b)
        assert (await info_tag(net, "false"))["maintenance_mode"] == "false"

        # The switch: escrow is open, so not drained.
        lines = maintenance(net, "on", "--reason", "moving LND to the new box")
        assert lines[:3] == ["maintenance on", "maintenance: on", "reason: moving LND to the new box"]
        assert "escrowed_orders: 1" in lines
        assert lines[-1] == "drained: no"
        tags = await info_tag(net, "true")
        assert "moving LND" not in str(tags)

        # New trades are refused, with nothing stored: Carol's order, Carol's take of Alice's other order.
        c = carol.next_trade_index()
        new_request = await carol.send(Action.NEW_ORDER, key=c, trade_index=c, payload=OrderPayload(sell(5_000)))
        refused = await carol.expect("cant-do", key=c)
        assert refused.body == {
            "version": 2, "request_id": new_request, "trade_index": None, "action": "cant-do",
            "payload": {"cant_do": "maintenance_mode"},
        }  # fmt: skip
        take_request = await carol.send(Action.TAKE_SELL, key=c, trade_index=c, order_id=waiting_id)
        refused = await carol.expect("cant-do", key=c)
        assert refused.body == {
            "version": 2, "request_id": take_request, "trade_index": None, "id": waiting_id, "action": "cant-do",
            "payload": {"cant_do": "maintenance_mode"},
        }  # fmt: skip
        assert net.node.query("SELECT count(*) FROM orders_trader WHERE pubkey = ?", (carol.identity_hex,)) == [(0,)]
        assert net.node.query("SELECT status FROM orders_order WHERE id = ?", (waiting_id.replace("-", ""),)) == [
            ("pending",)
        ]

        # The open trade finishes.
        await bob.send(Action.FIAT_SENT, key=b, order_id=order_id)
        await bob.expect("fiat-sent-ok", key=b)
        await alice.expect("fiat-sent-ok", key=a)
        await alice.send(Action.RELEASE, key=a, order_id=order_id)
        await alice.expect("hold-invoice-payment-settled", key=a)
        for step in ("released", "purchase-completed"):
            await bob.expect(step, key=b)
        assert (await escrow).status.value == "SUCCEEDED"

        # The pending order holds no escrow: the node is drained, and says so.
        lines = maintenance(net, "status")
        assert "escrowed_orders: 0" in lines
        assert "pending_orders: 1" in lines
        assert lines[-2:] == ["drained: yes", "drained: safe to stop the node or change the Lightning node"]

        # Off again: the info event says so, and the maker closes the order it left on the book.
        assert maintenance(net, "off")[:2] == ["maintenance off", "maintenance: off"]
        await info_tag(net, "false")
        await alice.send(Action.CANCEL, key=a2, order_id=waiting_id)
        await alice.expect("canceled", key=a2)
    finally:
        for connection in connections:
            await connection.close()
