"""`make bench`'s last step: one table of the headline figures, each beside its target.

    .venv/bin/python benchmarks/summary.py DIR      # DIR holds protocol.json, lightning.json, ...

The targets are the ones docs/PERFORMANCE.md argues for. A missing file means that benchmark
did not finish: its rows say so and the exit status is 1. A missed target is reported, not an
error: on a shared machine the figures move with the neighbours' load (printed below the table).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    area: str
    figure: str
    target: str
    value: Callable[[dict], float]
    shown: str  # format of the value
    met: Callable[[float], bool]


def _ratio(op: str, versus: str) -> Callable[[dict], float]:
    if versus == "limit":
        return lambda d: d[op]["limit"] / d[op]["ours"]
    return lambda d: d[op]["ours"] / d[op]["nostr_sdk"]


ROWS: dict[str, list[Row]] = {
    "protocol": [
        Row("protocol", "v1 unwrap vs nostr-sdk", "≥ 2×", _ratio("v1 unwrap", "sdk"), "{:.2f}×", lambda v: v >= 2),
        Row("protocol", "v2 unwrap vs nostr-sdk", "≥ 2×", _ratio("v2 unwrap", "sdk"), "{:.2f}×", lambda v: v >= 2),
        Row("protocol", "v1 wrap vs nostr-sdk", "≥ 1×", _ratio("v1 wrap", "sdk"), "{:.2f}×", lambda v: v >= 1),
        Row("protocol", "v2 wrap vs nostr-sdk", "≥ 1×", _ratio("v2 wrap", "sdk"), "{:.2f}×", lambda v: v >= 1),
        Row(
            "protocol",
            "v1 unwrap: secp256k1 limit / ours",
            "≤ 1.5×",
            _ratio("v1 unwrap", "limit"),
            "{:.2f}×",
            lambda v: v <= 1.5,
        ),
        Row(
            "protocol",
            "v2 unwrap: secp256k1 limit / ours",
            "≤ 1.5×",
            _ratio("v2 unwrap", "limit"),
            "{:.2f}×",
            lambda v: v <= 1.5,
        ),
    ],
    "lightning": [
        Row(
            "lightning",
            "hold-invoice lifecycles/s",
            "≥ 200",
            lambda d: d["lifecycles_per_s"],
            "{:,.0f}",
            lambda v: v >= 200,
        ),
        Row(
            "lightning",
            "slowest call's p99",
            "< 50 ms",
            lambda d: max(d["p99_ms"].values()),
            "{:.1f} ms",
            lambda v: v < 50,
        ),
    ],
    "bridge": [
        Row(
            "bridge",
            "replies/s at 300/s offered",
            "≥ 300 (≈ offered)",
            lambda d: d["replies/s"],
            "{:,.1f}",
            lambda v: v >= 0.98 * 300,
        ),
        Row("bridge", "p99 latency at 300/s", "< 250 ms", lambda d: d["p99 ms"], "{:,.0f} ms", lambda v: v < 250),
        Row("bridge", "replies missing", "0", lambda d: d["missing"], "{:.0f}", lambda v: v == 0),
    ],
    "trades": [
        Row(
            "trades",
            "trades/minute (SQLite)",
            "≥ 500 (1,000 in < 2 min)",
            lambda d: d["per_minute"],
            "{:,.0f}",
            lambda v: v >= 500,
        ),
        Row(
            "trades", "trades completed", "all", lambda d: d["completed"] - d["requested"], "{:+.0f}", lambda v: v == 0
        ),
        Row("trades", "ledger discrepancies", "0", lambda d: d["discrepancies"], "{:.0f}", lambda v: v == 0),
    ],
}


def context(results: dict[str, dict]) -> dict[str, str]:
    """What each area's run was (sizes differ when make bench's BENCH_* variables change them)."""
    notes = {}
    if "bridge" in results:
        d = results["bridge"]
        notes["bridge"] = f"{d['offered_per_s']:.0f}/s for {d['duration_s']:.0f} s"
    if "trades" in results:
        d = results["trades"]
        notes["trades"] = f"{d['requested']} trades, {d['pairs']} pairs, {d['wall_s']:.0f} s"
    return notes


def table(results: dict[str, dict]) -> tuple[list[str], bool]:
    lines = ["| area | figure | result | target | |", "|---|---|---:|---|---|"]
    complete = True
    notes = context(results)
    for area, rows in ROWS.items():
        data = results.get(area)
        for row in rows:
            label = f"{row.figure} ({notes[area]})" if area in notes and row is rows[0] else row.figure
            if data is None:
                complete = False
                lines.append(f"| {area} | {label} | no result | {row.target} | benchmark did not finish |")
                continue
            value = row.value(data)
            verdict = "met" if row.met(value) else "**missed**"
            lines.append(f"| {area} | {label} | {row.shown.format(value)} | {row.target} | {verdict} |")
    return lines, complete


def main(argv: list[str]) -> int:
    directory = Path(argv[1] if len(argv) > 1 else "var/bench")
    results = {}
    for area in ROWS:
        path = directory / f"{area}.json"
        if path.exists():
            results[area] = json.loads(path.read_text())
    lines, complete = table(results)
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    sys.stdout.write("\n".join(["", "Summary (make bench)", "", *lines, ""]) + "\n")
    sys.stdout.write(
        f"\nLoad average now (1/5/15 min): {load} on {os.cpu_count()} CPUs. This machine is shared with other "
        "developers' test runs: figures come from a busy machine and move with its load.\n"
    )
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
