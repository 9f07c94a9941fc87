"""Lightning benchmark: the real LndClient (TLS + macaroon) against the simulated network.

    .venv/bin/python benchmarks/bench_lightning.py [--lifecycles 2000] [--payouts 1000] [--workers 4]

Prints hold-invoice lifecycles per second (create on mostro, pay from alice, wait until
ACCEPTED, settle, payer sees SUCCEEDED), payouts per second (bob's invoice paid by mostro),
and p50/p99/max per call. Targets: >= 200 lifecycles/s, p99 < 50 ms for every call.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mostro_site.settings.test")

import logging  # noqa: E402

import django  # noqa: E402

django.setup()
# Per-call INFO lines are for operators; on a 2-core box they would measure the console.
logging.getLogger("lightning").setLevel(logging.WARNING)

from lightning.types import InvoiceState, PaymentStatus  # noqa: E402
from tests.lightning.simnet_fixture import start_simnet  # noqa: E402


class Timings:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.samples: dict[str, list[float]] = defaultdict(list)

    def timed(self, name: str, fn, **kwargs):
        started = time.perf_counter()
        result = fn(**kwargs)
        elapsed = time.perf_counter() - started
        with self._lock:
            self.samples[name].append(elapsed)
        return result

    def p99_ms(self) -> dict[str, float]:
        return {
            name: sorted(values)[min(len(values) - 1, int(len(values) * 0.99))] * 1000
            for name, values in self.samples.items()
        }

    def report(self) -> list[str]:
        lines = []
        for name, values in sorted(self.samples.items()):
            values.sort()
            p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
            lines.append(
                f"| {name} | {len(values)} | {statistics.median(values) * 1000:.2f} | {p99 * 1000:.2f} "
                f"| {values[-1] * 1000:.2f} |"
            )
        return lines


def lifecycle(mostro, alice, payer_pool, timings: Timings) -> None:
    preimage = os.urandom(32)
    hold = timings.timed(
        "add_hold_invoice",
        mostro.add_hold_invoice,
        amount_sats=10_000,
        preimage=preimage,
        memo="Escrow amount Order #bench",
        cltv_expiry=144,
    )
    payment_hash = bytes.fromhex(hold.payment_hash_hex)
    started = time.perf_counter()
    payment = payer_pool.submit(
        alice.send_payment, payment_request=hold.payment_request, max_fee_sats=100, timeout_seconds=60
    )
    time.sleep(0.002)  # the HTLC needs a round trip through the payer's node first
    while timings.timed("lookup_invoice", mostro.lookup_invoice, payment_hash=payment_hash).state is not (
        InvoiceState.ACCEPTED
    ):
        time.sleep(0.001)
    timings.samples["pay_until_accepted"].append(time.perf_counter() - started)
    timings.timed("settle_invoice", mostro.settle_invoice, preimage=preimage)
    outcome = payment.result(timeout=30)
    timings.samples["send_payment_hold (until settled)"].append(time.perf_counter() - started)
    assert outcome.status is PaymentStatus.SUCCEEDED
    assert outcome.preimage_hex == preimage.hex()


def payout(mostro, bob, timings: Timings) -> None:
    invoice = bob.add_invoice(amount_sats=5_000, memo="payout")
    outcome = timings.timed(
        "send_payment_payout",
        mostro.send_payment,
        payment_request=invoice.payment_request,
        max_fee_sats=10,
        timeout_seconds=60,
    )
    assert outcome.status is PaymentStatus.SUCCEEDED


def run(count: int, workers: int, job) -> float:
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(job) for _ in range(count)]:
            future.result()
    return count / (time.perf_counter() - started)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lifecycles", type=int, default=2000)
    parser.add_argument("--payouts", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", help="also write the headline figures to this file (make bench's summary)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        simnet = start_simnet(Path(directory), ("mostro", "alice", "bob"), "--balance-sats", "100000000000")
        try:
            mostro, alice, bob = simnet.client("mostro"), simnet.client("alice"), simnet.client("bob")
            payer_pool = concurrent.futures.ThreadPoolExecutor(args.workers * 2)
            warm = Timings()
            run(50, args.workers, lambda: lifecycle(mostro, alice, payer_pool, warm))
            timings = Timings()
            lifecycles = run(args.lifecycles, args.workers, lambda: lifecycle(mostro, alice, payer_pool, timings))
            payouts = run(args.payouts, args.workers, lambda: payout(mostro, bob, timings))
            payer_pool.shutdown()
            cpu = _cpu_seconds(simnet.process.pid)
        finally:
            simnet.stop()
    print(f"hold-invoice lifecycles/s: {lifecycles:.0f} ({args.lifecycles} lifecycles, {args.workers} workers)")
    print(f"payouts/s: {payouts:.0f} ({args.payouts} payouts)")
    print(f"CPU seconds: simnet {cpu:.1f}, client {time.process_time():.1f}")
    print("| call | n | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    print("\n".join(timings.report()))
    if args.json:
        figures = {"lifecycles_per_s": lifecycles, "payouts_per_s": payouts, "p99_ms": timings.p99_ms()}
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
