"""Complete trades per minute through the whole node: relay → bridge → handlers → LND → payout.

Run:  .venv/bin/python benchmarks/bench_trades.py [--trades 1000] [--concurrency 100]
      .venv/bin/python benchmarks/bench_trades.py --postgres [--bridges 2]   # the node as compose runs it
      .venv/bin/python benchmarks/bench_trades.py --relays 3   # every request through three relays

What runs (all started by this script, all on 127.0.0.1): nostr-sdk's LocalRelay in a child
process; the simulated Lightning network (`manage.py simnet`, nodes mostro, alice, bob,
devfund, LND's routing fee rules: 1 sat + 1000 ppm); a price API and two LNURL-pay servers;
the node as `manage.py mostrod` (web, relay bridge, invoice watcher, django-q2 cluster) on a
fresh SQLite file (WAL, the embedded default). With `--postgres` the node runs as compose.yaml
runs it, as separate processes on PostgreSQL ($BENCH_POSTGRES_URL, else $TEST_POSTGRES_URL:
flushed first) and the Redis channel layer ($BENCH_REDIS_URL, else $TEST_REDIS_URL): web
(`mostrod --no-cluster --no-bridge --no-watcher`), `--bridges` × `nostr_bridge`, `invoice_watcher`
and `run_jobs` (tests/e2e/node_processes.py). The traders live in this process: `--concurrency`
pairs of users, each pair trading `trades / concurrency` times in a row, every trade on fresh
trade keys (reputation mode, trade index + 1 each time), the seller's escrow paid from simnet
node `alice` and the payout received by simnet node `bob`.

One trade (a sell order taken with the buyer's invoice, the usual mobile-client flow):
  new-order → ack · take-sell + invoice → pay-invoice · seller pays the hold invoice →
  buyer-took-order + hold-invoice-payment-accepted · fiat-sent → fiat-sent-ok · release →
  purchase-completed (after the node paid the buyer's invoice).

Reported: trades/minute (first request to last purchase-completed), per-step latency
p50/p99/max, CPU seconds per process (node CPU per trade: the sum over all the node's processes),
and the ledger check:
  * every order `success` in the node's database, each with exactly one SUCCEEDED payment to
    its buyer invoice in the node's ListPayments (and no other payment for it), every buyer
    invoice SETTLED once on bob's node for exactly amount − fee;
  * balances: seller −(amount + fee + routing fee) per trade, buyer +(amount − fee), devfund
    + the dev fees the node paid, the node + 2 × fee − payout routing fees − dev fees −
    dev-fee routing fees; the sum over all nodes falls by exactly the routing fees paid;
  * every request answered exactly once (one reply carrying its request_id), no reply twice,
    none unread after a quiet second;
  * discrepancies = checks that failed (target 0). The checks live in tests/ledger.py, which the
    fault suite (tests/chaos/) runs after every injected fault.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mostro_site.settings.test")
os.environ.setdefault("MOSTRO_VAR_DIR", tempfile.mkdtemp(prefix="bench-trades-var-"))

import django  # noqa: E402

django.setup()

from relay_fanout import Fanout, relays_add, relays_stop  # noqa: E402

from lightning.grpc import lightning_pb2 as ln  # noqa: E402
from nostrbridge.protocol.enums import Action, Kind, Status  # noqa: E402
from nostrbridge.protocol.payloads import OrderPayload, PaymentRequestPayload  # noqa: E402
from nostrbridge.protocol.structs import SmallOrder  # noqa: E402
from tests.e2e.node_processes import JOBS, ServerCpu, SplitNode, stop_profilers  # noqa: E402
from tests.e2e.trade_clients import (  # noqa: E402
    RelayConnection,
    TradeNetwork,
    Trader,
    WsRelayConnection,
    start_trade_network,
)
from tests.ledger import TradeRecord, replies_check, requests_check  # noqa: E402
from tests.ledger import ledger_check as shared_ledger_check  # noqa: E402

STEPS = (
    "new-order → ack",
    "take → pay-invoice",
    "hold paid → active notices",
    "fiat-sent → ok",
    "release → purchase-completed",
)
FEE_RATE = 0.006
DEV_FEE_SHARE = 0.30
MSAT = 1_000
# The network's price of bitcoin and each simnet node's channel balance (alice pays every escrow).
PRICES = {"USD": 50_000.0}
SIMNET_BALANCE_SATS = 100_000_000


def fee_of(amount: int) -> int:
    return int(FEE_RATE * amount / 2 + 0.5)


def route_fee_msat(amount_msat: int, base_msat: int = 1_000, ppm: int = 1_000) -> int:
    """simnet's routing fee (LND's fee rule): base + amount × ppm / 10^6, in msat."""
    return base_msat + amount_msat * ppm // 1_000_000


@dataclass
class Trace:
    """One step of one trade, for the breakdown of where its latency goes (wall-clock seconds)."""

    started: float  # the request handed to the socket (or the escrow payment started)
    request_id: str | None  # the request event's id (None: the step starts with a payment)
    reply_id: str  # the reply that ends the step
    arrived: float  # the reply received by the client


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    traces: dict[str, list[Trace]] = field(default_factory=lambda: defaultdict(list))
    trades: list[tuple[str, int, str]] = field(default_factory=list)  # (order id, amount, buyer invoice)
    failures: list[str] = field(default_factory=list)
    first_request: float = 0.0
    last_completed: float = 0.0
    load: str = ""  # the 1-minute load average at the start and at the end of the trades
    requests: int = 0  # requests the traders sent (each must be answered once)
    backends_seen: int = 0  # with --postgres: the database's backends whose CPU was counted


# time.monotonic() → wall clock (the node's database timestamps are wall clock, same machine).
WALL_OFFSET_S = time.time() - time.monotonic()


async def send_traced(trader: Trader, action: Action, *, key: int, **fields) -> tuple[str, float]:
    """Send a request as Trader.send does; return its event id and the wall-clock send time."""
    request_id, event = trader.build(action, key=key, **fields)
    trader.sent.append(request_id)  # the requests check counts what was sent
    sent = time.time()
    await trader.conn.send(event)
    return event.id().to_hex(), sent


def trace(results: Results, step: str, started_mono: float, request: tuple[str, float] | None, reply) -> None:
    """Record a step: its latency (start → the reply's arrival) and its trace for the breakdown."""
    results.latencies[step].append(reply.at - started_mono)
    request_id, sent = request if request is not None else (None, started_mono + WALL_OFFSET_S)
    results.traces[step].append(Trace(sent, request_id, reply.event["id"], reply.at + WALL_OFFSET_S))


async def one_trade(seller: Trader, buyer: Trader, amount: int, results: Results, timeout_s: float) -> None:
    fee = fee_of(amount)
    s, b = seller.next_trade_index(), buyer.next_trade_index()
    order = SmallOrder(
        kind=Kind.SELL, status=Status.PENDING, amount=amount, fiat_code="USD", fiat_amount=amount // 1000 or 1,
        payment_method="bank", premium=0,
    )  # fmt: skip
    started = time.monotonic()
    results.first_request = results.first_request or started
    request = await send_traced(seller, Action.NEW_ORDER, key=s, trade_index=s, payload=OrderPayload(order))
    ack = await seller.expect("new-order", key=s, timeout_s=timeout_s)
    trace(results, STEPS[0], started, request, ack)
    order_id = ack.body["id"]

    invoice = await buyer.wallet.invoice(amount - fee)
    started = time.monotonic()
    take = PaymentRequestPayload(None, invoice, None)
    request = await send_traced(buyer, Action.TAKE_SELL, key=b, trade_index=b, order_id=order_id, payload=take)
    pay = await seller.expect("pay-invoice", key=s, timeout_s=timeout_s)
    trace(results, STEPS[1], started, request, pay)
    await buyer.expect("waiting-seller-to-pay", key=b, timeout_s=timeout_s)

    started = time.monotonic()
    escrow = asyncio.create_task(seller.wallet.pay(pay.payload["payment_request"][1]))
    took = await seller.expect("buyer-took-order", key=s, timeout_s=timeout_s)
    accepted = await buyer.expect("hold-invoice-payment-accepted", key=b, timeout_s=timeout_s)
    trace(results, STEPS[2], started, None, max(took, accepted, key=lambda r: r.at))

    started = time.monotonic()
    request = await send_traced(buyer, Action.FIAT_SENT, key=b, order_id=order_id)
    trace(results, STEPS[3], started, request, await buyer.expect("fiat-sent-ok", key=b, timeout_s=timeout_s))
    await seller.expect("fiat-sent-ok", key=s, timeout_s=timeout_s)

    started = time.monotonic()
    request = await send_traced(seller, Action.RELEASE, key=s, order_id=order_id)
    completed = await buyer.expect("purchase-completed", key=b, timeout_s=timeout_s)
    trace(results, STEPS[4], started, request, completed)
    done = completed.at
    results.last_completed = max(results.last_completed, done)
    for action in ("hold-invoice-payment-settled", "rate"):
        await seller.expect(action, key=s, timeout_s=timeout_s)
    for action in ("released", "rate"):
        await buyer.expect(action, key=b, timeout_s=timeout_s)
    outcome = await asyncio.wait_for(escrow, timeout_s)
    if outcome.status.value != "SUCCEEDED":
        results.failures.append(f"{order_id}: escrow payment {outcome.status.value}")
    results.trades.append((order_id, amount, invoice))


async def pair_loop(seller: Trader, buyer: Trader, amounts: list[int], results: Results, timeout_s: float) -> None:
    for amount in amounts:
        try:
            await one_trade(seller, buyer, amount, results, timeout_s)
        except (TimeoutError, AssertionError) as exc:
            results.failures.append(f"{seller.name}: {exc}")
            return


async def drive(
    net: TradeNetwork, args: argparse.Namespace, extra_relays: tuple[str, ...] = ()
) -> tuple[Results, list]:
    pairs = args.concurrency
    per_pair = [args.trades // pairs + (1 if i < args.trades % pairs else 0) for i in range(pairs)]
    connection_cls = RelayConnection if args.sdk_client else WsRelayConnection
    users_per_conn = max(2, args.users_per_connection)
    conns = []
    sellers, buyers = [], []
    alice, bob = net.wallet("alice", threaded=False), net.wallet("bob", threaded=False)
    for i in range(pairs):
        if (2 * i) % users_per_conn == 0:
            conns.append(await connection_cls(net.relay_url, net.node_pubkey).connect())
            if extra_relays:  # `--relays`: every request to every relay
                conns[-1] = await Fanout.connect(conns[-1], list(extra_relays))
        sellers.append(Trader(f"seller{i}", conns[-1], alice))
        buyers.append(Trader(f"buyer{i}", conns[-1], bob))
    for conn in conns:
        keys = [
            k
            for t in (*sellers, *buyers)
            if t.conn is conn
            for k in t.pending_keys(per_pair[int(t.name.removeprefix("seller").removeprefix("buyer"))])
        ]
        await conn.watch(keys)
    await asyncio.sleep(0.5)  # subscriptions registered at the relay

    results = Results()
    load_before = os.getloadavg()[0]
    # Amounts vary per trade (different fees and routing fees), 2,000–9,999 sats.
    amounts = [[2_000 + (7_919 * (i * 1_000 + j)) % 8_000 for j in range(n)] for i, n in enumerate(per_pair)]
    await asyncio.gather(
        *(pair_loop(sellers[i], buyers[i], amounts[i], results, args.step_timeout) for i in range(pairs))
    )
    results.load = f"{load_before:.2f} → {os.getloadavg()[0]:.2f}"
    await asyncio.sleep(1.0)  # a reply sent twice (another bridge, a redelivery) arrives meanwhile
    # Every trade consumed its 12 replies: anything left over was not in the flow.
    traders = (*sellers, *buyers)
    leftovers = replies_check(traders) + requests_check(traders)
    results.requests = sum(len(t.sent) for t in traders)
    for conn in conns:
        await conn.close()
    return results, leftovers


# -- the ledger (tests/ledger.py, shared with the fault suite) ---------------------------------
async def ledger_check(net: TradeNetwork, results: Results, before: dict[str, int]) -> tuple[list[str], dict]:
    trades = [
        TradeRecord(order_id, buyer_invoice=invoice, amount_sats=amount, fee_sats=fee_of(amount), outcome="success")
        for order_id, amount, invoice in results.trades
    ]
    ledger = await shared_ledger_check(net, trades, before, route_fee_msat=route_fee_msat)
    problems = ledger.problems
    # Every escrow the sellers paid was settled: none left locked or refunded.
    alice_payments = await net.wallet("alice", threaded=False).payments()
    escrow_wins = [p for p in alice_payments if p.status == ln.Payment.PaymentStatus.SUCCEEDED]
    if len(escrow_wins) != len(results.trades):
        problems.append(f"{len(escrow_wins)} escrow payments succeeded for {len(results.trades)} trades")
    figures = {
        "delta": ledger.figures["delta"],
        "dev fees paid (sats)": ledger.figures["dev fees paid (sats)"],
        "routing fees (msat)": ledger.figures["routing_msat"],
        "payouts checked": len(results.trades),
    }
    return problems, figures


# -- where each step's time goes ---------------------------------------------------------------
def _wall(stamp: str | datetime | None) -> float | None:
    """A timestamp column → epoch seconds: SQLite's UTC text, or PostgreSQL's aware datetime."""
    if stamp is None:
        return None
    if isinstance(stamp, datetime):
        return stamp.timestamp() if stamp.tzinfo else stamp.replace(tzinfo=UTC).timestamp()
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()


def path_breakdown(net: TradeNetwork, results: Results) -> dict[str, list[dict[str, float]]]:
    """Each step cut at the node's own timestamps, in the order they happen for that step:

    sent (client) → stored (inbox row written: relay, intake checks, the coalescing window, the
    database thread's queue) → handled (`processed_at`: claimed and dispatched) → reply row
    (the reply's outbox row written; inside the handler for most steps, so before `handled`,
    by the payout job for purchase-completed) → client (the group's commit, the publisher's
    wake-up and claim, the relay, the client's socket). For the hold-invoice step the start is
    the seller's payment (LND routing, the watcher's stream, `escrow_on_accepted`).
    """
    inbound = {
        event_id: (_wall(received), _wall(processed))
        for event_id, received, processed in net.node.query(
            "SELECT event_id, received_at, processed_at FROM nostrbridge_inboundevent"
        )
    }
    outbound = {
        event_id: (_wall(created), _wall(sent))
        for event_id, created, sent in net.node.query(
            "SELECT event_id, created_at, sent_at FROM nostrbridge_outboundmessage WHERE kind = 14"
        )
    }
    cuts: dict[str, list[dict[str, float]]] = {}
    for step, traces in results.traces.items():
        rows = []
        for t in traces:
            points: dict[str, float | None] = {"sent": t.started}
            if t.request_id is not None:
                stored, handled = inbound.get(t.request_id, (None, None))
                points["stored"], points["handled"] = stored, handled
            created, relay_ok = outbound.get(t.reply_id, (None, None))
            points["reply row"] = created
            points["client"] = t.arrived
            if None in points.values() or relay_ok is None:
                continue
            order = sorted(points.items(), key=lambda item: (item[1], list(points).index(item[0])))
            row = {f"{a} → {b}": (tb - ta) * 1000 for (a, ta), (b, tb) in zip(order, order[1:], strict=False)}
            row["total"] = (t.arrived - t.started) * 1000
            row["reply row → relay OK recorded"] = (relay_ok - created) * 1000
            rows.append(row)
        cuts[step] = rows
    return cuts


def print_breakdown(cuts: dict[str, list[dict[str, float]]]) -> None:
    """Per step and segment: p50, p99, and the mean over the step's slowest 2 % (where its tail waits)."""
    print("where the time goes (ms; segments in the order they usually happen):")
    print("| step | segment | p50 | p99 | mean of the slowest 2 % |\n|---|---|---:|---:|---:|")
    for step in STEPS:
        rows = cuts.get(step, [])
        if not rows:
            continue
        slowest = sorted(rows, key=lambda r: r["total"])[-max(1, len(rows) // 50) :]
        segments = list(dict.fromkeys(key for row in rows for key in row))
        for segment in segments:
            values = [row[segment] for row in rows if segment in row]
            tail = [row[segment] for row in slowest if segment in row]
            tail_mean = sum(tail) / len(tail) if tail else float("nan")
            p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
            print(f"| {step} ({len(values)}) | {segment} | {p50:,.0f} | {p99:,.0f} | {tail_mean:,.0f} |")
    print()


# -- reporting ---------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its reaped children (utime + stime + cutime + cstime)."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick


def cpu_seconds_self(pid: int) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / tick


def process_tree(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid:
                    children.append(int(entry.name))
    return [pid, *(grand for child in children for grand in process_tree(child))]


def cpu_snapshot(net: TradeNetwork) -> dict[str, float]:
    if isinstance(net.node, SplitNode):
        return {**split_node_cpu(net.node.pids()), **others_cpu(net)}
    node_tree = process_tree(net.node.proc.pid)
    return {
        "node: mostrod (web, bridge, watcher)": cpu_seconds_self(net.node.proc.pid),
        # With the CPU of recycled workers, which their sentinel reaped.
        "node: job cluster (forked children)": sum(cpu_seconds(p) for p in node_tree[1:]),
        **others_cpu(net),
    }


def others_cpu(net: TradeNetwork) -> dict[str, float]:
    return {
        "simnet": cpu_seconds(net.simnet.process.pid),
        "relay": cpu_seconds(net.relay.proc.pid),
        "clients (this process)": time.process_time(),
    }


def split_node_cpu(pids: dict[str, int]) -> dict[str, float]:
    """Each of the node's processes; the job cluster's with its forked children (sentinel,
    pusher, workers, monitor) and the CPU of the recycled workers their sentinel reaped."""
    figures = {f"node: {name}": cpu_seconds_self(pid) for name, pid in pids.items() if name != JOBS}
    tree = process_tree(pids[JOBS])
    figures[f"node: {JOBS} (run_jobs + forked cluster)"] = cpu_seconds_self(tree[0]) + sum(
        cpu_seconds(pid) for pid in tree[1:]
    )
    return figures


def start_profilers(net: TradeNetwork, directory: str, *, gil_only: bool = False) -> list[subprocess.Popen]:
    """py-spy (not a project dependency: `pip install py-spy`, or name it in $PY_SPY) on each of the node's processes,
    idle frames included, as collapsed stacks: `<dir>/mostrod.txt` (or with `--postgres` `web.txt`,
    `bridge-1.txt`, …, `watcher.txt`, `run_jobs.txt`), `<dir>/cluster-<pid>.txt`."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    spy = os.environ.get("PY_SPY") or str(Path(sys.executable).with_name("py-spy"))  # e.g. from another venv
    # `gil_only` (--profile-gil) or $BENCH_PY_SPY_MODE=gil: only samples holding the GIL (where the
    # Python CPU goes, for benchmarks/spy_table.py); the default keeps idle frames too (where the time goes).
    mode = "--gil" if gil_only or os.environ.get("BENCH_PY_SPY_MODE") == "gil" else "--idle"
    common = ["record", "--format", "raw", "--rate", "200", mode, "--threads", "--nonblocking"]
    if isinstance(net.node, SplitNode):
        pids = net.node.pids()
        tree = process_tree(pids.pop(JOBS))
        targets = [*pids.items(), ("run_jobs", tree[0]), *((f"cluster-{pid}", pid) for pid in tree[1:])]
    else:
        tree = process_tree(net.node.proc.pid)
        targets = [("mostrod", tree[0]), *((f"cluster-{pid}", pid) for pid in tree[1:])]
    return [
        subprocess.Popen([spy, *common, "-p", str(pid), "-o", str(out / f"{name}.txt")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name, pid in targets
    ]  # fmt: skip


def start_bench_network(workdir: Path, **options: Any) -> TradeNetwork:
    """The benchmarks' network (this script's and bench_instr.py's): relay, simnet, the price and
    LNURL servers, and the node charging FEE_RATE, logging warnings only. `options` go on to
    `start_trade_network`: its `node_factory`, or node settings (MOSTRO_LOG_LEVEL among them)."""
    settings = {"MOSTRO_FEE": str(FEE_RATE), "MOSTRO_LOG_LEVEL": "WARNING", **options}
    return start_trade_network(
        workdir, prices=PRICES, simnet_args=("--balance-sats", str(SIMNET_BALANCE_SATS)), **settings
    )


def postgres_node(args: argparse.Namespace) -> dict:
    """With `--postgres`: the split node's factory and its database and Redis (empty otherwise)."""
    if not args.postgres:
        return {}
    return {
        "node_factory": lambda env, workdir: SplitNode(env, workdir, bridges=args.bridges),
        "DATABASE_URL": os.environ.get("BENCH_POSTGRES_URL") or os.environ["TEST_POSTGRES_URL"],
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL") or os.environ["TEST_REDIS_URL"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100, help="seller/buyer pairs trading at once")
    parser.add_argument("--users-per-connection", type=int, default=50, help="traders sharing one relay connection")
    parser.add_argument(
        "--sdk-client", action="store_true", help="nostr-sdk's Client as transport (default: websocket)"
    )
    parser.add_argument("--q-workers", type=int, default=2, help="django-q2 workers in the node (MOSTRO_Q_WORKERS)")
    parser.add_argument("--step-timeout", type=float, default=120.0)
    parser.add_argument(
        "--event-loop", choices=("uvloop", "asyncio"), default="uvloop", help="the node's loop (MOSTRO_EVENT_LOOP)"
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=0.0, help="first measure the idle node's CPU over this many seconds"
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="the node as separate processes on PostgreSQL ($BENCH_POSTGRES_URL or $TEST_POSTGRES_URL, flushed"
        " first) and Redis ($BENCH_REDIS_URL or $TEST_REDIS_URL)",
    )
    parser.add_argument("--bridges", type=int, default=2, help="with --postgres: relay bridge processes")
    parser.add_argument("--relays", type=int, default=1, help="relays the node and the clients use (relay_fanout.py)")
    parser.add_argument("--profile", help="record py-spy profiles of the node's processes into this directory")
    parser.add_argument("--profile-gil", action="store_true", help="profile only GIL-holding samples (CPU, no waits)")
    parser.add_argument("--workdir", help="keep the run's files here (default: a temp dir)")
    parser.add_argument("--json", help="also write the headline figures to this file (make bench's summary)")
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-trades-"))
    print(f"starting relay, simnet, node in {workdir} …", flush=True)
    started = time.monotonic()
    net = start_bench_network(
        workdir,
        MOSTRO_Q_WORKERS=str(args.q_workers),
        MOSTRO_EVENT_LOOP=args.event_loop,
        MOSTRO_LOG_LEVEL=os.environ.get("BENCH_NODE_LOG_LEVEL", "WARNING"),
        **postgres_node(args),
    )
    print(f"ready in {time.monotonic() - started:.1f} s; node pids {node_pids(net)}", flush=True)
    extra_relays = []
    try:
        if args.relays > 1:
            extra_relays = relays_add(net, args.relays - 1)
            print(
                f"node on {args.relays} relays: {net.relay_url}, {', '.join(r.url for r in extra_relays)}", flush=True
            )
        if args.idle_seconds:
            report_idle(net, args.idle_seconds)
        before = net.balances_msat()
        servers = ServerCpu(net.node.env["DATABASE_URL"], net.node.env["REDIS_URL"]) if args.postgres else None
        if servers is not None:
            servers.start()
        cpu_before = cpu_snapshot(net)
        profilers = start_profilers(net, args.profile, gil_only=args.profile_gil) if args.profile else []
        results, leftovers = asyncio.run(drive(net, args, tuple(relay.url for relay in extra_relays)))
        stop_profilers(profilers)
        cpu_after = cpu_snapshot(net)
        if servers is not None:
            for name, used in servers.stop().items():
                cpu_before[f"server: {name}"], cpu_after[f"server: {name}"] = 0.0, used
            results.backends_seen = servers.backends_seen
        problems, figures = asyncio.run(ledger_check(net, results, before))
        cuts = path_breakdown(net, results)
    finally:
        net.stop()
        relays_stop(extra_relays)
    report(args, results, leftovers, problems, figures, cpu_before, cpu_after)
    print_breakdown(cuts)


def report_idle(net: TradeNetwork, seconds: float) -> None:
    """The node's CPU with no trades: what its loops and polls cost per `seconds`."""
    load = os.getloadavg()[0]
    idle_before = cpu_snapshot(net)
    time.sleep(seconds)
    idle_after = cpu_snapshot(net)
    spent = {name: idle_after[name] - idle_before[name] for name in idle_after if name.startswith("node:")}
    print(
        f"idle node, CPU per {seconds:.0f} s: "
        + ", ".join(f"{name[len('node: ') :]} {value:.2f} s" for name, value in spent.items())
        + f"; load average {load:.2f} → {os.getloadavg()[0]:.2f}",
        flush=True,
    )


def node_pids(net: TradeNetwork) -> dict[str, int]:
    return net.node.pids() if isinstance(net.node, SplitNode) else {"mostrod": net.node.proc.pid}


def report(args, results: Results, leftovers, problems, figures, cpu_before, cpu_after) -> None:
    done = len(results.trades)
    wall = results.last_completed - results.first_request
    print()
    print(f"trades completed: {done}/{args.trades} in {wall:.1f} s → {done / wall * 60:,.0f} trades/minute")
    print(f"concurrency: {args.concurrency} pairs; transport: {'nostr-sdk Client' if args.sdk_client else 'websocket'}")
    layout = (
        f"PostgreSQL + Redis, web + {args.bridges} bridges + watcher + jobs" if args.postgres else "SQLite, mostrod"
    )
    print(f"node: {layout}, event loop {args.event_loop}; {results.requests} requests sent")
    print()
    print("| step | n | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|")
    for step in STEPS:
        values = results.latencies.get(step, [])
        if values:
            row = (percentile(values, 0.5), percentile(values, 0.99), max(values))
            print(f"| {step} | {len(values)} | " + " | ".join(f"{v * 1000:,.0f}" for v in row) + " |")
    print()
    print("| process | CPU s |\n|---|---:|")
    for name, value in cpu_after.items():
        print(f"| {name} | {value - cpu_before[name]:.1f} |")
    # Target (docs/PERFORMANCE.md): the node (mostrod + job cluster, or every process of the split
    # node; the database and Redis servers not included) ≤ 20 ms of CPU per trade.
    node_s = sum(cpu_after[name] - cpu_before[name] for name in cpu_after if name.startswith("node:"))
    node_ms_per_trade = 1000 * node_s / max(done, 1)
    print(f"node CPU per trade: {node_ms_per_trade:.1f} ms (all node processes); load average {results.load}")
    if args.postgres:
        backends_s = cpu_after["server: postgres backends"] - cpu_before["server: postgres backends"]
        with_db = node_ms_per_trade + 1000 * backends_s / max(done, 1)
        print(f"node + its PostgreSQL backends per trade: {with_db:.1f} ms ({results.backends_seen} backends)")
    print()
    print("ledger:")
    for name, value in figures.items():
        print(f"  {name}: {value}")
    failures = results.failures + leftovers
    discrepancies = problems + failures
    print(f"  discrepancies: {len(discrepancies)}")
    for line in discrepancies[:20]:
        print(f"    - {line}")
    if args.json:
        figures = {
            "requested": args.trades, "completed": done, "pairs": args.concurrency, "wall_s": wall,
            "per_minute": done / wall * 60, "discrepancies": len(discrepancies),
            "node_cpu_ms_per_trade": node_ms_per_trade, "load_avg": results.load,
            "database": "postgresql" if args.postgres else "sqlite",
        }  # fmt: skip
        Path(args.json).write_text(json.dumps(figures, indent=2))
    if discrepancies or done < args.trades:
        sys.exit(1)


if __name__ == "__main__":
    main()
