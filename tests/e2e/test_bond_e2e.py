"""Anti-abuse bonds through real processes (docs/PROTOCOL.md §Bonds): the node (`manage.py mostrod`),
nostr-sdk's LocalRelay and the simulated Lightning network, where the traders' own simnet nodes
pay the bond hold invoices and the escrow. Bonds on for makers and takers (`both`).

Every satoshi is accounted for on the simnet nodes (routing fees are 0): a released bond
comes back whole, so the balances move by exactly the trade's amounts; and the node's bond
ledger adds up to the msat.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from lightning.bolt11 import decode_invoice
from nostrbridge.protocol.enums import Action, Kind, Status
from nostrbridge.protocol.payloads import OrderPayload, PaymentRequestPayload
from nostrbridge.protocol.structs import SmallOrder
from tests.e2e.trade_clients import RelayConnection, TradeNetwork, Trader, start_trade_network

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="same run as the SQLite pass"),
]

FEE_RATE = 0.006
MSAT = 1_000
AMOUNT = 10_000
FEE = 30  # round(0.006 × 10,000 / 2)
BOND = 1_000  # max(round(0.01 × 10,000) = 100, base 1,000)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    network = start_trade_network(
        tmp_path_factory.mktemp("bonds-e2e"),
        prices={"USD": 50_000.0},
        MOSTRO_FEE=str(FEE_RATE),
        MOSTRO_ANTI_ABUSE_BOND_ENABLED="true",
        MOSTRO_ANTI_ABUSE_BOND_APPLY_TO="both",
    )
    yield network
    network.stop()


@pytest.fixture
async def pair(net: TradeNetwork):
    connections = [await RelayConnection(net.relay_url, net.node_pubkey).connect() for _ in range(2)]
    alice = await Trader("alice", connections[0], net.wallet("alice")).start()
    bob = await Trader("bob", connections[1], net.wallet("bob")).start()
    yield alice, bob
    for connection in connections:
        await connection.close()
        assert connection.errors == []
    for wallet in net.wallets.values():
        await wallet.aclose()


def bond_invoice_of(reply) -> tuple[dict, str]:
    view, bolt11, _ = reply.payload["payment_request"]
    return view, bolt11


async def test_maker_and_taker_bonds_lock_then_come_back_whole_when_the_trade_succeeds(
    net: TradeNetwork, pair: tuple[Trader, Trader]
):
    alice, bob = pair
    before = net.balances_msat()
    a = alice.next_trade_index()
    order = SmallOrder(
        kind=Kind.SELL, status=Status.PENDING, amount=AMOUNT, fiat_code="USD", fiat_amount=5, payment_method="bank",
        premium=0,
    )  # fmt: skip
    r1 = await alice.send(Action.NEW_ORDER, key=a, trade_index=a, payload=OrderPayload(order))
    ask = await alice.expect("pay-bond-invoice", key=a)
    view, maker_bolt11 = bond_invoice_of(ask)
    order_id = ask.body["id"]
    assert (ask.body["request_id"], ask.body["trade_index"], view["amount"], view["status"]) == (r1, a, BOND, "pending")
    decoded = decode_invoice(maker_bolt11)
    assert (decoded.amount_msat, decoded.description) == (BOND * MSAT, f"mostro bond order_id={order_id}")
    maker_bond = asyncio.create_task(alice.wallet.pay(maker_bolt11))
    ack = await alice.expect("new-order", key=a)  # published once the maker's bond locked
    assert (ack.body["request_id"], ack.body["id"], ack.order["status"]) == (r1, order_id, "pending")

    b = bob.next_trade_index()
    payout = await bob.wallet.invoice(AMOUNT - FEE, "payout")
    r2 = await bob.send(
        Action.TAKE_SELL, key=b, trade_index=b, order_id=order_id, payload=PaymentRequestPayload(None, payout, None)
    )
    ask = await bob.expect("pay-bond-invoice", key=b)
    view, taker_bolt11 = bond_invoice_of(ask)
    assert (ask.body["request_id"], view["amount"], view["created_at"], view["expires_at"]) == (r2, BOND, None, None)
    taker_bond = asyncio.create_task(bob.wallet.pay(taker_bolt11))
    pay = await alice.expect("pay-invoice", key=a)  # the take resumed when bob's bond locked
    assert pay.body["request_id"] == r2
    escrow = asyncio.create_task(alice.wallet.pay(pay.payload["payment_request"][1]))
    await alice.expect("buyer-took-order", key=a)
    await bob.expect("hold-invoice-payment-accepted", key=b)
    await bob.send(Action.FIAT_SENT, key=b, order_id=order_id)
    await alice.expect("fiat-sent-ok", key=a)
    await alice.send(Action.RELEASE, key=a, order_id=order_id)
    await bob.expect("purchase-completed", key=b)

    # Both bond HTLCs are canceled (released): the payers see their payments fail, sats back.
    maker_outcome, taker_outcome, escrow_outcome = await asyncio.gather(maker_bond, taker_bond, escrow)
    assert (maker_outcome.status.name, taker_outcome.status.name, escrow_outcome.status.name) == (
        "FAILED",
        "FAILED",
        "SUCCEEDED",
    )
    await asyncio.sleep(0.5)
    delta = {name: net.balances_msat()[name] - before[name] for name in before}
    assert (delta["alice"], delta["bob"], delta["mostro"]) == (
        -(AMOUNT + FEE) * MSAT,
        (AMOUNT - FEE) * MSAT,
        2 * FEE * MSAT,
    )
    states = net.node.query(
        "SELECT role, state, amount_sats FROM orders_bond WHERE order_id = ? ORDER BY id", (order_id.replace("-", ""),)
    )
    assert states == [("maker", "released", BOND), ("taker", "released", BOND)]
    ledger = net.node.run_job("orders.bonds.selectors.bond_ledger")
    assert (ledger["returned"], ledger["held"], ledger["node"], ledger["problems"]) == (2 * BOND, 0, 0, 0)
