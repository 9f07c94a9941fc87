"""Whole trades through real processes: the node (`manage.py mostrod`: web, relay bridge, invoice
watcher, django-q2 cluster) on its own SQLite file, nostr-sdk's LocalRelay, and the simulated
Lightning network, where the traders' own simnet nodes pay the escrow and receive the payout.

The traders are nostr-sdk clients (`tests/e2e/trade_clients.py`): kind-14 events encrypted with
nostr-sdk's NIP-44 and signed by its EventBuilder, replies read from a relay subscription and
decrypted by nostr-sdk; the message JSON, trade signature and identity proof come from our
protocol package. Every reply is compared whole with what docs/PROTOCOL.md §Actions specifies, every
published order revision (38383 `s` tag) is checked in order, and every satoshi is accounted
for on the simnet nodes (routing fees are 0 in this network, so balances move by exactly the
trade's amounts).

One node + relay + simnet for the module; each scenario trades on its own orders with fresh
identities. Fee rate 0.006; LND_PAYMENT_ATTEMPTS=2, LND_PAYMENT_RETRIES_INTERVAL=1 s. The
payout-retry and dev-fee jobs are ticked with `NodeProcess.run_job` (a separate process runs
the job function, as the cluster does) instead of waiting for django-q2's minute schedule.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime

import pytest

from lightning.bolt11 import decode_invoice
from lightning.grpc import lightning_pb2 as ln
from nostrbridge.protocol.enums import Action, Kind, Status
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.payloads import (
    AmountPayload,
    NextTradePayload,
    OrderPayload,
    PaymentRequestPayload,
    RatingUserPayload,
)
from nostrbridge.protocol.structs import SmallOrder
from tests.e2e.trade_clients import RelayConnection, TradeNetwork, Trader, sell_with_invoice, start_trade_network

# The node runs on its own SQLite file whatever the suite's database: the PostgreSQL pass of
# scripts/run_tests.sh would repeat the very same run.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="same run as the SQLite pass"),
]

FEE_RATE = 0.006
DEV_FEE_SHARE = 0.30  # MOSTRO_DEV_FEE_PERCENTAGE's default
USD_PRICE = 50_000.0
PAYMENT_ATTEMPTS = 2
RETRIES_INTERVAL_S = 1
NAME = "E2E Mostro"
DAY = 86_400
MSAT = 1_000


def fee_of(amount: int) -> int:
    """One party's fee (docs/PROTOCOL.md §Actions notation): round(fee × amount / 2), half away from zero."""
    return int(FEE_RATE * amount / 2 + 0.5)


def market_sats(fiat: int, premium: int = 0) -> int:
    """take-sell step 9: sats = fiat / price × 10^8, minus premium %, truncated (f64 arithmetic)."""
    sats = fiat / USD_PRICE * 1e8
    return int(sats - premium / 100 * sats)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    network = start_trade_network(
        tmp_path_factory.mktemp("trades-e2e"),
        prices={"USD": USD_PRICE},
        MOSTRO_FEE=str(FEE_RATE),
        MOSTRO_NAME=NAME,
        LND_PAYMENT_ATTEMPTS=str(PAYMENT_ATTEMPTS),
        LND_PAYMENT_RETRIES_INTERVAL=str(RETRIES_INTERVAL_S),
    )
    yield network
    network.stop()


@pytest.fixture
async def conn(net: TradeNetwork):
    connection = await RelayConnection(net.relay_url, net.node_pubkey).connect(book=True)
    yield connection
    await connection.close()
    for wallet in net.wallets.values():
        await wallet.aclose()
    assert connection.errors == []


@pytest.fixture
async def pair(net: TradeNetwork, conn: RelayConnection):
    """Alice (seller, simnet node `alice`) and Bob (buyer, simnet node `bob`): fresh identities,
    each with its own nostr-sdk client on the relay, as two phones would be."""
    connections = [await RelayConnection(net.relay_url, net.node_pubkey).connect() for _ in range(2)]
    alice = await Trader("alice", connections[0], net.wallet("alice")).start()
    bob = await Trader("bob", connections[1], net.wallet("bob")).start()
    yield alice, bob
    for connection in connections:
        await connection.close()
        assert connection.errors == []


def sell_order(**fields) -> SmallOrder:
    base = {"kind": Kind.SELL, "status": Status.PENDING, "fiat_code": "USD", "premium": 0, "payment_method": "bank"}
    return SmallOrder(**(base | fields))


def view(order: dict, **changes) -> dict:
    """An order view as the node sends it: the new-order ack's view with some fields changed."""
    return order | changes


def balances_delta(net: TradeNetwork, before: dict[str, int]) -> dict[str, int]:
    after = net.balances_msat()
    return {name: after[name] - before[name] for name in after}


async def no_more_replies(*people: Trader) -> None:
    await asyncio.sleep(0.5)
    for person in people:
        assert [(r.action, r.body.get("request_id")) for r in person.inbox] == [], person.name


async def new_order(person: Trader, order: SmallOrder) -> tuple[int, int, dict]:
    """Publish `order` from the next trade key; returns (trade index, request id, ack body)."""
    index = person.next_trade_index()
    started = int(time.time())
    request_id = await person.send(Action.NEW_ORDER, key=index, trade_index=index, payload=OrderPayload(order))
    ack = await person.expect("new-order", key=index)
    created_at = ack.order["created_at"]
    assert started - 1 <= created_at <= time.time() + 1
    assert ack.order["expires_at"] == created_at + 24 * 3_600  # MOSTRO_EXPIRATION_HOURS default
    assert (ack.body["request_id"], ack.body["trade_index"]) == (request_id, index)
    assert ack.body["id"] == ack.order["id"]
    return index, request_id, ack.body


def pending_tags(net: TradeNetwork, order: dict, *, amt: str, fa: list[str], rating: str) -> list[list[str]]:
    """The `pending` 38383 revision of docs/PROTOCOL.md §Order-event, tag by tag, in order."""
    order_id = order["id"]
    return [
        ["d", order_id],
        ["k", order["kind"]],
        ["f", order["fiat_code"]],
        ["s", "pending"],
        ["amt", amt],
        ["fa", *fa],
        ["pm", *order["payment_method"].split(",")],
        ["premium", str(order["premium"])],
        ["rating", rating],
        ["source", f"mostro:{order_id}?relays={net.relay_url}&mostro={net.node_pubkey}"],
        ["network", "regtest"],
        ["layer", "lightning"],
        ["expires_at", str(order["expires_at"])],
        ["published_at", str(order["created_at"])],
        ["expiration", str(order["expires_at"])],
        ["y", "mostro", NAME],
        ["z", "order"],
    ]


def record_day(net: TradeNetwork, person: Trader) -> int:
    """The UTC day the node's record of `person` starts: its `since` (docs/PROTOCOL.md §Reputation)."""
    [(created,)] = net.node.query("SELECT created_at FROM orders_trader WHERE pubkey = ?", (person.identity_hex,))
    seconds = int(datetime.fromisoformat(created).replace(tzinfo=UTC).timestamp())
    return seconds - seconds % DAY


def no_rating(net: TradeNetwork, maker: Trader) -> str:
    """The `rating` tag of a maker with a record (made by its first order) but no rating yet."""
    return f'["rating",{{"days":0,"since":{record_day(net, maker)},"total_rating":0.0,"total_reviews":0}}]'


def no_reputation(net: TradeNetwork, taker: Trader) -> dict:
    """The UserInfo of a taker-reputation notice for a taker without ratings."""
    return {"rating": 0.0, "reviews": 0, "operating_days": 0, "since": record_day(net, taker)}


def escrow_memo(order_id: str, fiat_amount: int) -> str:
    return (
        f"Escrow amount Order #{order_id}: SELL BTC for USD {fiat_amount} - It WILL FREEZE IN WALLET. "
        "It will release once you release. It will return if buyer does not confirm the payment"
    )


def check_hold_invoice(net: TradeNetwork, bolt11: str, *, sats: int, order_id: str, fiat_amount: int) -> None:
    decoded = decode_invoice(bolt11)
    assert decoded.amount_msat == sats * MSAT
    assert decoded.description == escrow_memo(order_id, fiat_amount)
    assert decoded.payee_pubkey_hex == net.simnet.node("mostro")["pubkey"]
    assert decoded.min_final_cltv_expiry == 144  # LND_HOLD_INVOICE_CLTV_DELTA default


async def payments_to(net: TradeNetwork, bolt11: str) -> list[tuple[str, int]]:
    """(status, sats) of every payment the node made for this invoice."""
    payments = await net.wallet("mostro").payments()
    return [(ln.Payment.PaymentStatus.Name(p.status), p.value_sat) for p in payments if p.payment_request == bolt11]


# -- scenarios ----------------------------------------------------------------------------------
async def test_sell_order_at_market_price_trades_to_completion(
    net: TradeNetwork, conn: RelayConnection, pair: tuple[Trader, Trader]
):
    """Vector scenario A (tests/vectors/): Alice sells 100 USD at market price +1 %, Bob buys."""
    alice, bob = pair
    before = net.balances_msat()
    fiat, premium, methods = 100, 1, "face to face,bank transfer"
    a, r1, ack = await new_order(alice, sell_order(amount=0, fiat_amount=fiat, premium=premium, payment_method=methods))
    order_id, created_at, expires_at = (
        ack["id"],
        ack["payload"]["order"]["created_at"],
        ack["payload"]["order"]["expires_at"],
    )
    base = {
        "id": order_id, "kind": "sell", "amount": 0, "fiat_code": "USD", "min_amount": None, "max_amount": None,
        "fiat_amount": fiat, "payment_method": methods, "premium": premium, "created_at": created_at,
        "expires_at": expires_at,
    }  # fmt: skip
    assert ack["payload"] == {"order": view(base, status="pending")}
    await conn.wait_statuses(order_id, 1)
    assert conn.revisions(order_id)[0].tags == pending_tags(
        net, base, amt="0", fa=[str(fiat)], rating=no_rating(net, alice)
    )

    sats = market_sats(fiat, premium)
    fee = fee_of(sats)
    b = bob.next_trade_index()
    r2 = await bob.send(Action.TAKE_SELL, key=b, trade_index=b, order_id=order_id)
    ask = await bob.expect("add-invoice", key=b)
    assert ask.body == {
        "version": 2, "request_id": r2, "trade_index": b, "id": order_id, "action": "add-invoice",
        "payload": {"order": view(base, status="waiting-buyer-invoice", amount=sats - fee, expires_at=None)},
    }  # fmt: skip
    told = await alice.expect("waiting-buyer-invoice", key=a)
    assert told.body == {
        "version": 2, "request_id": r2, "trade_index": a, "id": order_id, "action": "waiting-buyer-invoice",
        "payload": None,
    }  # fmt: skip
    assert await conn.wait_statuses(order_id, 2) == ["pending", "in-progress"]
    in_progress = conn.revisions(order_id)[1]
    assert (in_progress.tag_value("amt"), in_progress.tag("fa"), in_progress.tag("rating")) == (
        str(sats),
        ["100"],
        None,
    )

    payout_invoice = await bob.wallet.invoice(sats - fee, "my payout")
    r3 = await bob.send(
        Action.ADD_INVOICE, key=b, order_id=order_id, payload=PaymentRequestPayload(None, payout_invoice, None)
    )
    reputation = await alice.expect("pay-invoice", key=a, where=lambda r: "peer" in r.payload)
    assert reputation.body == {
        "version": 2, "request_id": None, "trade_index": None, "id": order_id, "action": "pay-invoice",
        "payload": {"peer": {"pubkey": "", "reputation": no_reputation(net, bob)}},
    }  # fmt: skip
    pay = await alice.expect("pay-invoice", key=a)
    hold_invoice = pay.payload["payment_request"][1]
    assert pay.body == {
        "version": 2, "request_id": r3, "trade_index": a, "id": order_id, "action": "pay-invoice",
        "payload": {"payment_request": [view(base, status="waiting-payment", amount=sats + fee), hold_invoice, None]},
    }  # fmt: skip
    check_hold_invoice(net, hold_invoice, sats=sats + fee, order_id=order_id, fiat_amount=fiat)
    waiting = await bob.expect("waiting-seller-to-pay", key=b)
    assert (waiting.body["request_id"], waiting.body["trade_index"], waiting.payload) == (r3, b, None)

    escrow = asyncio.create_task(alice.wallet.pay(hold_invoice))
    took = await alice.expect("buyer-took-order", key=a)
    keys = {"buyer_trade_pubkey": bob.pubkey(b), "seller_trade_pubkey": alice.pubkey(a)}
    active = view(base, status="active", **keys)
    assert took.body == {
        "version": 2, "request_id": r3, "trade_index": None, "id": order_id, "action": "buyer-took-order",
        "payload": {"order": active | {"amount": sats + fee}},
    }  # fmt: skip
    accepted = await bob.expect("hold-invoice-payment-accepted", key=b)
    assert accepted.body["request_id"] == r3
    assert accepted.payload == {"order": active | {"amount": sats - fee}}
    assert not escrow.done()  # the escrow stays locked (in flight) until the release

    r4 = await bob.send(Action.FIAT_SENT, key=b, order_id=order_id)
    sent_ok = await bob.expect("fiat-sent-ok", key=b)
    assert (sent_ok.body["request_id"], sent_ok.payload) == (
        r4,
        {"peer": {"pubkey": alice.pubkey(a), "reputation": None}},
    )
    told_seller = await alice.expect("fiat-sent-ok", key=a)
    assert (told_seller.body["request_id"], told_seller.payload) == (
        None,
        {"peer": {"pubkey": bob.pubkey(b), "reputation": None}},
    )

    r5 = await alice.send(Action.RELEASE, key=a, order_id=order_id)
    settled = await alice.expect("hold-invoice-payment-settled", key=a)
    assert (settled.body["request_id"], settled.payload) == (r5, None)
    assert (await alice.expect("rate", key=a)).body["request_id"] is None
    assert (await bob.expect("released", key=b)).body["request_id"] is None
    assert (await bob.expect("purchase-completed", key=b)).body["request_id"] is None
    assert (await bob.expect("rate", key=b)).body["request_id"] == r5
    paid = await escrow
    assert (paid.status.value, paid.amount_sats, paid.fee_sats) == ("SUCCEEDED", sats + fee, 0)

    assert await conn.wait_statuses(order_id, 3) == ["pending", "in-progress", "success"]
    assert conn.revisions(order_id)[2].tag_value("amt") == str(sats)
    delta = balances_delta(net, before)
    assert delta["alice"] == -(sats + fee) * MSAT
    assert delta["bob"] == (sats - fee) * MSAT
    assert delta["mostro"] + delta["devfund"] == 2 * fee * MSAT
    assert await payments_to(net, payout_invoice) == [("SUCCEEDED", sats - fee)]
    assert net.node.query(
        "SELECT status, amount_sats, fee_sats FROM orders_order WHERE id = ?", (order_id.replace("-", ""),)
    ) == [("success", sats, fee)]
    await no_more_replies(alice, bob)


async def test_buy_order_trades_to_completion(net: TradeNetwork, conn: RelayConnection, pair: tuple[Trader, Trader]):
    """Bob wants 10,000 sats for 10 USD; Alice takes, pays the escrow; Bob's invoice comes after."""
    alice, bob = pair
    before = net.balances_msat()
    sats, fiat = 10_000, 10
    fee = fee_of(sats)
    b, _, ack = await new_order(bob, sell_order(kind=Kind.BUY, amount=sats, fiat_amount=fiat))
    order_id = ack["id"]
    base = ack["payload"]["order"]
    assert base == {
        "id": order_id, "kind": "buy", "status": "pending", "amount": sats, "fiat_code": "USD", "min_amount": None,
        "max_amount": None, "fiat_amount": fiat, "payment_method": "bank", "premium": 0,
        "created_at": base["created_at"], "expires_at": base["expires_at"],
    }  # fmt: skip
    await conn.wait_statuses(order_id, 1)
    assert conn.revisions(order_id)[0].tags == pending_tags(
        net, base, amt=str(sats), fa=["10"], rating=no_rating(net, bob)
    )

    a = alice.next_trade_index()
    r2 = await alice.send(Action.TAKE_BUY, key=a, trade_index=a, order_id=order_id)
    pay = await alice.expect("pay-invoice", key=a)
    hold_invoice = pay.payload["payment_request"][1]
    assert pay.body == {
        "version": 2, "request_id": r2, "trade_index": a, "id": order_id, "action": "pay-invoice",
        "payload": {"payment_request": [view(base, status="waiting-payment", amount=sats + fee), hold_invoice, None]},
    }  # fmt: skip
    check_hold_invoice(net, hold_invoice, sats=sats + fee, order_id=order_id, fiat_amount=fiat)
    waiting = await bob.expect("waiting-seller-to-pay", key=b)
    assert (waiting.body["request_id"], waiting.body["trade_index"]) == (r2, b)
    assert await conn.wait_statuses(order_id, 2) == ["pending", "in-progress"]

    escrow = asyncio.create_task(alice.wallet.pay(hold_invoice))
    ask = await bob.expect("add-invoice", key=b, where=lambda r: "order" in r.payload)
    assert ask.body == {
        "version": 2, "request_id": r2, "trade_index": None, "id": order_id, "action": "add-invoice",
        "payload": {"order": view(base, status="waiting-buyer-invoice", amount=sats - fee)},
    }  # fmt: skip
    reputation = await bob.expect("add-invoice", key=b)  # the taker-reputation notice (docs/PROTOCOL.md §Add-invoice)
    assert (reputation.body["request_id"], reputation.payload) == (
        None,
        {"peer": {"pubkey": "", "reputation": no_reputation(net, alice)}},
    )
    told = await alice.expect("waiting-buyer-invoice", key=a)
    assert (told.body["request_id"], told.payload) == (r2, None)

    payout_invoice = await bob.wallet.invoice(sats - fee)
    r3 = await bob.send(
        Action.ADD_INVOICE, key=b, order_id=order_id, payload=PaymentRequestPayload(None, payout_invoice, None)
    )
    keys = {"buyer_trade_pubkey": bob.pubkey(b), "seller_trade_pubkey": alice.pubkey(a)}
    took = await alice.expect("buyer-took-order", key=a)
    assert (took.body["request_id"], took.payload) == (
        None,
        {"order": view(base, status="active", amount=sats + fee, **keys)},
    )
    accepted = await bob.expect("hold-invoice-payment-accepted", key=b)
    assert (accepted.body["request_id"], accepted.payload) == (
        r3,
        {"order": view(base, status="active", amount=sats - fee, buyer_invoice=payout_invoice, **keys)},
    )

    await bob.send(Action.FIAT_SENT, key=b, order_id=order_id)
    await bob.expect("fiat-sent-ok", key=b)
    await alice.expect("fiat-sent-ok", key=a)
    r5 = await alice.send(Action.RELEASE, key=a, order_id=order_id)
    await alice.expect("hold-invoice-payment-settled", key=a)
    await alice.expect("rate", key=a)
    await bob.expect("released", key=b)
    await bob.expect("purchase-completed", key=b)
    assert (await bob.expect("rate", key=b)).body["request_id"] == r5
    assert (await escrow).status.value == "SUCCEEDED"

    assert await conn.wait_statuses(order_id, 3) == ["pending", "in-progress", "success"]
    delta = balances_delta(net, before)
    assert (delta["alice"], delta["bob"]) == (-(sats + fee) * MSAT, (sats - fee) * MSAT)
    assert delta["mostro"] + delta["devfund"] == 2 * fee * MSAT
    assert await payments_to(net, payout_invoice) == [("SUCCEEDED", sats - fee)]
    await no_more_replies(alice, bob)


async def test_range_order_trade_publishes_its_child(
    net: TradeNetwork, conn: RelayConnection, pair: tuple[Trader, Trader]
):
    """Alice sells 10–50 USD; Bob takes 20 USD; the release creates the 10–30 USD child order."""
    alice, bob = pair
    before = net.balances_msat()
    a, _, ack = await new_order(alice, sell_order(amount=0, fiat_amount=0, min_amount=10, max_amount=50))
    order_id, base = ack["id"], ack["payload"]["order"]
    assert (base["min_amount"], base["max_amount"], base["fiat_amount"], base["amount"]) == (10, 50, 0, 0)
    await conn.wait_statuses(order_id, 1)
    assert conn.revisions(order_id)[0].tags == pending_tags(
        net, base, amt="0", fa=["10", "50"], rating=no_rating(net, alice)
    )

    taken_fiat = 20
    sats = market_sats(taken_fiat)
    fee = fee_of(sats)
    b = bob.next_trade_index()
    await bob.send(Action.TAKE_SELL, key=b, trade_index=b, order_id=order_id, payload=AmountPayload(taken_fiat))
    ask = await bob.expect("add-invoice", key=b)
    assert ask.order == view(
        base, status="waiting-buyer-invoice", amount=sats - fee, fiat_amount=taken_fiat, expires_at=None
    )
    await alice.expect("waiting-buyer-invoice", key=a)
    assert await conn.wait_statuses(order_id, 2) == ["pending", "in-progress"]
    assert (conn.revisions(order_id)[1].tag_value("amt"), conn.revisions(order_id)[1].tag("fa")) == (str(sats), ["20"])

    payout_invoice = await bob.wallet.invoice(sats - fee)
    await bob.send(
        Action.ADD_INVOICE, key=b, order_id=order_id, payload=PaymentRequestPayload(None, payout_invoice, None)
    )
    await alice.expect("pay-invoice", key=a, where=lambda r: "peer" in r.payload)
    pay = await alice.expect("pay-invoice", key=a)
    assert pay.payload["payment_request"][0]["amount"] == sats + fee
    await bob.expect("waiting-seller-to-pay", key=b)
    escrow = asyncio.create_task(alice.wallet.pay(pay.payload["payment_request"][1]))
    await alice.expect("buyer-took-order", key=a)
    await bob.expect("hold-invoice-payment-accepted", key=b)
    await bob.send(Action.FIAT_SENT, key=b, order_id=order_id)
    await bob.expect("fiat-sent-ok", key=b)
    await alice.expect("fiat-sent-ok", key=a)

    child_index = alice.next_trade_index()
    r5 = await alice.send(
        Action.RELEASE, key=a, order_id=order_id, payload=NextTradePayload(alice.pubkey(child_index), child_index)
    )
    child = await alice.expect("new-order", key=child_index)
    child_id = child.body["id"]
    assert child_id != order_id
    assert child.body == {
        "version": 2,
        "request_id": r5,
        "trade_index": child_index,
        "id": child_id,
        "action": "new-order",
        "payload": {"order": view(base, id=child_id, status="pending", min_amount=10, max_amount=30)},
    }  # fmt: skip  (same created_at / expires_at as the parent)
    await alice.expect("hold-invoice-payment-settled", key=a)
    await alice.expect("rate", key=a)
    await bob.expect("released", key=b)
    await bob.expect("purchase-completed", key=b)
    await bob.expect("rate", key=b)
    assert (await escrow).status.value == "SUCCEEDED"

    assert await conn.wait_statuses(order_id, 3) == ["pending", "in-progress", "success"]
    assert await conn.wait_statuses(child_id, 1) == ["pending"]
    child_view = child.order
    assert conn.revisions(child_id)[0].tags == pending_tags(
        net, child_view, amt="0", fa=["10", "30"], rating=no_rating(net, alice)
    )
    delta = balances_delta(net, before)
    assert (delta["alice"], delta["bob"]) == (-(sats + fee) * MSAT, (sats - fee) * MSAT)
    assert delta["mostro"] + delta["devfund"] == 2 * fee * MSAT
    rows = net.node.query("SELECT status, range_parent_id FROM orders_order WHERE id = ?", (child_id.replace("-", ""),))
    assert rows == [("pending", order_id.replace("-", ""))]
    await no_more_replies(alice, bob)


async def test_cooperative_cancel_refunds_the_seller(
    net: TradeNetwork, conn: RelayConnection, pair: tuple[Trader, Trader]
):
    """An active trade canceled by both parties: the escrow is canceled and Alice's payment fails back."""
    alice, bob = pair
    before = net.balances_msat()
    sats = 20_000
    fee = fee_of(sats)
    a, _, ack = await new_order(alice, sell_order(amount=sats, fiat_amount=20))
    order_id = ack["id"]
    b = bob.next_trade_index()
    payout_invoice = await bob.wallet.invoice(sats - fee)
    await bob.send(
        Action.TAKE_SELL,
        key=b,
        trade_index=b,
        order_id=order_id,
        payload=PaymentRequestPayload(None, payout_invoice, None),
    )
    pay = await alice.expect("pay-invoice", key=a)
    await bob.expect("waiting-seller-to-pay", key=b)
    escrow = asyncio.create_task(alice.wallet.pay(pay.payload["payment_request"][1]))
    await alice.expect("buyer-took-order", key=a)
    await bob.expect("hold-invoice-payment-accepted", key=b)
    locked = balances_delta(net, before)
    assert locked["alice"] == -(sats + fee) * MSAT  # locked in the in-flight HTLC

    c1 = await bob.send(Action.CANCEL, key=b, order_id=order_id)
    mine = await bob.expect("cooperative-cancel-initiated-by-you", key=b)
    assert (mine.body["request_id"], mine.body["id"], mine.payload) == (c1, order_id, None)
    peer = await alice.expect("cooperative-cancel-initiated-by-peer", key=a)
    assert (peer.body["request_id"], peer.payload) == (None, None)
    again = await bob.send(Action.CANCEL, key=b, order_id=order_id)
    refusal = await bob.expect("cant-do", key=b)
    assert (refusal.body["request_id"], refusal.payload) == (again, {"cant_do": "invalid_pubkey"})

    c2 = await alice.send(Action.CANCEL, key=a, order_id=order_id)
    accepted = await alice.expect("cooperative-cancel-accepted", key=a)
    assert (accepted.body["request_id"], accepted.payload) == (c2, None)
    told = await bob.expect("cooperative-cancel-accepted", key=b)
    assert (told.body["request_id"], told.payload) == (None, None)
    refund = await escrow
    assert (refund.status.value, refund.failure_reason) == ("FAILED", "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS")

    # Taken with the invoice in the take: waiting-payment and active are never published.
    assert await conn.wait_statuses(order_id, 2) == ["pending", "canceled"]
    assert balances_delta(net, before) == {"mostro": 0, "alice": 0, "bob": 0, "devfund": 0}
    assert await payments_to(net, payout_invoice) == []
    rows = net.node.query("SELECT status FROM orders_order WHERE id = ?", (order_id.replace("-", ""),))
    assert rows == [("cooperatively-canceled",)]
    await no_more_replies(alice, bob)


async def test_payout_failure_then_a_new_invoice_is_paid(
    net: TradeNetwork, conn: RelayConnection, pair: tuple[Trader, Trader]
):
    """Bob's node is offline at the release: both payout attempts fail, the node asks for a new
    invoice, Bob sends one once his node is back, and the retry pays it (once)."""
    alice, bob = pair
    before = net.balances_msat()
    sats = 30_000
    fee = fee_of(sats)
    a, _, ack = await new_order(alice, sell_order(amount=sats, fiat_amount=30))
    order_id = ack["id"]
    b = bob.next_trade_index()
    first_invoice = await bob.wallet.invoice(sats - fee)
    await bob.send(
        Action.TAKE_SELL,
        key=b,
        trade_index=b,
        order_id=order_id,
        payload=PaymentRequestPayload(None, first_invoice, None),
    )
    pay = await alice.expect("pay-invoice", key=a)
    await bob.expect("waiting-seller-to-pay", key=b)
    escrow = asyncio.create_task(alice.wallet.pay(pay.payload["payment_request"][1]))
    took = await alice.expect("buyer-took-order", key=a)
    await bob.expect("hold-invoice-payment-accepted", key=b)
    await bob.send(Action.FIAT_SENT, key=b, order_id=order_id)
    await bob.expect("fiat-sent-ok", key=b)
    await alice.expect("fiat-sent-ok", key=a)

    net.simnet.control.set_online("bob", False)  # payments to Bob fail with NO_ROUTE
    try:
        r5 = await alice.send(Action.RELEASE, key=a, order_id=order_id)
        await alice.expect("hold-invoice-payment-settled", key=a)
        await alice.expect("rate", key=a)
        await bob.expect("released", key=b)
        failed = await bob.expect("payment-failed", key=b)
        assert failed.body == {
            "version": 2, "request_id": r5, "trade_index": None, "id": order_id, "action": "payment-failed",
            "payload": {"payment_failed": {"payment_attempts": PAYMENT_ATTEMPTS - 1,
                                           "payment_retries_interval": RETRIES_INTERVAL_S}},
        }  # fmt: skip
        assert (await escrow).status.value == "SUCCEEDED"  # the seller's escrow is settled all the same
        await asyncio.sleep(RETRIES_INTERVAL_S)
        ask = None
        for _ in range(3):  # the cluster's own tick may have made the second attempt already
            await asyncio.to_thread(net.node.run_job, "orders.jobs.retry_failed_payouts")
            try:
                ask = await bob.expect("add-invoice", key=b, timeout_s=3)
                break
            except TimeoutError:
                continue
        assert ask is not None
    finally:
        net.simnet.control.set_online("bob", True)
    settled_view = took.order | {
        "status": "settled-hold-invoice",
        "amount": sats - fee,
        "buyer_invoice": first_invoice,
    }
    assert ask.body == {
        "version": 2, "request_id": None, "trade_index": None, "id": order_id, "action": "add-invoice",
        "payload": {"order": settled_view},
    }  # fmt: skip
    assert await payments_to(net, first_invoice) == [("FAILED", sats - fee)]

    second_invoice = await bob.wallet.invoice(sats - fee, "second try")
    r6 = await bob.send(
        Action.ADD_INVOICE, key=b, order_id=order_id, payload=PaymentRequestPayload(None, second_invoice, None)
    )
    updated = await bob.expect("invoice-updated", key=b)
    assert (updated.body["request_id"], updated.payload) == (r6, None)
    completed = None
    for _ in range(3):
        await asyncio.to_thread(net.node.run_job, "orders.jobs.retry_failed_payouts")
        try:
            completed = await bob.expect("purchase-completed", key=b, timeout_s=3)
            break
        except TimeoutError:
            continue
    assert completed is not None
    assert completed.body["request_id"] is None
    assert (await bob.expect("rate", key=b)).body["request_id"] is None  # a scheduler retry

    assert await conn.wait_statuses(order_id, 2) == ["pending", "success"]
    delta = balances_delta(net, before)
    assert (delta["alice"], delta["bob"]) == (-(sats + fee) * MSAT, (sats - fee) * MSAT)
    assert delta["mostro"] + delta["devfund"] == 2 * fee * MSAT
    assert await payments_to(net, second_invoice) == [("SUCCEEDED", sats - fee)]
    assert await payments_to(net, first_invoice) == [("FAILED", sats - fee)]
    await no_more_replies(alice, bob)


async def test_lightning_address_payout(net: TradeNetwork, conn: RelayConnection, pair: tuple[Trader, Trader]):
    """Bob's buy order names a Lightning address (LNURL-pay on 127.0.0.1, backed by his simnet
    node): no invoice is ever asked for, and the payout fetches one for amount − fee."""
    alice, bob = pair
    before = net.balances_msat()
    callbacks_before = len(net.buyer_address.callbacks)
    sats, fiat = 15_000, 15
    fee = fee_of(sats)
    address = net.buyer_address.address
    b, _, ack = await new_order(bob, sell_order(kind=Kind.BUY, amount=sats, fiat_amount=fiat, buyer_invoice=address))
    order_id, base = ack["id"], ack["payload"]["order"]
    assert base["buyer_invoice"] == address

    a = alice.next_trade_index()
    r2 = await alice.send(Action.TAKE_BUY, key=a, trade_index=a, order_id=order_id)
    pay = await alice.expect("pay-invoice", key=a)
    without_invoice = {k: v for k, v in base.items() if k != "buyer_invoice"}  # never in pay-invoice
    assert pay.payload["payment_request"][0] == view(without_invoice, status="waiting-payment", amount=sats + fee)
    await bob.expect("waiting-seller-to-pay", key=b)
    escrow = asyncio.create_task(alice.wallet.pay(pay.payload["payment_request"][1]))
    keys = {"buyer_trade_pubkey": bob.pubkey(b), "seller_trade_pubkey": alice.pubkey(a)}
    took = await alice.expect("buyer-took-order", key=a)
    assert (took.body["request_id"], took.order["status"], took.order["amount"]) == (r2, "active", sats + fee)
    assert {k: took.order[k] for k in keys} == keys
    accepted = await bob.expect("hold-invoice-payment-accepted", key=b)
    assert (accepted.body["request_id"], accepted.order["amount"]) == (r2, sats - fee)

    await bob.send(Action.FIAT_SENT, key=b, order_id=order_id)
    await bob.expect("fiat-sent-ok", key=b)
    await alice.expect("fiat-sent-ok", key=a)
    await alice.send(Action.RELEASE, key=a, order_id=order_id)
    await alice.expect("hold-invoice-payment-settled", key=a)
    await alice.expect("rate", key=a)
    await bob.expect("released", key=b)
    await bob.expect("purchase-completed", key=b)
    await bob.expect("rate", key=b)
    assert (await escrow).status.value == "SUCCEEDED"

    callbacks = net.buyer_address.callbacks[callbacks_before:]
    assert [(amount, comment) for amount, comment, _ in callbacks] == [((sats - fee) * MSAT, None)]
    assert await payments_to(net, callbacks[0][2]) == [("SUCCEEDED", sats - fee)]
    assert await conn.wait_statuses(order_id, 3) == ["pending", "in-progress", "success"]
    delta = balances_delta(net, before)
    assert (delta["alice"], delta["bob"]) == (-(sats + fee) * MSAT, (sats - fee) * MSAT)
    assert delta["mostro"] + delta["devfund"] == 2 * fee * MSAT
    await no_more_replies(alice, bob)


async def test_ratings_are_published_and_shown_on_the_next_order(
    net: TradeNetwork, conn: RelayConnection, pair: tuple[Trader, Trader]
):
    alice, bob = pair
    sats = 5_000
    a, _, ack = await new_order(alice, sell_order(amount=sats, fiat_amount=5))
    order_id = ack["id"]
    invoice = await bob.wallet.invoice(sats - fee_of(sats))
    b, escrow = await sell_with_invoice(alice, bob, order_id=order_id, seller_key=a, invoice=invoice)
    assert escrow.status.value == "SUCCEEDED"

    ratings_before = len(conn.rating_events)
    r1 = await alice.send(Action.RATE_USER, key=a, order_id=order_id, payload=RatingUserPayload(5))
    received = await alice.expect("rate-received", key=a)
    assert received.body == {
        "version": 2, "request_id": r1, "trade_index": None, "id": order_id, "action": "rate-received",
        "payload": {"rating_user": 5},
    }  # fmt: skip
    r2 = await bob.send(Action.RATE_USER, key=b, order_id=order_id, payload=RatingUserPayload(4))
    assert (await bob.expect("rate-received", key=b)).body["request_id"] == r2
    again = await bob.send(Action.RATE_USER, key=b, order_id=order_id, payload=RatingUserPayload(1))

    events = (await conn.wait_ratings(ratings_before + 2))[ratings_before:]
    by_d = {e.tag_value("d"): e for e in events}
    # d = the rated user's trade key (docs/ARCHITECTURE.md: mostrod writes the rater's own key)
    assert set(by_d) == {bob.pubkey(b), alice.pubkey(a)}
    for rated, vote, person in ((bob.pubkey(b), 5, bob), (alice.pubkey(a), 4, alice)):
        event = by_d[rated]
        expiration = int(event.tag_value("expiration"))
        assert expiration - event.created_at == 90 * DAY  # MOSTRO_EXPIRATION_RATING_DAYS default
        assert event.tags == [
            ["d", rated],
            ["expiration", str(expiration)],
            ["total_reviews", "1"],
            ["total_rating", "2.5" if vote == 5 else "2"],  # the first vote counts half
            ["last_rating", str(vote)],
            ["max_rate", str(vote)],
            ["min_rate", str(vote)],
            ["since", str(record_day(net, person))],
            ["z", "rating"],
            ["days", "0"],
        ]
        assert event.content == ""
    rows = net.node.query(
        "SELECT total_reviews, total_rating, last_rating FROM orders_trader WHERE pubkey = ?", (alice.identity_hex,)
    )
    assert rows == [(1, 2.0, 4)]

    # Alice's next order carries her new reputation in its rating tag; then she cancels it.
    a2, _, ack2 = await new_order(alice, sell_order(amount=sats, fiat_amount=5))
    second_id = ack2["id"]
    await conn.wait_statuses(second_id, 1)
    since = record_day(net, alice)
    rating = f'["rating",{{"days":0,"since":{since},"total_rating":2.0,"total_reviews":1}}]'
    assert conn.revisions(second_id)[0].tag_value("rating") == rating
    c = await alice.send(Action.CANCEL, key=a2, order_id=second_id)
    canceled = await alice.expect("canceled", key=a2)
    assert (canceled.body["request_id"], canceled.body["id"], canceled.payload) == (c, second_id, None)
    assert await conn.wait_statuses(second_id, 2) == ["pending", "canceled"]
    await asyncio.sleep(0.5)
    assert len(conn.rating_events) == ratings_before + 2  # the second vote of Bob changed nothing
    assert again not in [r.body["request_id"] for r in bob.history]
    await no_more_replies(alice, bob)


async def test_every_satoshi_is_accounted_for_and_the_dev_fund_is_paid(net: TradeNetwork):
    """Across the module: the node kept 2 × fee per successful trade minus the dev fee it paid,
    the fund received exactly each order's dev fee once, and the traders' sums match."""
    for _ in range(4):  # PAY_BATCH (5) dev fees per tick
        counts = await asyncio.to_thread(net.node.run_job, "orders.jobs.pay_pending_dev_fees")
        if counts["attempted"] == 0 and counts["reconciled"] == 0:
            break
    orders = net.node.query(
        "SELECT lower(id), amount_sats, fee_sats, dev_fee_sats FROM orders_order"
        " WHERE status = 'success' ORDER BY created_at"
    )
    assert len(orders) == 6  # sell, buy, range, payout retry, Lightning address, rating
    for _, amount, fee, dev_fee in orders:
        assert fee == fee_of(amount)
        assert dev_fee == int(2 * fee * DEV_FEE_SHARE + 0.5)
    paid = net.node.query("SELECT lower(order_id), amount_sats, status, attempts FROM devfee_devfeepayment ORDER BY id")
    assert sorted((row[0], row[1], row[2]) for row in paid) == sorted((o[0], o[3], "paid") for o in orders)
    # One LNURL invoice per order, none twice, each for that order's dev fee (LUD-12 comment).
    npub = Keys.from_hex(net.nsec_hex).npub
    asked = sorted((comment, amount) for amount, comment, _ in net.devfund.callbacks)
    assert asked == sorted((f"mostro-dev-fee order={_dashed(o[0])} node={npub}", o[3] * MSAT) for o in orders)

    delta = balances_delta(net, net.start_balances)
    kept = sum(2 * fee for _, _, fee, _ in orders)
    dev = sum(dev_fee for *_, dev_fee in orders)
    assert delta["devfund"] == dev * MSAT
    assert delta["mostro"] == (kept - dev) * MSAT
    assert delta["alice"] == -sum(amount + fee for _, amount, fee, _ in orders) * MSAT
    assert delta["bob"] == sum(amount - fee for _, amount, fee, _ in orders) * MSAT
    assert sum(delta.values()) == 0  # no routing fees on this network: nothing created or lost


def test_node_log_has_no_errors(net: TradeNetwork):
    log = net.node.output
    assert "Traceback" not in log, log[-4000:]
    assert " ERROR " not in log, log[-4000:]
    assert " CRITICAL " not in log, log[-4000:]


def _dashed(hex_id: str) -> str:
    return str(uuid.UUID(hex_id))
