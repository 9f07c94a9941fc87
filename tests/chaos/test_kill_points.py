"""kill -9 of the node at each step of a trade, restart on the same database, ledger check.

Every kill is deterministic: the node runs with `MOSTRO_FAULT_KILL_AT=<point>`
(`mostro_site/config/faults.py`) and SIGKILLs its whole process group (web, bridge, invoice
watcher, job-cluster workers) the first time it gets there. The test then restarts it without
the variable and checks that the trade ends as it must, that each client got the replies the
protocol promises exactly once, and that every satoshi on every simnet node is accounted for
(tests/ledger.py, over every trade of this module).
"""

from __future__ import annotations

import asyncio
import urllib.error

import pytest

from nostrbridge.protocol.enums import Action
from tests.chaos.support import (
    PAST_GRACE_S,
    SQLITE_PASS_MARKS,
    Book,
    Recovery,
    SellTrade,
    api_post,
    await_kill,
    checked,
    close_all,
    network_fixture,
    node_log_errors,
    operator_api_key,
    order_status,
    restart_node,
    run_job,
    start_node,
    trading_pair,
)
from tests.e2e.trade_clients import TradeNetwork

pytestmark = SQLITE_PASS_MARKS

# Clock play for the payout and dev-fee recoveries (tests/chaos/support.py): past the payout
# claim's grace (30 s) and the unseen dev-fee payment's (300 s).


net = network_fixture("chaos-kill", LND_PAYMENT_ATTEMPTS="3", LND_PAYMENT_RETRIES_INTERVAL="1")


async def test_kill_after_the_take_committed(net: TradeNetwork, book: Book):
    """The take's transaction (status, hold invoice, replies in the outbox) committed; nothing
    published. After the restart the outbox reaches both parties, once."""
    await asyncio.to_thread(restart_node, net, kill_at="take-committed")
    seller, buyer, conns = await trading_pair(net, book, "take")
    trade = SellTrade(seller, buyer, 20_000)
    await trade.publish()
    await trade.send_take()
    await asyncio.to_thread(await_kill, net)
    assert order_status(net, trade.order_id) == "waiting-payment"
    recovery = Recovery()
    await asyncio.to_thread(start_node, net)
    await trade.pay_escrow()
    await trade.expect_active()
    await trade.complete()
    recovery.done()
    book.trades.append(trade.record("success"))
    await close_all(conns)
    await checked(book)


async def test_kill_after_the_hold_invoice_was_accepted(net: TradeNetwork, book: Book):
    """LND reported the seller's HTLC, the order is not `active` yet. The restarted watcher
    resubscribes, LND replays ACCEPTED, the order becomes active."""
    await asyncio.to_thread(restart_node, net, kill_at="hold-accepted")
    seller, buyer, conns = await trading_pair(net, book, "held")
    trade = SellTrade(seller, buyer, 21_000)
    await trade.publish()
    await trade.send_take()
    await trade.pay_escrow()
    await asyncio.to_thread(await_kill, net)
    assert order_status(net, trade.order_id) == "waiting-payment"
    recovery = Recovery()
    await asyncio.to_thread(start_node, net)
    await trade.expect_active()
    await trade.complete()
    recovery.done()
    book.trades.append(trade.record("success"))
    await close_all(conns)
    await checked(book)


async def test_kill_between_settling_the_escrow_and_the_payout(net: TradeNetwork, book: Book):
    """The release decided first (`settled-hold-invoice`, its replies and the payout task in one
    transaction, docs/SECURITY.md §Money invariants), then settled at LND; the node dies before
    the payout starts. The restarted node publishes the queued replies and its job cluster pays
    the buyer once."""
    await asyncio.to_thread(restart_node, net, kill_at="release-settled")
    seller, buyer, conns = await trading_pair(net, book, "settle")
    trade = SellTrade(seller, buyer, 22_000)
    await trade.to_active()
    await trade.fiat_sent()
    await trade.send_release()
    await asyncio.to_thread(await_kill, net)
    assert order_status(net, trade.order_id) == "settled-hold-invoice"
    # The release's inbound row was finished in the decision's transaction: nothing to re-run.
    assert net.node.query("SELECT action, status FROM nostrbridge_inboundevent WHERE status = 'processing'") == []
    recovery = Recovery()
    await asyncio.to_thread(start_node, net)
    await trade.expect_released()
    await trade.expect_paid()
    recovery.done()
    book.trades.append(trade.record("success"))
    await close_all(conns)
    await checked(book)


async def test_kill_with_the_payout_claimed_but_not_sent(net: TradeNetwork, book: Book):
    """The payout's hash is committed, nothing reached LND. The reconciliation asks LND, which
    never saw it: the attempt counts as failed (the buyer is told), the retry pays it once."""
    await asyncio.to_thread(restart_node, net, kill_at="payout-claimed")
    seller, buyer, conns = await trading_pair(net, book, "claimed")
    trade = SellTrade(seller, buyer, 23_000)
    await trade.to_active()
    await trade.fiat_sent()
    await trade.send_release()
    await asyncio.to_thread(await_kill, net)
    [(claimed,)] = net.node.query("SELECT payout_payment_hash IS NOT NULL FROM orders_order WHERE lower(id) = ?",
                                  (trade.order_id.replace("-", ""),))  # fmt: skip
    assert (order_status(net, trade.order_id), claimed) == ("settled-hold-invoice", 1)
    assert [p for p in await net.wallet("mostro").payments() if p.payment_request == trade.invoice] == []
    recovery = Recovery()
    await asyncio.to_thread(start_node, net)
    await trade.expect_released()
    assert await asyncio.to_thread(run_job, net, "orders.jobs.reconcile_inflight_payouts", ahead_s=PAST_GRACE_S) == 0
    await buyer.expect("payment-failed", key=trade.b, timeout_s=30)
    assert await asyncio.to_thread(run_job, net, "orders.jobs.retry_failed_payouts", ahead_s=PAST_GRACE_S) == 0
    await trade.expect_paid()
    recovery.done()
    book.trades.append(trade.record("success"))
    await close_all(conns)
    await checked(book)


async def test_kill_with_the_payout_sent_but_not_recorded(net: TradeNetwork, book: Book):
    """LND paid the buyer, the node died before recording it. The reconciliation asks LND:
    SUCCEEDED, the trade completes without a second payment."""
    await asyncio.to_thread(restart_node, net, kill_at="payout-sent")
    seller, buyer, conns = await trading_pair(net, book, "sent")
    trade = SellTrade(seller, buyer, 24_000)
    await trade.to_active()
    await trade.fiat_sent()
    await trade.send_release()
    await asyncio.to_thread(await_kill, net)
    assert order_status(net, trade.order_id) == "settled-hold-invoice"
    recovery = Recovery()
    await asyncio.to_thread(start_node, net)
    await trade.expect_released()
    assert await asyncio.to_thread(run_job, net, "orders.jobs.reconcile_inflight_payouts", ahead_s=PAST_GRACE_S) == 0
    await trade.expect_paid()
    recovery.done()
    book.trades.append(trade.record("success"))
    await close_all(conns)
    await checked(book)


def _owed_dev_fees(net: TradeNetwork) -> int:
    [(owed,)] = net.node.query(
        "SELECT COUNT(*) FROM orders_order o WHERE o.status = 'success' AND o.dev_fee_sats > 0 AND NOT EXISTS "
        "(SELECT 1 FROM devfee_devfeepayment d WHERE d.order_id = o.id AND d.status != 'owed')"
    )
    return owed


@pytest.mark.parametrize("point", ["devfee-hash-stored", "devfee-sent"])
async def test_kill_while_the_dev_fee_is_being_paid(net: TradeNetwork, book: Book, point: str):
    """The job paying the dev fee dies after storing the payment hash (nothing sent) or after
    LND paid it (not recorded). The next run asks LND and pays the fund exactly once."""
    seller, buyer, conns = await trading_pair(net, book, point)
    for attempt in range(3):  # the node's own minute job may pay the new fee first
        if net.node.proc.poll() is not None:
            await asyncio.to_thread(start_node, net)
        trade = SellTrade(seller, buyer, 25_000 + attempt * 1_000)
        await trade.to_active()
        await trade.complete()
        book.trades.append(trade.record("success"))
        await asyncio.to_thread(net.node.stop)
        if _owed_dev_fees(net):
            break
    assert _owed_dev_fees(net) >= 1
    assert await asyncio.to_thread(run_job, net, "orders.jobs.pay_pending_dev_fees", kill_at=point) == -9
    [(inflight,)] = net.node.query("SELECT COUNT(*) FROM devfee_devfeepayment WHERE status = 'in-flight'")
    assert inflight == 1
    recovery = Recovery()
    await asyncio.to_thread(start_node, net)
    assert await asyncio.to_thread(run_job, net, "orders.jobs.pay_pending_dev_fees", ahead_s=PAST_GRACE_S) == 0
    recovery.done()
    assert net.node.query("SELECT status, COUNT(*) FROM devfee_devfeepayment GROUP BY status") == [
        ("paid", len([t for t in book.trades if t.outcome == "success"]))
    ]
    await close_all(conns)
    await checked(book)


# -- a solver's settle and cancel, through the REST API the console uses -----------------------------
@pytest.fixture(scope="module")
def api_key(net: TradeNetwork) -> str:
    return operator_api_key(net)


@pytest.mark.parametrize(
    ("point", "verb", "outcome"),
    [
        ("solver-settled", "settle", "success"),
        ("solver-canceled", "cancel", "refunded"),
    ],
)
async def test_kill_in_the_middle_of_a_solver_resolution(
    net: TradeNetwork, book: Book, api_key: str, point: str, verb: str, outcome: str
):
    """The solver's decision commits first (order, dispute, replies, payout task or refund row),
    then LND settles (cancels) and the node dies before answering. The restarted node publishes
    the queued replies and the money goes where the solver said, once; a second attempt by the
    solver is refused and moves nothing."""
    await asyncio.to_thread(restart_node, net, kill_at=point)
    seller, buyer, conns = await trading_pair(net, book, verb)
    trade = SellTrade(seller, buyer, 30_000)
    await trade.to_active()
    await buyer.send(Action.DISPUTE, key=trade.b, order_id=trade.order_id)
    await buyer.expect("dispute-initiated-by-you", key=trade.b, timeout_s=30)
    await seller.expect("dispute-initiated-by-peer", key=trade.s, timeout_s=30)
    [(dispute_id,)] = net.node.query(
        "SELECT lower(id) FROM disputes_dispute WHERE lower(order_id) = ?", (trade.order_id.replace("-", ""),)
    )
    dispute = f"{dispute_id[:8]}-{dispute_id[8:12]}-{dispute_id[12:16]}-{dispute_id[16:20]}-{dispute_id[20:]}"
    assert (await asyncio.to_thread(api_post, net, api_key, f"/disputes/{dispute}/take"))[0] == 200
    for person, key in ((seller, trade.s), (buyer, trade.b)):
        await person.expect("admin-took-dispute", key=key, timeout_s=30)
    with pytest.raises((ConnectionError, urllib.error.URLError, OSError)):
        await asyncio.to_thread(api_post, net, api_key, f"/disputes/{dispute}/{verb}")
    await asyncio.to_thread(await_kill, net)
    decided = "settled-hold-invoice" if verb == "settle" else "canceled-by-admin"
    assert order_status(net, trade.order_id) == decided
    recovery = Recovery()
    await asyncio.to_thread(start_node, net)
    status, body = await asyncio.to_thread(api_post, net, api_key, f"/disputes/{dispute}/{verb}")
    assert 400 <= status < 500, body  # already decided: refused, nothing moves twice
    action = "admin-settled" if verb == "settle" else "admin-canceled"
    for person, key in ((seller, trade.s), (buyer, trade.b)):
        await person.expect(action, key=key, timeout_s=30)
    if verb == "settle":
        await _expect_paid_after_solver_settle(net, trade)
    else:
        assert (await asyncio.wait_for(trade.escrow, 30)).status.value == "FAILED"
    recovery.done()
    book.trades.append(trade.record(outcome))
    await close_all(conns)
    await checked(book)


async def _expect_paid_after_solver_settle(net: TradeNetwork, trade: SellTrade) -> None:
    """The payout task was queued with the decision. Usually the restarted cluster runs it; but a
    worker of the killed process may have taken it from the queue (django-q2 hands it out again
    only after its 300 s retry), and perhaps claimed or even sent the payment, before the kill
    landed. Then the sweeps recover it, the clock moved past their grace: a claim LND never saw
    counts as failed and is retried, one it paid is recorded, an unclaimed order is an orphan."""
    try:
        await trade.expect_paid()
        return
    except TimeoutError:
        pass
    for job in ("orders.jobs.reconcile_inflight_payouts", "orders.jobs.retry_failed_payouts"):
        assert await asyncio.to_thread(run_job, net, job, ahead_s=PAST_GRACE_S) == 0
    await trade.expect_paid()


def test_no_tracebacks_in_any_node_log(net: TradeNetwork):
    assert node_log_errors(net) == []
