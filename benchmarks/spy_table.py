"""Where the CPU goes, per process, from the py-spy profiles `bench_trades.py --profile DIR` records.

Run:  .venv/bin/python benchmarks/spy_table.py DIR

Record with `BENCH_PY_SPY_MODE=gil` (only samples that hold the GIL: Python CPU, not waits).
Each sample is put in the first category whose rule matches a frame, looking from the innermost
frame outwards (a psycopg call made by the ORM counts as the driver, the ORM's own compiling as
the ORM). Prints one Markdown table: a row per category, a column per process (share of that
process's samples), and each process's sample count.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

# (category, the frame's file as py-spy prints it starts with one of these); first match wins
# per frame, the innermost frame that matches any rule decides the sample.
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("PostgreSQL driver (psycopg: send, wait, parse)", ("psycopg/", "psycopg_c/", "psycopg_pool/")),
    ("SQLite driver", ("sqlite3/",)),
    ("BOLT11 decode", ("bolt11/", "lightning/bolt11", "bitstring/")),
    ("LND gRPC client", ("grpc/", "lightning/", "google/protobuf/")),
    ("Nostr crypto and message building", ("nostrbridge/protocol/", "coincurve/", "secp256k1")),
    ("Redis channel layer", ("redis/", "channels_redis/", "channels/", "msgpack/")),
    ("django-q2 machinery (broker, pusher, monitor, sentinel)", ("django_q/",)),
    ("Django ORM and transactions", ("django/db/",)),
    ("relay websockets", ("websockets/",)),
    ("event loop and threads", ("asyncio/", "selectors.py", "threading.py", "concurrent/", "asgiref/")),
    ("JSON", ("json/",)),
)
OTHER = "the project's own code (handlers, services, bridge, jobs)"
# Project packages: a frame of these that matched no rule ends the search (its own work).
PROJECT = ("nostrbridge/", "orders/", "mostro_site/", "devfee/", "disputes/")
FRAME_FILE = re.compile(r"\(([^():]+)(?::\d+)?\)$")


def frame_file(frame: str) -> str:
    match = FRAME_FILE.search(frame)
    return match.group(1) if match else ""


def categorize(stack: list[str]) -> str:
    """The category of one sample: its frames outermost first, as in py-spy's raw format.

    From the innermost frame outwards, the first frame a rule matches decides; a frame of the
    project's own packages that no rule matches decides for OTHER (so the event loop's and
    threads' outer frames only count when nothing of ours is running inside them).
    """
    for frame in reversed(stack):
        path = frame_file(frame)
        for category, prefixes in RULES:
            if any(_under(path, prefix) for prefix in prefixes):
                return category
        if any(_under(path, prefix) for prefix in PROJECT):
            return OTHER
    return OTHER


def _under(path: str, prefix: str) -> bool:
    return path.startswith(prefix) or f"/{prefix}" in path


def read_profile(path: Path) -> Counter[str]:
    """Samples per category in one py-spy raw (collapsed) file: `frame;frame;… count` per line."""
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        frames = stack.split(";")
        if frames and frames[0].startswith("thread ("):
            frames = frames[1:]  # `--threads`: the thread's name comes first
        counts[categorize(frames)] += int(number)
    return counts


def process_name(path: Path) -> str:
    """`cluster-<pid>` files are merged into one `job cluster` column."""
    return "job cluster (forked)" if path.stem.startswith("cluster-") else path.stem


def table(directory: Path) -> str:
    per_process: dict[str, Counter[str]] = {}
    for path in sorted(directory.glob("*.txt")):
        per_process.setdefault(process_name(path), Counter()).update(read_profile(path))
    names = [name for name, counts in per_process.items() if sum(counts.values())]
    categories = [c for c, _ in RULES if any(per_process[n][c] for n in names)] + [OTHER]
    lines = ["| where | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for category in categories:
        shares = [100 * per_process[n][category] / sum(per_process[n].values()) for n in names]
        lines.append(f"| {category} | " + " | ".join(f"{share:.1f} %" for share in shares) + " |")
    lines.append("| samples | " + " | ".join(f"{sum(per_process[n].values()):,}" for n in names) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    if not any(args.directory.glob("*.txt")):
        sys.exit(f"no py-spy profiles (*.txt) in {args.directory}")
    print(table(args.directory))


if __name__ == "__main__":
    main()
