"""`make bench`'s last step: one table of the headline figures, each beside its target.

    .venv/bin/python benchmarks/summary.py DIR      # DIR holds protocol.json, lightning.json, ...

The targets are the ones docs/PERFORMANCE.md argues for. A missing file means that benchmark
did not finish: its rows say so and the exit status is 1 (except the optional memory soak,
`soak.json`, which only `make bench BENCH_SOAK_SECONDS=600` runs). A missed target is reported, not an
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
    figure: str
    target: str
    value: Callable[[dict], float]
    shown: str  # format of the value
    met: Callable[[float], bool]


def _ratio(op: str, versus: str) -> Callable[[dict], float]:
    if versus == "limit":
        return lambda d: d[op]["limit"] / d[op]["ours"]
    return lambda d: d[op]["ours"] / d[op]["nostr_sdk"]


def at_least(bound: float) -> Callable[[float], bool]:
    return lambda value: value >= bound


def below(bound: float) -> Callable[[float], bool]:
    return lambda value: value < bound


X, N = "{:.2f}×", "{:,.0f}"
ROWS: dict[str, list[Row]] = {
    "protocol": [
        Row("v1 unwrap vs nostr-sdk", "≥ 2×", _ratio("v1 unwrap", "sdk"), X, at_least(2)),
        Row("v2 unwrap vs nostr-sdk", "≥ 2×", _ratio("v2 unwrap", "sdk"), X, at_least(2)),
        Row("v1 wrap vs nostr-sdk", "≥ 1×", _ratio("v1 wrap", "sdk"), X, at_least(1)),
        Row("v2 wrap vs nostr-sdk", "≥ 1×", _ratio("v2 wrap", "sdk"), X, at_least(1)),
        Row("v1 unwrap: secp256k1 limit / ours", "≤ 1.5×", _ratio("v1 unwrap", "limit"), X, below(1.5 + 1e-9)),
        Row("v2 unwrap: secp256k1 limit / ours", "≤ 1.5×", _ratio("v2 unwrap", "limit"), X, below(1.5 + 1e-9)),
    ],
    "lightning": [
        Row("hold-invoice lifecycles/s", "≥ 200", lambda d: d["lifecycles_per_s"], N, at_least(200)),
        Row("slowest call's p99", "< 50 ms", lambda d: max(d["p99_ms"].values()), "{:.1f} ms", below(50)),
    ],
    "bridge": [
        Row("replies/s at 300/s offered", "≥ 300 (≈ offered)", lambda d: d["replies/s"], "{:,.1f}", at_least(294)),
        Row("p99 latency at 300/s", "< 250 ms", lambda d: d["p99 ms"], "{:,.0f} ms", below(250)),
        Row("replies missing", "0", lambda d: d["missing"], N, below(1)),
        Row(
            "bridge CPU / crypto-only per round trip",
            "≤ 4×",
            lambda d: d["bridge cpu / crypto-only"],
            X,
            below(4 + 1e-9),
        ),
    ],
    "trades": [
        Row("trades/minute (SQLite)", "≥ 500 (1,000 in < 2 min)", lambda d: d["per_minute"], N, at_least(500)),
        Row("trades not completed", "0", lambda d: d["requested"] - d["completed"], N, below(1)),
        Row("ledger discrepancies", "0", lambda d: d["discrepancies"], N, below(1)),
        Row(
            "node CPU per trade (mostrod + jobs)",
            "≤ 20 ms",
            lambda d: d["node_cpu_ms_per_trade"],
            "{:.1f} ms",
            below(20 + 1e-9),
        ),
    ],
    "soak": [
        Row(
            "bridge RSS growth after the warm-up minute",
            "< 5 %",
            lambda d: d["soak rss growth %"],
            "{:.1f} %",
            below(5),
        ),
        Row("replies/s during the soak", "≥ 300 (≈ offered)", lambda d: d["replies/s"], "{:,.1f}", at_least(294)),
        Row("replies missing", "0", lambda d: d["missing"], N, below(1)),
    ],
}
OPTIONAL = {"soak"}  # run only when asked (make bench BENCH_SOAK_SECONDS=…)


def context(results: dict[str, dict]) -> dict[str, str]:
    """What each area's run was (sizes differ when make bench's BENCH_* variables change them)."""
    notes = {}
    if "bridge" in results:
        d = results["bridge"]
        notes["bridge"] = f"{d['offered_per_s']:.0f}/s for {d['duration_s']:.0f} s"
    if "trades" in results:
        d = results["trades"]
        notes["trades"] = f"{d['requested']} trades, {d['pairs']} pairs, {d['wall_s']:.0f} s"
    if "soak" in results:
        d = results["soak"]
        notes["soak"] = f"{d['offered_per_s']:.0f}/s for {d['duration_s']:.0f} s, {d['soak rss start/peak/end MB']} MB"
    return notes


def table(results: dict[str, dict]) -> tuple[list[str], bool]:
    lines = ["| area | figure | result | target | |", "|---|---|---:|---|---|"]
    complete = True
    notes = context(results)
    for area, rows in ROWS.items():
        data = results.get(area)
        if data is None and area in OPTIONAL:
            continue
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
