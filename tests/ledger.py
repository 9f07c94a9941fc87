"""The ledger check: after any run of trades, every satoshi and every reply is accounted for.

Used by `benchmarks/bench_trades.py` (after a thousand clean trades) and by the fault suite in
`tests/chaos/` (after every injected fault). It reads the node's database and every simnet
node's own records (ListPayments, ListInvoices, balances) and checks:

* every trade ends `success`, refunded (a cancel status, the hold invoice CANCELED at the
  node) or in an open dispute (status `dispute`, the escrow still ACCEPTED); nothing is left
  half-way (`settled-hold-invoice`, `fiat-sent`, …);
* a `success` has exactly one SUCCEEDED payment of amount − fee to its buyer invoice, and no
  other attempt at it; a refunded or disputed trade has none;
* the node's successful payments are exactly those payouts plus the dev fees marked paid;
* balances: seller −(amount + fee + routing) per completed trade and the escrow still locked
  per dispute, buyer +(amount − fee), dev fund + the dev fees, the node + 2 × fee − payout and
  dev-fee routing − dev fees; the whole network falls by exactly the routing fees paid;
* bonds (docs/PROTOCOL.md §Bonds), every one in the database: its hold invoice at the node in
  the state its row says (locked: ACCEPTED; released or canceled at LND: CANCELED, a release
  confirmed; slashed: SETTLED for the whole bond), a range bond's parts adding up to it, every
  paid share paid exactly once for exactly its amount and no unrecorded payment; the payer is
  down the bond while it is held or settled, the node up every settled bond less the shares it
  paid, each recipient up its share (`bonds_check`);
* `replies_check`: every trader read the replies its flow expects (each `Trader.expect`
  consumes one), nothing is left unread, and no reply came twice;
* `requests_check`: every request answered, and once (no reply for its request_id twice).

A discrepancy is one failed check, as a sentence; the target is none.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lightning.grpc import lightning_pb2 as ln

if TYPE_CHECKING:
    from tests.e2e.trade_clients import TradeNetwork, Trader

MSAT = 1_000
SUCCESS = "success"
REFUNDED_STATUSES = frozenset({"canceled", "cooperatively-canceled", "canceled-by-admin"})
DISPUTED = "dispute"
SNAPSHOT_ATTEMPTS = 5  # the ledger check's tries for a snapshot no dev-fee sweep ran through
SELLER, BUYER, NODE, FUND = "alice", "bob", "mostro", "devfund"


def no_routing_fee(amount_msat: int) -> int:
    return 0


@dataclass(frozen=True)
class TradeRecord:
    """One trade to check: its order and the invoice the buyer gave for its payout.

    `amount_sats` / `fee_sats` (optional): what the driver expected the node to fix; the
    database must agree. `outcome` (optional): the end the scenario expects — success,
    refunded or disputed.
    """

    order_id: str
    buyer_invoice: str | None = None
    amount_sats: int | None = None
    fee_sats: int | None = None
    outcome: str | None = None


@dataclass
class LedgerReport:
    problems: list[str] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)  # success / refunded / disputed
    figures: dict = field(default_factory=dict)


@dataclass
class _Sums:
    seller_msat: int = 0
    buyer_msat: int = 0
    kept_msat: int = 0
    payout_routing_msat: int = 0
    payouts: set[str] = field(default_factory=set)  # buyer invoices and bond shares paid
    bond_msat: Counter = field(default_factory=Counter)  # simnet node → what bonds moved


async def wait_dev_fees_settled(net: TradeNetwork, timeout_s: float = 10.0) -> None:
    """Dev fees the node may be paying right now: let them land before the snapshot."""
    for _ in range(int(timeout_s / 0.2)):
        busy = net.node.query("SELECT COUNT(*) FROM devfee_devfeepayment WHERE status IN ('claimed', 'in-flight')")
        if busy == [(0,)]:
            return
        await asyncio.sleep(0.2)


async def ledger_check(
    net: TradeNetwork,
    trades: Iterable[TradeRecord],
    before: dict[str, int],
    *,
    route_fee_msat: Callable[[int], int] = no_routing_fee,
) -> LedgerReport:
    """Check `trades` against the node's database and the simnet nodes (see the module docstring).

    `before`: every simnet node's balance (msat) before the first of these trades, with no
    other money moving since; `route_fee_msat`: simnet's routing fee rule for a payment.
    """
    trades = list(trades)
    report = LedgerReport()
    mostro, seller, buyer = (net.wallet(name, threaded=False) for name in (NODE, SELLER, BUYER))
    # The dev-fee sweep (every 60 s) may start while the nodes are read: a snapshot counts only
    # if no dev-fee row changed from before its first read to after its last, else it is taken
    # again. (A sweep that paid between the balances and the rows' read showed rows marked paid
    # with no payment at the node: a discrepancy of the check, not of the node.)
    for _ in range(SNAPSHOT_ATTEMPTS):
        await wait_dev_fees_settled(net)
        dev_fees_before = _dev_fee_rows(net)
        after = net.balances_msat()
        node_payments = await mostro.payments()
        seller_payments = await seller.payments()
        buyer_payments = await buyer.payments()
        buyer_invoices = {inv.payment_request: inv for inv in await buyer.invoices()}
        node_invoices = {inv.r_hash.hex(): inv for inv in await mostro.invoices()}
        dev_fees = _dev_fee_rows(net)
        if dev_fees == dev_fees_before:
            break
    rows = {
        str(row[0]).replace("-", "").lower(): row[1:]  # SQLite keeps the hex, PostgreSQL a uuid
        for row in net.node.query(
            "SELECT id, status, amount_sats, fee_sats, hold_invoice_hash, buyer_invoice FROM orders_order"
        )
    }
    by_request: dict[str, list] = defaultdict(list)
    for payment in node_payments:
        by_request[payment.payment_request].append(payment)
    sums = _Sums()
    for trade in trades:
        row = rows.get(trade.order_id.replace("-", "").lower())
        if row is None:
            report.problems.append(f"order {trade.order_id}: not in the database")
            continue
        _check_trade(trade, row, by_request, buyer_invoices, node_invoices, sums, report, route_fee_msat)
    bonds_check(net, by_request, node_invoices, sums, report)
    _check_node_payments(node_payments, dev_fees, sums, report)
    _check_balances(net, before, after, node_payments, [*seller_payments, *buyer_payments], sums, report)
    report.figures.update(trades=len(trades), outcomes=dict(report.outcomes), problems=len(report.problems))
    return report


def _check_trade(trade, row, by_request, buyer_invoices, node_invoices, sums: _Sums, report, route_fee_msat) -> None:
    status, amount, fee, hold_hash, stored_invoice = row
    problems = report.problems
    label = f"order {trade.order_id}"
    if (trade.amount_sats, trade.fee_sats) != (None, None) and (amount, fee) != (trade.amount_sats, trade.fee_sats):
        problems.append(f"{label}: {amount}/{fee} sats in the database, expected {trade.amount_sats}/{trade.fee_sats}")
    outcome = "success" if status == SUCCESS else "refunded" if status in REFUNDED_STATUSES else status
    if outcome == DISPUTED:
        outcome = "disputed"
    report.outcomes[outcome] += 1
    if outcome not in ("success", "refunded", "disputed"):
        problems.append(f"{label}: ended `{status}`, not success, refunded or an open dispute")
        return
    if trade.outcome is not None and outcome != trade.outcome:
        problems.append(f"{label}: {outcome}, expected {trade.outcome}")
    invoice = trade.buyer_invoice or stored_invoice
    payouts = by_request.get(invoice, []) if invoice else []
    escrow = node_invoices.get((hold_hash or "").lower())
    escrow_state = ln.Invoice.InvoiceState.Name(escrow.state) if escrow is not None else None
    escrow_msat = (amount + fee) * MSAT
    if outcome != "success":
        expected_state = "CANCELED" if outcome == "refunded" else "ACCEPTED"
        if payouts:
            problems.append(f"{label}: {outcome} but paid {[(p.status, p.value_sat) for p in payouts]}")
        if escrow is not None and escrow_state != expected_state:
            problems.append(f"{label}: {outcome} with its hold invoice {escrow_state}, expected {expected_state}")
        if outcome == "disputed":
            if escrow is None:
                problems.append(f"{label}: disputed without a hold invoice at the node")
            sums.seller_msat += escrow_msat + route_fee_msat(escrow_msat)
        return
    succeeded = [p for p in payouts if p.status == ln.Payment.PaymentStatus.SUCCEEDED]
    if len(succeeded) != 1 or len(payouts) != 1 or succeeded[0].value_sat != amount - fee:
        problems.append(
            f"{label}: payouts {[(p.status, p.value_sat) for p in payouts]}, expected one of {amount - fee}"
        )
    else:
        sums.payout_routing_msat += succeeded[0].fee_msat
        sums.payouts.add(invoice)
        expected_fee = route_fee_msat((amount - fee) * MSAT)
        if succeeded[0].fee_msat != expected_fee:
            problems.append(f"{label}: payout routing fee {succeeded[0].fee_msat} msat, expected {expected_fee}")
    if escrow_state != "SETTLED":
        problems.append(f"{label}: success with its hold invoice {escrow_state}")
    received = buyer_invoices.get(invoice)
    if (
        received is None
        or ln.Invoice.InvoiceState.Name(received.state) != "SETTLED"
        or received.amt_paid_sat != (amount - fee)
    ):
        problems.append(f"{label}: buyer invoice {received and ln.Invoice.InvoiceState.Name(received.state)}")
    sums.seller_msat += escrow_msat + route_fee_msat(escrow_msat)
    sums.buyer_msat += (amount - fee) * MSAT
    sums.kept_msat += 2 * fee * MSAT


def _dev_fee_rows(net: TradeNetwork) -> list[tuple]:
    """Every dev-fee row's (id, status, amount_sats, payment_hash), in id order."""
    return net.node.query("SELECT id, status, amount_sats, payment_hash FROM devfee_devfeepayment ORDER BY id")


def _check_node_payments(node_payments, dev_fees: list[tuple], sums: _Sums, report: LedgerReport) -> None:
    """The node pays only buyers (once each) and the dev fund (once per paid row)."""
    succeeded = ln.Payment.PaymentStatus.SUCCEEDED
    strays = [p for p in node_payments if p.status == succeeded and p.payment_request not in sums.payouts]
    dev_rows = [(amount_sats, payment_hash) for _, status, amount_sats, payment_hash in dev_fees if status == "paid"]
    dev_hashes = Counter(h for _, h in dev_rows)
    dev_routing_msat = 0
    for payment in strays:
        if dev_hashes[payment.payment_hash] == 1:
            dev_routing_msat += payment.fee_msat
        else:
            report.problems.append(f"unexpected node payment {payment.payment_hash[:16]} of {payment.value_sat} sats")
    if len(strays) != len(dev_rows):
        report.problems.append(f"{len(dev_rows)} dev fees marked paid, {len(strays)} dev-fee payments at the node")
    report.figures["dev fees paid (sats)"] = sum(a for a, _ in dev_rows)
    report.figures["dev-fee routing (msat)"] = dev_routing_msat


def _check_balances(net, before, after, node_payments, trader_payments, sums: _Sums, report: LedgerReport) -> None:
    dev_msat = report.figures["dev fees paid (sats)"] * MSAT
    delta = {name: after[name] - before[name] for name in after}
    expected = {
        SELLER: -sums.seller_msat + sums.bond_msat[SELLER],
        BUYER: sums.buyer_msat + sums.bond_msat[BUYER],
        FUND: dev_msat,
        NODE: sums.kept_msat
        - sums.payout_routing_msat
        - dev_msat
        - report.figures["dev-fee routing (msat)"]
        + sums.bond_msat[NODE],
    }
    for name, value in expected.items():
        if name in delta and delta[name] != value:
            report.problems.append(f"{name}: balance moved {delta[name]} msat, expected {value}")
    succeeded = ln.Payment.PaymentStatus.SUCCEEDED
    in_flight = ln.Payment.PaymentStatus.IN_FLIGHT
    routing = sum(p.fee_msat for p in (*node_payments, *trader_payments) if p.status == succeeded)
    locked = sum(p.value_msat + p.fee_msat for p in trader_payments if p.status == in_flight)
    if sum(delta.values()) + locked != -routing:
        report.problems.append(
            f"network total moved {sum(delta.values())} msat with {locked} locked in escrows and bonds, "
            f"routing fees {routing}"
        )
    report.figures.update(delta=delta, routing_msat=routing, locked_msat=locked)


BOND_LND_STATE = {
    "locked": "ACCEPTED",
    "released": "CANCELED",
    "lnd-canceled": "CANCELED",
    "pending-payout": "SETTLED",
    "slashed": "SETTLED",
    "forfeited": "SETTLED",
    "failed": "SETTLED",
}


def bonds_check(net: TradeNetwork, by_request, node_invoices, sums: _Sums, report: LedgerReport) -> None:
    """Every bond to the msat (see the module docstring); adds the bonds' moves to `sums`."""
    rows = net.node.query(
        "SELECT b.id, b.parent_bond_id, b.role, b.state, b.amount_sats, lower(b.hash), b.node_share_sats, "
        "b.payout_sats, b.payout_invoice, b.payout_recipient, b.htlc_resolved_at IS NOT NULL, o.kind, "
        "o.seller_pubkey, o.buyer_pubkey FROM orders_bond b JOIN orders_order o ON o.id = b.order_id ORDER BY b.id"
    )
    succeeded = ln.Payment.PaymentStatus.SUCCEEDED
    parts: Counter = Counter()
    for bond_id, parent, role, state, amount, payment_hash, node_share, payout, invoice, recipient, *rest in rows:
        resolved, kind, seller_key, buyer_key = rest
        label = f"bond {bond_id} ({state})"
        payer = SELLER if (kind == "sell") == (role == "maker") else BUYER
        if parent is None:
            held = node_invoices.get(payment_hash or "")
            held_state = ln.Invoice.InvoiceState.Name(held.state) if held is not None else None
            if state in BOND_LND_STATE and held_state != BOND_LND_STATE[state]:
                report.problems.append(f"{label}: its hold invoice is {held_state}, expected {BOND_LND_STATE[state]}")
            if state in ("released", "pending-payout", "slashed", "forfeited", "failed") and not resolved:
                report.problems.append(f"{label}: LND's {BOND_LND_STATE[state].lower()} never confirmed")
            if held_state in ("ACCEPTED", "SETTLED"):
                sums.bond_msat[payer] -= amount * MSAT
            if held_state == "SETTLED":
                sums.bond_msat[NODE] += amount * MSAT
        else:
            parts[parent] += amount
        paid = [p for p in by_request.get(invoice, []) if p.status == succeeded] if invoice else []
        if state == "slashed" and payout:
            if len(paid) != 1 or paid[0].value_sat != payout:
                report.problems.append(f"{label}: share payments {[p.value_sat for p in paid]}, expected {payout}")
                continue
            winner = SELLER if recipient == seller_key else BUYER if recipient == buyer_key else None
            if winner is None:
                report.problems.append(f"{label}: share paid to {recipient}, neither party of its order")
                continue
            sums.payouts.add(invoice)
            sums.bond_msat[winner] += payout * MSAT
            sums.bond_msat[NODE] -= payout * MSAT + paid[0].fee_msat
        elif paid:
            report.problems.append(f"{label}: {len(paid)} share payment(s) the database never recorded")
        if state in ("pending-payout", "slashed", "failed") and (node_share or 0) + (payout or 0) != amount:
            if parent is not None or node_share is not None:
                report.problems.append(f"{label}: split {node_share} + {payout} != {amount}")
    for bond_id, _parent, _role, _state, amount, *_ in rows:
        if bond_id in parts and parts[bond_id] != amount:
            report.problems.append(f"bond {bond_id}: its parts add up to {parts[bond_id]}, not {amount}")
    report.figures["bonds"] = len(rows)
    report.figures["bond moves (msat)"] = dict(sums.bond_msat)


def replies_check(traders: Iterable[Trader]) -> list[str]:
    """Nothing unread (a reply no flow expected), no reply delivered twice (same key, action, order)."""
    problems = []
    for trader in traders:
        for received in trader.inbox:
            problems.append(f"{trader.name}: unexpected {received.action} on key {received.key_index}")
        seen = Counter((r.key_index, r.action, r.body.get("id")) for r in trader.history)
        for (key, action, order_id), count in seen.items():
            if count > 1:
                problems.append(f"{trader.name}: {action} on key {key} for {order_id} came {count} times")
    return problems


def requests_check(traders: Iterable[Trader]) -> list[str]:
    """Every request some trader sent answered, and answered once: at least one reply carries its
    request_id (the node echoes it on the replies a request causes, the counterpart's included),
    no recipient got the same action for the same request twice, and no reply names a request
    nobody sent."""
    traders = list(traders)
    sent = {request_id: trader.name for trader in traders for request_id in trader.sent}
    answers = Counter((r.body.get("request_id"), t.name, r.action) for t in traders for r in t.history)
    answered = {request_id for request_id, _, _ in answers}
    problems = [
        f"{name}: request {request_id} not answered" for request_id, name in sent.items() if request_id not in answered
    ]
    for (request_id, name, action), count in answers.items():
        if request_id is not None and request_id not in sent:
            problems.append(f"{name}: {count} × {action} for request {request_id}, which nobody sent")
        elif request_id is not None and count > 1:
            problems.append(f"{name}: {action} for request {request_id} came {count} times")
    return problems
