"""LND's process dies (issue 15, item 3): the whole `manage.py simnet` process is stopped with
trades in flight at every step and started again on its state directory after the outage.

simnet saves its network to `simnet-state.json` (lightning/simnet/persistence.py) and resumes it
on the same ports, certificates and macaroons, as a restarted LND does from its database: a held
escrow HTLC is still ACCEPTED (the seller's payment still IN_FLIGHT), a payout in flight is still
in flight. The outage lasts `MOSTRO_CHAOS_OUTAGE_S` (default 5 s, 60 for the issue's minute).
Once with SIGKILL (the state of the last 0.25 s may be lost: the test waits for the save first),
once with SIGTERM (saved at shutdown).

Trades in flight when simnet dies: `held` (active, escrow ACCEPTED), `accepted` (the seller's
HTLC accepted just before the kill, the order possibly still `waiting-payment`), `releasing`
(fiat sent; the release is sent during the outage and retried until LND answers), `paying`
(released, the buyer's payout held IN_FLIGHT at LND by `stick_next_payment`). During the outage
a new order is answered, and the waiting-payment timeout, run with the clock past it, refunds
nothing. After the restart every trade completes; the ledger finds nothing paid twice and every
sat accounted for. A last test stops the node too, so that only LND knows an escrow is held
when the timeout runs.
"""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

from lightning.bolt11 import decode_invoice
from lightning.grpc import lightning_pb2 as ln
from lightning.simnet.persistence import STATE_FILE
from nostrbridge.protocol.enums import Action
from tests.chaos.support import (
    OUTAGE_S,
    PAST_GRACE_S,
    SQLITE_PASS_MARKS,
    Book,
    Recovery,
    SellTrade,
    checked,
    close_all,
    network_fixture,
    node_log_errors,
    order_status,
    run_job,
    start_node,
    trading_pair,
    wait_for,
)
from tests.e2e.trade_clients import TradeNetwork

pytestmark = SQLITE_PASS_MARKS

# The inbox backoff after LND errors; a payout that met LND restarting waits for the retry job's minute.
RECOVERY_TIMEOUT_S = 120.0
PAST_TIMEOUT_S = 900 + 60  # MOSTRO_EXPIRATION_SECONDS' default, and a minute

net = network_fixture("chaos-simnet-restart", LND_PAYMENT_ATTEMPTS="3", LND_PAYMENT_RETRIES_INTERVAL="1")


def payment_hash(bolt11: str) -> bytes:
    return bytes.fromhex(decode_invoice(bolt11).payment_hash_hex)


def saved_payment_status(net: TradeNetwork, node: str, hash_hex: str) -> int | None:
    """The status of `node`'s payment `hash_hex` in simnet's state file (None: not saved yet)."""
    try:
        state = json.loads((net.simnet.directory / STATE_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return next((p["status"] for p in state["nodes"][node]["payments"] if p["payment_hash"] == hash_hex), None)


def dev_fees_unpaid(net: TradeNetwork) -> int:
    [(unpaid,)] = net.node.query(
        "SELECT COUNT(*) FROM orders_order o WHERE o.status = 'success' AND o.dev_fee_sats > 0 AND NOT EXISTS "
        "(SELECT 1 FROM devfee_devfeepayment d WHERE d.order_id = o.id AND d.status = 'paid')"
    )
    return unpaid


async def escrow_of(trade: SellTrade) -> str:
    """Taken, and the seller pays the escrow; returns the hold invoice."""
    await trade.publish()
    await trade.send_take()
    hold = await trade.expect_taken()
    trade.pay(hold)
    return hold


def track_escrow(trade: SellTrade, hold: str) -> None:
    """The seller's app follows its payment again (its SendPaymentV2 stream died with LND)."""
    client = trade.seller.wallet.client
    trade.escrow = asyncio.create_task(
        asyncio.to_thread(client.track_payment, payment_hash=payment_hash(hold), wait_seconds=RECOVERY_TIMEOUT_S)
    )


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
async def test_simnet_process_down_with_trades_at_every_step_then_back(net: TradeNetwork, book: Book, sig: int):
    name = signal.Signals(sig).name.lower()
    seller, buyer, conns = await trading_pair(net, book, f"simnet-{name}")
    # The node's own dev-fee job must not take the stuck payment below: nothing owed first.
    await asyncio.to_thread(run_job, net, "orders.jobs.pay_pending_dev_fees", ahead_s=PAST_GRACE_S)
    await asyncio.to_thread(wait_for, lambda: dev_fees_unpaid(net) == 0, timeout_s=RECOVERY_TIMEOUT_S, what="fees")
    held, releasing, paying, accepted = (
        SellTrade(seller, buyer, amount) for amount in (30_000, 31_000, 32_000, 33_000)
    )
    holds = {}
    for trade in (held, releasing, paying):
        holds[trade.amount] = await escrow_of(trade)
        await trade.expect_active()
    await releasing.fiat_sent()
    await paying.fiat_sent()
    net.simnet.control.stick_next_payment("mostro")
    await paying.send_release()
    await paying.expect_released()
    payout_hex = payment_hash(paying.invoice).hex()
    in_flight = ln.Payment.PaymentStatus.IN_FLIGHT
    holds[accepted.amount] = await escrow_of(accepted)
    await asyncio.to_thread(
        wait_for, lambda: saved_payment_status(net, "mostro", payout_hex) == in_flight, what="the payout saved"
    )
    await asyncio.to_thread(
        wait_for,
        lambda: saved_payment_status(net, "alice", payment_hash(holds[accepted.amount]).hex()) == in_flight,
        what="the last escrow's HTLC saved",
    )

    # SIGTERM: a clean exit after the state is saved.
    assert await asyncio.to_thread(net.simnet.kill, sig) == (-sig if sig == signal.SIGKILL else 0)
    await releasing.send_release()  # needs LND: retried, backing off, until LND answers
    bystander = SellTrade(seller, buyer, 34_000)
    await bystander.publish()  # needs no LND: answered during the outage
    assert await asyncio.to_thread(run_job, net, "orders.jobs.cancel_timed_out_trades", ahead_s=PAST_TIMEOUT_S) == 0
    statuses = {trade.amount: order_status(net, trade.order_id) for trade in (held, releasing, paying, accepted)}
    assert statuses[accepted.amount] in ("waiting-payment", "active")  # the node may have seen the HTLC
    assert {k: v for k, v in statuses.items() if k != accepted.amount} == {
        30_000: "active",
        31_000: "fiat-sent",
        32_000: "settled-hold-invoice",
    }  # the release waits for LND: nothing decided yet
    await asyncio.sleep(OUTAGE_S)
    await asyncio.to_thread(net.simnet.start_again)
    recovery = Recovery()

    for trade in (held, releasing, paying, accepted):
        track_escrow(trade, holds[trade.amount])
    assert net.simnet.control.resolve_payment("mostro", payout_hex, "deliver")["status"] == 2  # SUCCEEDED
    assert await asyncio.to_thread(run_job, net, "orders.jobs.reconcile_inflight_payouts", ahead_s=PAST_GRACE_S) == 0
    await paying.expect_paid(timeout_s=RECOVERY_TIMEOUT_S)
    await releasing.expect_released(timeout_s=RECOVERY_TIMEOUT_S)
    await releasing.expect_paid(timeout_s=RECOVERY_TIMEOUT_S)
    await accepted.expect_active(timeout_s=RECOVERY_TIMEOUT_S)
    for trade in (held, accepted):
        await trade.complete()
    recovery.done()
    assert order_status(net, accepted.order_id) == "success"
    await bystander.seller.send(Action.CANCEL, key=bystander.s, order_id=bystander.order_id)
    await bystander.seller.expect("canceled", key=bystander.s, timeout_s=30)
    book.trades += [trade.record("success") for trade in (held, releasing, paying, accepted)]
    await close_all(conns)
    await checked(book)


async def test_the_timeout_does_not_refund_an_escrow_only_lnd_knows_is_held(net: TradeNetwork, book: Book):
    """The node is stopped when the seller pays (only LND knows the HTLC is held), then LND dies
    too (SIGKILL). The waiting-payment timeout runs with its clock past the deadline: it cannot
    ask LND, so it refunds nothing and the order stays `waiting-payment`. LND comes back with
    the HTLC still held, then the node (it does not boot without LND): the trade completes."""
    seller, buyer, conns = await trading_pair(net, book, "simnet-timeout")
    trade = SellTrade(seller, buyer, 35_000)
    await trade.publish()
    await trade.send_take()
    hold = await trade.expect_taken()
    await asyncio.to_thread(net.node.stop)
    trade.pay(hold)
    in_flight = ln.Payment.PaymentStatus.IN_FLIGHT
    await asyncio.to_thread(
        wait_for, lambda: saved_payment_status(net, "alice", payment_hash(hold).hex()) == in_flight, what="HTLC saved"
    )
    assert await asyncio.to_thread(net.simnet.kill, signal.SIGKILL) == -signal.SIGKILL
    assert await asyncio.to_thread(run_job, net, "orders.jobs.cancel_timed_out_trades", ahead_s=PAST_TIMEOUT_S) == 0
    assert order_status(net, trade.order_id) == "waiting-payment"
    await asyncio.sleep(OUTAGE_S)
    await asyncio.to_thread(net.simnet.start_again)
    recovery = Recovery()
    track_escrow(trade, hold)
    await asyncio.to_thread(start_node, net)
    await trade.expect_active(timeout_s=RECOVERY_TIMEOUT_S)
    await trade.complete()
    recovery.done()
    book.trades.append(trade.record("success"))
    await close_all(conns)
    await checked(book)


def test_no_tracebacks_in_any_node_log(net: TradeNetwork):
    assert node_log_errors(net) == []


def test_simnet_resumed_each_time(net: TradeNetwork):
    log = (net.simnet.directory / "simnet.log").read_text()
    assert log.count("READY") == 4
    assert log.count(f"resumed={net.simnet.directory / STATE_FILE}") == 3
