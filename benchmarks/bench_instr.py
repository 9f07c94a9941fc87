"""Instructions per complete trade: the node's CPU counted, not timed (issue 20, target 2).

Run:  .venv/bin/python benchmarks/bench_instr.py [--trades 10] [--warmup 2] [--idle-seconds 20]   (~2.5 min)

Why: on this 2-core machine the host's speed drifts by a third within an hour, so
`bench_trades.py`'s "node CPU per trade" in milliseconds moves by more than a round of work
changes it. Instructions executed do not depend on the host's speed or on what else runs.

What runs: the same network as `bench_trades.py` (nostr-sdk's LocalRelay, simnet, the price and
LNURL servers, real websocket traders in this process), but `manage.py mostrod` runs under
`valgrind --tool=callgrind` with instrumentation off (valgrind only translating) until the
warm-up; its forked job cluster inherits the tool. Trades run one at a time
(`--concurrency 1`), so every message is handled alone: no batch depends on timing.

Wall-clock work: the node's safety-net polls (the bridge's inbox, outbox and configuration
polls, the invoice watcher's, the metrics flush, the cluster's idle poll) are stretched by
`--poll-scale` (50, about valgrind's slowdown), so that they fire about as often per trade as
natively, and the cluster's scheduler is off (its minute ticks run the sweeps, not a trade's
work): the settings of docs/OPERATIONS.md §Idle wake-ups. What still runs by the clock (the
database threads' 30 s connection recycling, relay pings) is counted in the idle phase.

Phases:
  1. warm-up: `--warmup` trades, counted but discarded (imports, caches, first connections);
  2. idle: counters zeroed, `--idle-seconds` with no trades, dumped: what the node does per
     second of wall time with nothing to do;
  3. trades: counters zeroed, `--trades` trades, dumped.

Reported, per process group (mostrod: web, bridge, watcher; job cluster: its forked children):
instructions per trade as counted, and with the idle rate × the phase's wall time taken off
(the figure to compare). Runs of the same tree agreed within 2 % (node, idle-corrected:
70.27 and 71.45 M; mostrod alone 60.63 and 61.40 M); compare trees by running this script in
each, twice. Counting is done with callgrind_control for mostrod and with SIGUSR1/SIGUSR2
(benchmarks/callgrind_site/) for the forked cluster, which valgrind's gdbserver cannot reach.

Optional: `--annotate` prints callgrind_annotate's top functions (inclusive) of mostrod's dump.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mostro_site.settings.test")
os.environ.setdefault("MOSTRO_VAR_DIR", tempfile.mkdtemp(prefix="bench-instr-var-"))

import bench_trades  # noqa: E402  (sets up Django)

from tests.e2e.trade_clients import NodeProcess, TradeNetwork  # noqa: E402

VALGRIND_START_TIMEOUT_S = 600.0
DUMP_TIMEOUT_S = 120.0
TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)
CLIENT_REQUESTS_C = """
#include <valgrind/callgrind.h>
void bench_callgrind_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void bench_callgrind_dump(void) { CALLGRIND_DUMP_STATS; }
"""


def build_client_requests(workdir: Path) -> Path:
    """The C library the node's sitecustomize calls on SIGUSR1/SIGUSR2 (callgrind_site/)."""
    source, library = workdir / "client_requests.c", workdir / "libbench_callgrind.so"
    source.write_text(CLIENT_REQUESTS_C)
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


class CallgrindNode(NodeProcess):
    """`manage.py mostrod` under callgrind, instrumentation off until `instrument_on`."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        valgrind = [
            shutil.which("valgrind") or "valgrind", "--tool=callgrind", "--instr-atstart=no", "--trace-children=no",
            f"--callgrind-out-file={workdir / 'callgrind'}/cg.%p", "--dump-line=no", "--compress-strings=no",
            *os.environ.get("BENCH_CALLGRIND_ARGS", "").split(),
        ]  # fmt: skip
        super().__init__(env, workdir, command_prefix=valgrind, start_timeout_s=VALGRIND_START_TIMEOUT_S)

    def start(self, *args: str) -> None:
        """mostrod alone gets the callgrind environment (`prepare()`'s shell ran without it)."""
        (self.workdir / "callgrind").mkdir(parents=True, exist_ok=True)
        self.env = {
            **self.env,
            "PYTHONHASHSEED": "0",  # the same dict and set layouts every run
            "PYTHONPATH": str(ROOT / "benchmarks" / "callgrind_site"),
            "BENCH_CALLGRIND_LIB": str(build_client_requests(self.workdir)),
        }
        super().start(*args)

    def stop(self, timeout_s: float = 120.0) -> int | None:
        return super().stop(timeout_s)


def slowed_polls(scale: float) -> dict[str, str]:
    """Wall-clock safety nets stretched by valgrind's slowdown, so that they fire about as often
    per trade as natively (where a trade takes ~20 ms of CPU, under callgrind ~1–2 s); the
    schedules' minute ticks (the sweeps, not a trade's work) are off."""
    return {
        "MOSTRO_BRIDGE_INBOX_POLL_SECONDS": str(0.25 * scale),
        "MOSTRO_BRIDGE_PUBLISH_POLL_SECONDS": str(1.0 * scale),
        "MOSTRO_BRIDGE_CONFIG_POLL_SECONDS": str(3.0 * scale),
        "MOSTRO_METRICS_FLUSH_SECONDS": str(10.0 * scale),
        "MOSTRO_INVOICE_WATCHER_POLL_SECONDS": str(1.0 * scale),
        "MOSTRO_Q_POLL_SECONDS": str(2.0 * scale),
        "MOSTRO_Q_SCHEDULER": "false",
    }


def node_tree(net: TradeNetwork) -> list[int]:
    """mostrod's pid (the valgrind process became it by exec) and its forked children."""
    return bench_trades.process_tree(net.node.proc.pid)


def signal_children(net: TradeNetwork, signum: int) -> list[int]:
    """Signal the job cluster's forked children; returns every node pid, mostrod's first."""
    pids = node_tree(net)
    for pid in pids[1:]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
    return pids


def control_mostrod(net: TradeNetwork, *flags: str) -> None:
    """callgrind_control (valgrind's gdbserver) for mostrod itself: a signal arriving in one of its
    busy threads tripped an assertion of callgrind's signal handling (valgrind 3.19) once."""
    pid = str(net.node.proc.pid)
    for flag in flags:
        subprocess.run(["callgrind_control", flag, pid], capture_output=True, timeout=120, check=False)


def start_counting(net: TradeNetwork) -> float:
    """Instrumentation on and counters zeroed in every process of the node; returns when that
    happened (each child runs its handler at its next bytecode, a blocked one at once)."""
    control_mostrod(net, "--instr=on", "--zero")
    signal_children(net, signal.SIGUSR1)
    zeroed_at = time.monotonic()
    time.sleep(2.0)
    return zeroed_at


def dump_totals(net: TradeNetwork, zeroed_at: float) -> tuple[dict[int, int], float]:
    """Dump every node process's counters (SIGUSR2): instructions per pid since the zero, and
    the seconds they were counted over."""
    out = net.node.workdir / "callgrind"
    before = {path.name for path in out.iterdir()}
    pids = signal_children(net, signal.SIGUSR2)
    control_mostrod(net, "--dump")
    counted_s = time.monotonic() - zeroed_at
    deadline = time.monotonic() + DUMP_TIMEOUT_S
    totals: dict[int, int] = {}
    while time.monotonic() < deadline and len(totals) < len(pids):
        time.sleep(1.0)
        for path in out.iterdir():
            match = re.match(r"cg\.(\d+)\.\d+$", path.name)
            if path.name in before or not match or int(match.group(1)) in totals:
                continue
            found = TOTALS.search(path.read_text(errors="replace"))
            if found:
                totals[int(match.group(1))] = int(found.group(1))
    missing = set(pids) - set(totals)
    if missing:
        print(f"warning: no dump from pids {sorted(missing)}", flush=True)
    return totals, counted_s


def split(totals: dict[int, int], mostrod_pid: int) -> tuple[int, int]:
    cluster = sum(count for pid, count in totals.items() if pid != mostrod_pid)
    return totals.get(mostrod_pid, 0), cluster


def run_trades(net: TradeNetwork, trades: int, step_timeout_s: float) -> float:
    args = argparse.Namespace(
        trades=trades, concurrency=1, users_per_connection=50, sdk_client=False, step_timeout=step_timeout_s
    )
    started = time.monotonic()
    results, leftovers = asyncio.run(bench_trades.drive(net, args))
    elapsed = time.monotonic() - started
    done = len(results.latencies.get(bench_trades.STEPS[-1], []))
    if done != trades or leftovers:
        raise SystemExit(f"only {done}/{trades} trades completed; leftovers: {leftovers[:5]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--step-timeout", type=float, default=300.0)
    parser.add_argument("--workdir", help="keep the run's files here (default: a temp dir)")
    parser.add_argument(
        "--poll-scale", type=float, default=50.0, help="the node's safety-net polls stretched by this factor"
    )
    parser.add_argument("--annotate", action="store_true", help="print mostrod's top functions")
    parser.add_argument(
        "--event-loop", choices=("uvloop", "asyncio"), default="uvloop", help="the node's loop (MOSTRO_EVENT_LOOP)"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian package valgrind)")

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-instr-"))
    print(f"starting relay, simnet, node under callgrind in {workdir} …", flush=True)
    started = time.monotonic()
    net = bench_trades.start_bench_network(
        workdir,
        node_factory=CallgrindNode,
        MOSTRO_Q_WORKERS="1",
        MOSTRO_EVENT_LOOP=args.event_loop,
        **slowed_polls(args.poll_scale),
    )
    print(f"ready in {time.monotonic() - started:.0f} s", flush=True)
    try:
        start_counting(net)  # the warm-up runs instrumented too: the same code paths warmed
        warm_s = run_trades(net, args.warmup, args.step_timeout)
        print(f"warm-up: {args.warmup} trades in {warm_s:.0f} s", flush=True)
        zeroed_at = start_counting(net)
        time.sleep(args.idle_seconds)
        idle = dump_totals(net, zeroed_at)
        zeroed_at = start_counting(net)
        run_s = run_trades(net, args.trades, args.step_timeout)
        counted = dump_totals(net, zeroed_at)
        print(f"trades: {args.trades} one at a time in {run_s:.0f} s under callgrind", flush=True)
    finally:
        net.stop()
    report(args, net.node.proc.pid, idle, counted, workdir)


def report(
    args, mostrod_pid: int, idle: tuple[dict[int, int], float], counted: tuple[dict[int, int], float], workdir
) -> None:
    (idle_m, idle_c), idle_s = split(idle[0], mostrod_pid), idle[1]
    (got_m, got_c), trades_s = split(counted[0], mostrod_pid), counted[1]
    rate_m, rate_c = idle_m / idle_s, idle_c / idle_s
    print(f"counted over: idle {idle_s:.1f} s, trades {trades_s:.1f} s")
    print("| process | idle, M instr/s | counted, M instr/trade | idle-corrected, M instr/trade |")
    print("|---|---:|---:|---:|")
    rows = (("mostrod", rate_m, got_m), ("job cluster", rate_c, got_c), ("node", rate_m + rate_c, got_m + got_c))
    for name, rate, got in rows:
        corrected = (got - rate * trades_s) / args.trades
        print(f"| {name} | {rate / 1e6:.2f} | {got / args.trades / 1e6:.2f} | {corrected / 1e6:.2f} |")
    corrected_node = (got_m + got_c - (rate_m + rate_c) * trades_s) / args.trades
    print(f"node instructions per trade: {corrected_node / 1e6:.2f} M (idle-corrected)")
    if args.annotate:
        dumps = sorted((workdir / "callgrind").glob(f"cg.{mostrod_pid}.*"))
        subprocess.run(["callgrind_annotate", "--inclusive=yes", str(dumps[-1])], check=False)


if __name__ == "__main__":
    main()
