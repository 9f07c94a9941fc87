"""kill -9 of the node at each bond step (docs/PROTOCOL.md §Bonds), restart, ledger check.

Taker bonds on (`apply_to` take, 1,000 sats each here, half of a slashed one kept by the node).
The node SIGKILLs its whole process group the first time it reaches the armed point
(`mostro_site/config/faults.py`): when LND reports a bond's HTLC accepted, after LND canceled a
released bond's HTLC, after LND settled a slashed one, after LND paid a bond share. Each
decision is in the database before the Lightning call (docs/SECURITY.md §Money invariants), so
the restarted node only has to ask LND again. After each test `tests/ledger.py` checks every
trade and every bond of the module to the msat: each hold invoice in the state its row says,
each share paid once, every balance moved by exactly that.
"""

from __future__ import annotations

import asyncio
import urllib.error

import pytest

from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from tests.chaos.support import (
    SQLITE_PASS_MARKS,
    STEP_TIMEOUT_S,
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
    wait_for,
)
from tests.e2e.trade_clients import TradeNetwork

pytestmark = SQLITE_PASS_MARKS

BOND = 1_000  # max(round(0.01 × amount), 1,000) for every amount here
SHARE = BOND - BOND // 2  # the winner's share of a slashed bond: floor(1000 × 0.5) stays with the node


net = network_fixture("chaos-bond-kill", MOSTRO_ANTI_ABUSE_BOND_ENABLED="true", MOSTRO_ANTI_ABUSE_BOND_APPLY_TO="take")


@pytest.fixture(scope="module")
def api_key(net: TradeNetwork) -> str:
    return operator_api_key(net)


class BondedSellTrade(SellTrade):
    """A sell trade whose taker (the buyer) first locks a bond."""

    bond: asyncio.Task | None = None

    async def send_take(self) -> None:
        await super().send_take()
        ask = await self.buyer.expect("pay-bond-invoice", key=self.b, timeout_s=STEP_TIMEOUT_S)
        view, bolt11, _ = ask.payload["payment_request"]
        assert view["amount"] == BOND
        self.bond = asyncio.create_task(self.buyer.wallet.pay(bolt11))

    async def bond_outcome(self) -> str:
        assert self.bond is not None
        return (await asyncio.wait_for(self.bond, STEP_TIMEOUT_S)).status.name


def bond_row(net: TradeNetwork, order_id: str) -> tuple:
    [row] = net.node.query(
        "SELECT state, htlc_resolved_at IS NOT NULL, node_share_sats, payout_sats FROM orders_bond "
        "WHERE lower(order_id) = ?",
        (order_id.replace("-", ""),),
    )
    return row


async def test_kill_when_the_taker_bond_htlc_is_accepted(net: TradeNetwork, book: Book):
    """LND reported the bond's HTLC, the bond is not `locked` and the take did not resume. The
    restarted watcher resubscribes to the unpaid bond, LND replays ACCEPTED, the take resumes;
    the trade completes and the bond comes back whole."""
    await asyncio.to_thread(restart_node, net, kill_at="bond-accepted")
    seller, buyer, conns = await trading_pair(net, book, "bond-lock")
    trade = BondedSellTrade(seller, buyer, 20_000)
    await trade.publish()
    await trade.send_take()
    await asyncio.to_thread(await_kill, net)
    assert (order_status(net, trade.order_id), bond_row(net, trade.order_id)[0]) == ("waiting-taker-bond", "requested")
    recovery = Recovery()
    await asyncio.to_thread(start_node, net)
    await trade.pay_escrow()
    await trade.expect_active()
    await trade.complete()
    recovery.done()
    assert await trade.bond_outcome() == "FAILED"  # released: the HTLC canceled, the sats back
    # LND's answer is recorded right after the cancel, in the process that decided it: wait for it.
    await asyncio.to_thread(wait_for, lambda: bond_row(net, trade.order_id)[1] == 1, what="the release recorded")
    assert bond_row(net, trade.order_id) == ("released", 1, None, None)
    book.trades.append(trade.record("success"))
    await close_all(conns)
    await checked(book)


async def test_kill_after_lnd_canceled_a_released_bond(net: TradeNetwork, book: Book):
    """The trade succeeded, its bond's release was decided with it and LND canceled the HTLC;
    the node dies before recording LND's answer. The reconciliation cancels again (a no-op at
    LND) and records it; the buyer's replies arrive once."""
    await asyncio.to_thread(restart_node, net, kill_at="bond-released")
    seller, buyer, conns = await trading_pair(net, book, "bond-release")
    trade = BondedSellTrade(seller, buyer, 21_000)
    await trade.to_active()
    await trade.fiat_sent()
    await trade.send_release()
    await asyncio.to_thread(await_kill, net)
    # (The invoice watcher may record LND's CANCELED report before the kill lands: either way.)
    assert (order_status(net, trade.order_id), bond_row(net, trade.order_id)[0]) == ("success", "released")
    assert await trade.bond_outcome() == "FAILED"  # LND did cancel it before the kill
    recovery = Recovery()
    await asyncio.to_thread(start_node, net)
    assert await asyncio.to_thread(run_job, net, "orders.bonds.jobs.reconcile_bonds") == 0
    await trade.expect_released()
    await trade.expect_paid()
    recovery.done()
    assert bond_row(net, trade.order_id) == ("released", 1, None, None)
    book.trades.append(trade.record("success"))
    await close_all(conns)
    await checked(book)


async def _disputed(net: TradeNetwork, book: Book, key: str, name: str, amount: int):
    seller, buyer, conns = await trading_pair(net, book, name)
    trade = BondedSellTrade(seller, buyer, amount)
    await trade.to_active()
    await buyer.send(Action.DISPUTE, key=trade.b, order_id=trade.order_id)
    await buyer.expect("dispute-initiated-by-you", key=trade.b, timeout_s=STEP_TIMEOUT_S)
    await seller.expect("dispute-initiated-by-peer", key=trade.s, timeout_s=STEP_TIMEOUT_S)
    [(raw,)] = net.node.query(
        "SELECT lower(id) FROM disputes_dispute WHERE lower(order_id) = ?", (trade.order_id.replace("-", ""),)
    )
    dispute = f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
    assert (await asyncio.to_thread(api_post, net, key, f"/disputes/{dispute}/take"))[0] == 200
    for person, index in ((seller, trade.s), (buyer, trade.b)):
        await person.expect("admin-took-dispute", key=index, timeout_s=STEP_TIMEOUT_S)
    return trade, dispute, conns


def settle_slashing_the_buyer(net: TradeNetwork, key: str, dispute: str) -> tuple[int, dict]:
    return api_post(net, key, f"/disputes/{dispute}/settle", {"slash_buyer": True, "slash_seller": False})


async def _settled_and_slashed(trade: BondedSellTrade) -> None:
    """The replies of a settle slashing the buyer: bond-slashed, admin-settled, then the payout."""
    await trade.buyer.expect("bond-slashed", key=trade.b, timeout_s=STEP_TIMEOUT_S)
    for person, index in ((trade.seller, trade.s), (trade.buyer, trade.b)):
        await person.expect("admin-settled", key=index, timeout_s=STEP_TIMEOUT_S)
    await trade.expect_paid()


async def _claim_share(net: TradeNetwork, trade: BondedSellTrade) -> None:
    """The payout job asks the seller for its share; the seller's invoice is accepted."""
    assert await asyncio.to_thread(run_job, net, "orders.bonds.payout.process_bond_payouts") == 0
    ask = await trade.seller.expect("add-bond-invoice", key=trade.s, timeout_s=STEP_TIMEOUT_S)
    assert ask.payload["bond_payout_request"]["order"]["amount"] == SHARE
    invoice = await trade.seller.wallet.invoice(SHARE, "bond share")
    payload = PaymentRequestPayload(None, invoice, None)
    await trade.seller.send(Action.ADD_BOND_INVOICE, key=trade.s, order_id=trade.order_id, payload=payload)


async def test_kill_after_lnd_settled_a_slashed_bond(net: TradeNetwork, book: Book, api_key: str):
    """A solver settles the dispute and slashes the buyer: the decision (order, dispute, the
    slash and its split, the replies) commits, LND settles the bond's HTLC and the node dies
    before recording that or settling the escrow. After the restart the escrow is settled and
    the buyer paid, the reconciliation confirms the bond's settle, and the seller claims its
    share once."""
    await asyncio.to_thread(restart_node, net, kill_at="bond-slash-settled")
    trade, dispute, conns = await _disputed(net, book, api_key, "bond-slash", 22_000)
    with pytest.raises((ConnectionError, urllib.error.URLError, OSError)):
        await asyncio.to_thread(settle_slashing_the_buyer, net, api_key, dispute)
    await asyncio.to_thread(await_kill, net)
    assert bond_row(net, trade.order_id) == ("pending-payout", 0, BOND // 2, SHARE)
    assert await trade.bond_outcome() == "SUCCEEDED"  # LND settled it before the kill
    recovery = Recovery()
    await asyncio.to_thread(start_node, net)
    assert await asyncio.to_thread(run_job, net, "orders.bonds.jobs.reconcile_bonds") == 0
    await _settled_and_slashed(trade)
    assert bond_row(net, trade.order_id) == ("pending-payout", 1, BOND // 2, SHARE)
    await _claim_share(net, trade)
    await trade.seller.expect("bond-invoice-accepted", key=trade.s, timeout_s=STEP_TIMEOUT_S)
    await trade.seller.expect("bond-payout-completed", key=trade.s, timeout_s=STEP_TIMEOUT_S)
    recovery.done()
    assert bond_row(net, trade.order_id) == ("slashed", 1, BOND // 2, SHARE)
    book.trades.append(trade.record("success"))
    await close_all(conns)
    await checked(book)


async def test_kill_with_a_bond_share_paid_but_not_recorded(net: TradeNetwork, book: Book, api_key: str):
    """LND paid the seller's share of the buyer's slashed bond; the node died before recording
    it. The next payout sweep asks LND (the payment exists: tracked, SUCCEEDED) and records it:
    the seller is told once and paid once."""
    await asyncio.to_thread(restart_node, net)
    trade, dispute, conns = await _disputed(net, book, api_key, "bond-payout", 23_000)
    status, body = await asyncio.to_thread(settle_slashing_the_buyer, net, api_key, dispute)
    assert status == 200, body
    await _settled_and_slashed(trade)
    await asyncio.to_thread(restart_node, net, kill_at="bond-payout-sent")
    await _claim_share(net, trade)
    await asyncio.to_thread(await_kill, net)
    assert bond_row(net, trade.order_id) == ("pending-payout", 1, BOND // 2, SHARE)
    recovery = Recovery()
    await asyncio.to_thread(start_node, net)
    assert await asyncio.to_thread(run_job, net, "orders.bonds.payout.process_bond_payouts") == 0
    await trade.seller.expect("bond-invoice-accepted", key=trade.s, timeout_s=STEP_TIMEOUT_S)
    await trade.seller.expect("bond-payout-completed", key=trade.s, timeout_s=STEP_TIMEOUT_S)
    recovery.done()
    assert bond_row(net, trade.order_id) == ("slashed", 1, BOND // 2, SHARE)
    book.trades.append(trade.record("success"))
    await close_all(conns)
    await checked(book)


def test_no_tracebacks_in_any_node_log(net: TradeNetwork):
    assert node_log_errors(net) == []
