"""Anti-abuse bonds through real processes (docs/PROTOCOL.md §Bonds): the node (`manage.py mostrod`),
nostr-sdk's LocalRelay and the simulated Lightning network, where the traders' own simnet nodes
pay the bond hold invoices and the escrow. Bonds on for makers and takers (`both`).

Every satoshi is accounted for on the simnet nodes (routing fees are 0): a released bond
comes back whole, so the balances move by exactly the trade's amounts; and the node's bond
ledger adds up to the msat.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from lightning.bolt11 import decode_invoice
from nostrbridge.protocol.enums import Action, Kind, MessageType, Status
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import BondResolutionPayload, OrderPayload, PaymentRequestPayload
from nostrbridge.protocol.structs import BondResolution, SmallOrder
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
        MOSTRO_ANTI_ABUSE_BOND_SLASH_ON_WAITING_TIMEOUT="true",
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


async def _post_bonded_order(maker: Trader, *, kind: Kind) -> tuple[int, str, asyncio.Task]:
    """`maker` posts an order (5 USD for AMOUNT) and pays its bond: returns the trade index,
    the order id and the bond payment's task once the order is published (`new-order`)."""
    order = SmallOrder(
        kind=kind, status=Status.PENDING, amount=AMOUNT, fiat_code="USD", fiat_amount=5, payment_method="bank",
        premium=0,
    )  # fmt: skip
    index = maker.next_trade_index()
    await maker.send(Action.NEW_ORDER, key=index, trade_index=index, payload=OrderPayload(order))
    ask = await maker.expect("pay-bond-invoice", key=index)
    bond = asyncio.create_task(maker.wallet.pay(bond_invoice_of(ask)[1]))
    await maker.expect("new-order", key=index)
    return index, ask.body["id"], bond


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
    # The node's side counts the dev fund: the dev-fee job pays it whenever it runs (an earlier
    # test's trade, or this one's), so mostro's own balance alone depends on timing.
    assert (delta["alice"], delta["bob"], delta["mostro"] + delta["devfund"]) == (
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


async def _bonded_active_sell(net: TradeNetwork, alice: Trader, bob: Trader) -> tuple[str, int, int, list]:
    """alice (maker, bond) sells AMOUNT to bob (taker, bond, invoice given); the escrow is held."""
    a, order_id, maker_bond = await _post_bonded_order(alice, kind=Kind.SELL)
    tasks = [maker_bond]
    b = bob.next_trade_index()
    payout = await bob.wallet.invoice(AMOUNT - FEE, "payout")
    await bob.send(
        Action.TAKE_SELL, key=b, trade_index=b, order_id=order_id, payload=PaymentRequestPayload(None, payout, None)
    )
    tasks.append(asyncio.create_task(bob.wallet.pay(bond_invoice_of(await bob.expect("pay-bond-invoice", key=b))[1])))
    pay = await alice.expect("pay-invoice", key=a)
    tasks.append(asyncio.create_task(alice.wallet.pay(pay.payload["payment_request"][1])))
    await alice.expect("buyer-took-order", key=a)
    await bob.expect("hold-invoice-payment-accepted", key=b)
    return order_id, a, b, tasks


async def test_solver_slashes_the_seller_and_the_buyer_claims_its_share_through_add_bond_invoice(
    net: TradeNetwork, pair: tuple[Trader, Trader]
):
    alice, bob = pair
    before = net.balances_msat()
    order_id, a, b, tasks = await _bonded_active_sell(net, alice, bob)
    await bob.send(Action.FIAT_SENT, key=b, order_id=order_id)
    await alice.expect("fiat-sent-ok", key=a)
    await bob.send(Action.DISPUTE, key=b, order_id=order_id)
    opened = await bob.expect("dispute-initiated-by-you", key=b)
    dispute_id = opened.payload["dispute"][0]
    await alice.expect("dispute-initiated-by-peer", key=a)

    # A solver (read-write) whose replies come to its identity key, watched as key 0.
    solver = Trader("solver", bob.conn)
    solver.keys[0], solver._ours[0] = solver.identity, solver._identity_ours  # noqa: SLF001 - test harness
    await solver.watch_key(0)
    net.node.shell(
        "from orders.models import Trader; Trader.objects.update_or_create("
        f"pubkey='{solver.identity_hex}', defaults={{'is_solver': True, 'solver_category': 2}})"
    )
    await solver.send(Action.ADMIN_TAKE_DISPUTE, key=0, order_id=dispute_id, type=MessageType.DISPUTE)
    await solver.expect("admin-took-dispute", key=0)
    request_id, event = solver.build(
        Action.ADMIN_SETTLE, key=0, order_id=order_id, type=MessageType.DISPUTE,
        payload=BondResolutionPayload(BondResolution(slash_seller=True, slash_buyer=False)),
    )  # fmt: skip
    sent = json.loads(Message.new(
        Action.ADMIN_SETTLE, type=MessageType.DISPUTE, request_id=request_id, id=order_id,
        payload=BondResolutionPayload(BondResolution(slash_seller=True, slash_buyer=False)),
    ).to_json())  # fmt: skip
    assert sent["dispute"]["payload"] == {"bond_resolution": {"slash_seller": True, "slash_buyer": False}}
    await solver.conn.send(event)
    await solver.expect("admin-settled", key=0)
    slashed = await alice.expect("bond-slashed", key=a)
    assert (slashed.body["request_id"], slashed.order["amount"], slashed.order["status"]) == (None, BOND, None)
    await bob.expect("purchase-completed", key=b)

    share = BOND - BOND // 2  # floor(1000 × 0.5) = 500 stays with the node
    net.node.run_job("orders.bonds.payout.process_bond_payouts")
    ask = await bob.expect("add-bond-invoice", key=b)
    request = ask.payload["bond_payout_request"]
    assert (request["order"]["amount"], request["order"]["status"], ask.body["request_id"]) == (share, None, None)
    invoice = await bob.wallet.invoice(share, "bond share")
    await bob.send(
        Action.ADD_BOND_INVOICE, key=b, order_id=order_id, payload=PaymentRequestPayload(None, invoice, None)
    )
    accepted = await bob.expect("bond-invoice-accepted", key=b)
    completed = await bob.expect("bond-payout-completed", key=b)
    assert (accepted.order["amount"], completed.order["amount"]) == (share, share)

    maker_bond, taker_bond, escrow = await asyncio.gather(*tasks)
    assert (maker_bond.status.name, taker_bond.status.name, escrow.status.name) == ("SUCCEEDED", "FAILED", "SUCCEEDED")
    await asyncio.sleep(0.5)
    delta = {name: net.balances_msat()[name] - before[name] for name in before}
    # The node's side counts the dev fund: the dev-fee job pays it whenever it runs (an earlier
    # test's trade, or this one's), so mostro's own balance alone depends on timing.
    assert (delta["alice"], delta["bob"], delta["mostro"] + delta["devfund"]) == (
        -(AMOUNT + FEE + BOND) * MSAT,
        (AMOUNT - FEE + share) * MSAT,
        (2 * FEE + BOND - share) * MSAT,
    )
    rows = net.node.query(
        "SELECT role, state, node_share_sats, payout_sats FROM orders_bond WHERE order_id = ? ORDER BY id",
        (order_id.replace("-", ""),),
    )
    assert rows == [("maker", "slashed", BOND // 2, share), ("taker", "released", None, None)]


async def test_two_takers_pay_their_bonds_together_one_wins_and_every_bond_comes_back_on_cancel(
    net: TradeNetwork, pair: tuple[Trader, Trader]
):
    alice, bob = pair
    carol = await Trader("carol", bob.conn, net.wallet("bob")).start()  # another user paying from bob's node
    before = net.balances_msat()
    a, order_id, maker_bond = await _post_bonded_order(alice, kind=Kind.SELL)

    asks = []
    for taker in (bob, carol):
        index = taker.next_trade_index()
        await taker.send(Action.TAKE_SELL, key=index, trade_index=index, order_id=order_id)
        asks.append((taker, index, await taker.expect("pay-bond-invoice", key=index)))
    payments = [asyncio.create_task(taker.wallet.pay(bond_invoice_of(reply)[1])) for taker, _, reply in asks]

    async def outcome(taker: Trader, index: int) -> str:
        while True:
            for received in list(taker.inbox):
                if received.key_index == index and received.action in ("add-invoice", "canceled"):
                    taker.inbox.remove(received)
                    return received.action
            await asyncio.sleep(0.1)

    results = await asyncio.wait_for(asyncio.gather(*(outcome(t, i) for t, i, _ in asks)), 60)
    assert sorted(results) == ["add-invoice", "canceled"]  # exactly one taker won
    winner, index, _ = asks[results.index("add-invoice")]
    loser_payment = payments[results.index("canceled")]
    assert (await loser_payment).status.name == "FAILED"  # the loser's bond HTLC was canceled: refunded
    rows = net.node.query(
        "SELECT state FROM orders_bond WHERE order_id = ? AND role = 'taker' ORDER BY state",
        (order_id.replace("-", ""),),
    )
    assert rows == [("locked",), ("released",)]

    await winner.send(Action.CANCEL, key=index, order_id=order_id)  # taker cancel: its bond released
    await winner.expect("canceled", key=index)
    await alice.expect("new-order", key=a)
    await alice.send(Action.CANCEL, key=a, order_id=order_id)  # maker cancel: the maker's bond released
    await alice.expect("canceled", key=a)
    outcomes = await asyncio.gather(maker_bond, *payments)
    assert [o.status.name for o in outcomes] == ["FAILED"] * 3
    await asyncio.sleep(0.5)
    assert net.balances_msat() == before  # every bond came back whole
    states = net.node.query("SELECT state FROM orders_bond WHERE order_id = ?", (order_id.replace("-", ""),))
    assert sorted(states) == [("released",)] * 3


async def _solver_for(net: TradeNetwork, conn: RelayConnection, dispute_id: str) -> Trader:
    """A read-write solver whose replies come to its identity key (watched as key 0), holding the dispute."""
    solver = Trader("solver", conn)
    solver.keys[0], solver._ours[0] = solver.identity, solver._identity_ours  # noqa: SLF001 - test harness
    await solver.watch_key(0)
    net.node.shell(
        "from orders.models import Trader; Trader.objects.update_or_create("
        f"pubkey='{solver.identity_hex}', defaults={{'is_solver': True, 'solver_category': 2}})"
    )
    await solver.send(Action.ADMIN_TAKE_DISPUTE, key=0, order_id=dispute_id, type=MessageType.DISPUTE)
    await solver.expect("admin-took-dispute", key=0)
    return solver


async def test_range_maker_slashed_on_one_slice_gives_up_that_slice_share_and_gets_the_rest_back(
    net: TradeNetwork, pair: tuple[Trader, Trader]
):
    """alice's 10–50 USD range (bond on 100,000 sats = 1,000); bob takes 20 USD (40,000 sats) and
    disputes; the solver refunds alice and slashes her: the slice's share is round(1000 × 20/50) = 400
    (200 to the node, 200 to bob), the range ends and alice gets the other 600 back."""
    alice, bob = pair
    before = net.balances_msat()
    a = alice.next_trade_index()
    order = SmallOrder(
        kind=Kind.SELL, status=Status.PENDING, amount=0, fiat_code="USD", min_amount=10, max_amount=50, fiat_amount=0,
        payment_method="bank", premium=0,
    )  # fmt: skip
    await alice.send(Action.NEW_ORDER, key=a, trade_index=a, payload=OrderPayload(order))
    ask = await alice.expect("pay-bond-invoice", key=a)
    order_id = ask.body["id"]
    assert bond_invoice_of(ask)[0]["amount"] == BOND
    maker_bond = asyncio.create_task(alice.wallet.pay(bond_invoice_of(ask)[1]))
    await alice.expect("new-order", key=a)

    slice_sats, slice_fee = 40_000, 120  # 20 USD at 50,000 USD/BTC; round(0.006 × 40,000 / 2)
    b = bob.next_trade_index()
    payout = await bob.wallet.invoice(slice_sats - slice_fee, "payout")
    await bob.send(
        Action.TAKE_SELL, key=b, trade_index=b, order_id=order_id, payload=PaymentRequestPayload(None, payout, 20)
    )
    taker_bond = asyncio.create_task(bob.wallet.pay(bond_invoice_of(await bob.expect("pay-bond-invoice", key=b))[1]))
    pay = await alice.expect("pay-invoice", key=a)
    escrow = asyncio.create_task(alice.wallet.pay(pay.payload["payment_request"][1]))
    await alice.expect("buyer-took-order", key=a)
    await bob.expect("hold-invoice-payment-accepted", key=b)
    await bob.send(Action.DISPUTE, key=b, order_id=order_id)
    dispute_id = (await bob.expect("dispute-initiated-by-you", key=b)).payload["dispute"][0]
    await alice.expect("dispute-initiated-by-peer", key=a)

    solver = await _solver_for(net, bob.conn, dispute_id)
    _, event = solver.build(
        Action.ADMIN_CANCEL, key=0, order_id=order_id, type=MessageType.DISPUTE,
        payload=BondResolutionPayload(BondResolution(slash_seller=True, slash_buyer=False)),
    )  # fmt: skip
    await solver.conn.send(event)
    await solver.expect("admin-canceled", key=0)
    slashed = await alice.expect("bond-slashed", key=a)
    assert (slashed.order["amount"], slashed.order["min_amount"], slashed.order["max_amount"]) == (400, 10, 50)
    await alice.expect("admin-canceled", key=a)
    await bob.expect("admin-canceled", key=b)

    net.node.run_job("orders.bonds.payout.process_bond_payouts")
    for person, key, share in ((bob, b, 200), (alice, a, 600)):
        ask = await person.expect("add-bond-invoice", key=key)
        assert (ask.body["id"], ask.payload["bond_payout_request"]["order"]["amount"]) == (order_id, share)
        invoice = await person.wallet.invoice(share, "bond share")
        await person.send(
            Action.ADD_BOND_INVOICE, key=key, order_id=order_id, payload=PaymentRequestPayload(None, invoice, None)
        )
        accepted = await person.expect("bond-invoice-accepted", key=key)
        completed = await person.expect("bond-payout-completed", key=key)
        assert (accepted.order["amount"], completed.order["amount"]) == (share, share)

    outcomes = await asyncio.gather(maker_bond, taker_bond, escrow)
    assert [o.status.name for o in outcomes] == ["SUCCEEDED", "FAILED", "FAILED"]  # escrow refunded, bob's bond too
    await asyncio.sleep(0.5)
    delta = {name: net.balances_msat()[name] - before[name] for name in before}
    # The node may pay an earlier test's dev fee meanwhile: node and dev fund together gain the 200.
    assert (delta["alice"], delta["bob"], delta["mostro"] + delta["devfund"]) == (-400 * MSAT, 200 * MSAT, 200 * MSAT)
    rows = net.node.query(
        "SELECT role, part, state, amount_sats, node_share_sats, payout_sats FROM orders_bond "
        "WHERE order_id = ? ORDER BY id",
        (order_id.replace("-", ""),),
    )
    assert rows == [
        ("maker", "", "slashed", BOND, None, None),
        ("taker", "", "released", BOND, None, None),
        ("maker", "slice", "slashed", 400, 200, 200),
        ("maker", "refund", "slashed", 600, 0, 600),
    ]
    ledger = net.node.run_job("orders.bonds.selectors.bond_ledger")
    assert ledger["problems"] == 0
    assert (
        sum(ledger[k] for k in ("unpaid", "held", "returned", "lost_at_lnd", "node", "paid", "owed")) == ledger["total"]
    )


def job_ahead(net: TradeNetwork, dotted: str, *, ahead_s: int) -> str:
    """One tick of a job with the clock `ahead_s` ahead (the node's scheduler waits in real time)."""
    module, func = dotted.rsplit(".", 1)
    return net.node.shell(
        "from datetime import timedelta; from django.utils import timezone; "
        f"from {module} import {func}; print({func}(now=timezone.now() + timedelta(seconds={ahead_s})))"
    )


async def test_buy_order_taker_bond_slashed_on_timeout_then_the_makers_bond_released_at_expiry(
    net: TradeNetwork, pair: tuple[Trader, Trader]
):
    """bob buys (maker bond); alice takes (taker bond) and never pays the escrow. The waiting
    timeout slashes alice's bond (she owed the escrow): 500 stay with the node, bob claims 500
    through add-bond-invoice, the order goes back on the book with bob's bond still locked;
    at the order's expiry bob's bond comes back whole."""
    alice, bob = pair
    before = net.balances_msat()
    m, order_id, maker_bond = await _post_bonded_order(bob, kind=Kind.BUY)

    t = alice.next_trade_index()
    await alice.send(Action.TAKE_BUY, key=t, trade_index=t, order_id=order_id)
    ask = await alice.expect("pay-bond-invoice", key=t)
    assert (ask.body["id"], bond_invoice_of(ask)[0]["amount"], bond_invoice_of(ask)[0]["kind"]) == (
        order_id,
        BOND,
        "buy",
    )
    taker_bond = asyncio.create_task(alice.wallet.pay(bond_invoice_of(ask)[1]))
    await alice.expect("pay-invoice", key=t)  # the take resumed: alice owes the escrow, and never pays it

    job_ahead(net, "orders.jobs.cancel_timed_out_trades", ahead_s=901)
    slashed = await alice.expect("bond-slashed", key=t)
    assert slashed.order["amount"] == BOND
    await alice.expect("canceled", key=t)
    await bob.expect("new-order", key=m)  # back on the book, bob's bond still locked
    rows = net.node.query(
        "SELECT role, state FROM orders_bond WHERE order_id = ? ORDER BY id", (order_id.replace("-", ""),)
    )
    assert rows == [("maker", "locked"), ("taker", "pending-payout")]

    net.node.run_job("orders.bonds.payout.process_bond_payouts")
    ask = await bob.expect("add-bond-invoice", key=m)
    assert ask.payload["bond_payout_request"]["order"]["amount"] == BOND // 2
    invoice = await bob.wallet.invoice(BOND // 2, "bond share")
    await bob.send(
        Action.ADD_BOND_INVOICE, key=m, order_id=order_id, payload=PaymentRequestPayload(None, invoice, None)
    )
    await bob.expect("bond-invoice-accepted", key=m)
    await bob.expect("bond-payout-completed", key=m)

    job_ahead(net, "orders.jobs.expire_pending_orders", ahead_s=3 * 86_400)
    outcomes = await asyncio.gather(maker_bond, taker_bond)
    assert [o.status.name for o in outcomes] == ["FAILED", "SUCCEEDED"]  # released at expiry; slashed
    await asyncio.sleep(0.5)
    delta = {name: net.balances_msat()[name] - before[name] for name in before}
    assert (delta["alice"], delta["bob"], delta["mostro"] + delta["devfund"]) == (
        -BOND * MSAT,
        BOND // 2 * MSAT,
        BOND // 2 * MSAT,
    )
    rows = net.node.query(
        "SELECT role, state, slashed_reason, node_share_sats, payout_sats FROM orders_bond WHERE order_id = ? "
        "ORDER BY id",
        (order_id.replace("-", ""),),
    )
    assert rows == [("maker", "released", "", None, None), ("taker", "slashed", "timeout", BOND // 2, BOND // 2)]
    [(status,)] = net.node.query("SELECT status FROM orders_order WHERE id = ?", (order_id.replace("-", ""),))
    assert status == "expired"
