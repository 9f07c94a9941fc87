"""Operator policies over real processes (docs/OPERATIONS.md §Policies): the node (`manage.py
mostrod`), nostr-sdk's LocalRelay and the simulated Lightning network, traders as nostr-sdk
clients (tests/e2e/trade_clients.py).

A trader banned in the middle of a trade: its new order is refused with `not_authorized`, and
the trade it is in still completes — the escrow settles and its payout arrives, to the satoshi.
A maker at the open-orders limit gets `too_many_requests` until one of its orders leaves the book.
"""

from __future__ import annotations

import asyncio
import os

import pytest

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
MAX_OPEN_ORDERS = 2


def fee_of(amount: int) -> int:
    return int(FEE_RATE * amount / 2 + 0.5)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    network = start_trade_network(
        tmp_path_factory.mktemp("policies-e2e"),
        prices={"USD": 50_000.0},
        MOSTRO_FEE=str(FEE_RATE),
        MOSTRO_MAX_OPEN_ORDERS=str(MAX_OPEN_ORDERS),
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


def sell_order(**fields) -> SmallOrder:
    base = {"kind": Kind.SELL, "status": Status.PENDING, "fiat_code": "USD", "premium": 0, "payment_method": "bank"}
    return SmallOrder(**(base | fields))


def ban(net: TradeNetwork, pubkey: str, reason: str) -> None:
    """The operator bans a key (the service the admin, console and API call), in the node's database."""
    net.node.shell(
        "from orders.services.bans import ban_create; "
        f"ban_create(pubkey={pubkey!r}, reason={reason!r}, actor='admin:e2e')"
    )


async def test_banned_buyer_is_refused_a_new_order_but_its_trade_completes(
    net: TradeNetwork, pair: tuple[Trader, Trader]
):
    alice, bob = pair
    before = net.balances_msat()
    sats = 30_000
    fee = fee_of(sats)

    a = alice.next_trade_index()
    await alice.send(
        Action.NEW_ORDER, key=a, trade_index=a, payload=OrderPayload(sell_order(amount=sats, fiat_amount=15))
    )
    order_id = (await alice.expect("new-order", key=a)).body["id"]
    b = bob.next_trade_index()
    invoice = await bob.wallet.invoice(sats - fee)
    await bob.send(
        Action.TAKE_SELL, key=b, trade_index=b, order_id=order_id, payload=PaymentRequestPayload(None, invoice, None)
    )
    pay = await alice.expect("pay-invoice", key=a)
    await bob.expect("waiting-seller-to-pay", key=b)
    escrow = asyncio.create_task(alice.wallet.pay(pay.payload["payment_request"][1]))
    await alice.expect("buyer-took-order", key=a)
    await bob.expect("hold-invoice-payment-accepted", key=b)

    ban(net, bob.identity_hex, "chargeback reported by three sellers")

    n = bob.next_trade_index()
    request_id = await bob.send(
        Action.NEW_ORDER, key=n, trade_index=n, payload=OrderPayload(sell_order(amount=10_000, fiat_amount=5))
    )
    refusal = await bob.expect("cant-do", key=n)
    assert refusal.body == {
        "version": 2,
        "request_id": request_id,
        "trade_index": None,
        "action": "cant-do",
        "payload": {"cant_do": "not_authorized"},
    }
    assert net.node.query("SELECT count(*) FROM orders_order WHERE master_seller_pubkey = ?", (bob.identity_hex,)) == [
        (0,)
    ]
    # The ban registered nothing: Bob's stored trade index is still the take's.
    assert net.node.query("SELECT last_trade_index FROM orders_trader WHERE pubkey = ?", (bob.identity_hex,)) == [(b,)]

    # The trade in progress goes on to the end.
    await bob.send(Action.FIAT_SENT, key=b, order_id=order_id)
    await bob.expect("fiat-sent-ok", key=b)
    await alice.expect("fiat-sent-ok", key=a)
    await alice.send(Action.RELEASE, key=a, order_id=order_id)
    await alice.expect("hold-invoice-payment-settled", key=a)
    for step in ("released", "purchase-completed"):
        await bob.expect(step, key=b)
    settled = await escrow
    assert settled.status.value == "SUCCEEDED"
    assert net.node.query("SELECT status FROM orders_order WHERE id = ?", (order_id.replace("-", ""),)) == [
        ("success",)
    ]
    after = net.balances_msat()
    assert (after["alice"] - before["alice"], after["bob"] - before["bob"]) == (
        -(sats + fee) * MSAT,
        (sats - fee) * MSAT,
    )
    [(note,)] = net.node.query(
        "SELECT drop_reason FROM nostrbridge_inboundevent WHERE drop_reason LIKE 'cant-do not_authorized%'"
    )
    assert note == f"cant-do not_authorized policy:ban key:{bob.pubkey(n)[:16]}"


async def test_a_third_open_order_is_refused_until_one_leaves_the_book(net: TradeNetwork, pair: tuple[Trader, Trader]):
    """MOSTRO_MAX_OPEN_ORDERS=2: the third order waits for one of the first two to be canceled."""
    alice, _ = pair
    ids = []
    for _ in range(MAX_OPEN_ORDERS):
        index = alice.next_trade_index()
        await alice.send(
            Action.NEW_ORDER,
            key=index,
            trade_index=index,
            payload=OrderPayload(sell_order(amount=5_000, fiat_amount=3)),
        )
        ids.append((index, (await alice.expect("new-order", key=index)).body["id"]))
    third = alice.next_trade_index()
    request_id = await alice.send(
        Action.NEW_ORDER, key=third, trade_index=third, payload=OrderPayload(sell_order(amount=5_000, fiat_amount=3))
    )
    refusal = await alice.expect("cant-do", key=third)
    assert (refusal.body["request_id"], refusal.payload) == (request_id, {"cant_do": "too_many_requests"})

    first_key, first_id = ids[0]
    await alice.send(Action.CANCEL, key=first_key, order_id=first_id)
    await alice.expect("canceled", key=first_key)
    retry = alice.next_trade_index()
    await alice.send(
        Action.NEW_ORDER, key=retry, trade_index=retry, payload=OrderPayload(sell_order(amount=5_000, fiat_amount=3))
    )
    assert (await alice.expect("new-order", key=retry)).order["status"] == "pending"


def test_node_log_has_no_errors(net: TradeNetwork):
    log = net.node.output
    assert "Traceback" not in log, log[-4000:]
    assert " ERROR " not in log, log[-4000:]
