"""What permessage-deflate costs the node's relay connection (docs/PERFORMANCE.md, fourteenth round).

websockets offers permessage-deflate unless told not to, and relays that accept it (strfry's
default configuration, websockets' own server) then compress every frame both ways. The node's
connection offers none (`nostrbridge/relays/connection.py`). This measures the difference on
the frames the node really sends: a relay process that accepts deflate answers each EVENT the
client publishes (a v1 gift wrap of a `new-order` reply) with an OK and delivers it back as a
subscription EVENT (the size of an inbound gift wrap). The client is the node's own connection
class (`CoalescedConnection`), connected once offering deflate and once offering none, rounds
interleaved; printed: the client's CPU per round trip (best round) and the bytes on the wire
each way.

    .venv/bin/python benchmarks/bench_relay_compression.py [--frames 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.asyncio.client import connect  # noqa: E402
from websockets.asyncio.server import serve  # noqa: E402

from nostrbridge.protocol import Keys, Message, wrap_v1  # noqa: E402
from nostrbridge.relays.coalesced import CoalescedConnection  # noqa: E402
from tests.relays.net import free_port  # noqa: E402

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "mostro.vectors.json"  # as bench_protocol.py


async def _relay(port: int) -> None:
    """Accepts permessage-deflate (websockets' server default, like strfry's)."""

    async def answer(connection: Any) -> None:
        async for raw in connection:
            event = json.loads(raw)[1]
            await connection.send(json.dumps(["OK", event["id"], True, ""]))
            await connection.send(json.dumps(["EVENT", "inbox", event]))

    async with serve(answer, "127.0.0.1", port, compression="deflate", max_size=1 << 20):
        print("ready", flush=True)
        await asyncio.Future()


class _Counting(CoalescedConnection):
    """The node's connection, with the bytes it writes and reads counted."""

    sent_bytes = 0
    received_bytes = 0

    def _write(self, pending: list[bytes]) -> None:
        type(self).sent_bytes += sum(len(data) for data in pending)
        super()._write(pending)

    def data_received(self, data: bytes) -> None:
        type(self).received_bytes += len(data)
        super().data_received(data)


def _frames(count: int) -> list[str]:
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))
    keys = {label: Keys.from_hex(pair["sk"]) for label, pair in vectors["keys"].items()}
    reply = Message.from_json(vectors["canonical_messages"]["A02_new_order_ack"])
    trade_hex = keys["alice-trade-1"].public_key_hex
    wraps = (wrap_v1(reply, keys["mostro-node"], trade_hex).to_json() for _ in range(count))
    return [f'["EVENT",{wrap}]' for wrap in wraps]


async def _round(url: str, frames: list[str], compression: str | None) -> dict[str, float]:
    _Counting.sent_bytes = _Counting.received_bytes = 0
    async with connect(url, compression=compression, create_connection=_Counting, max_size=1 << 20) as ws:
        if bool(ws.protocol.extensions) != (compression is not None):
            raise SystemExit(f"negotiated {ws.protocol.extensions} when offering {compression}")
        start = time.process_time()
        for frame in frames:
            await ws.send(frame)
            await ws.recv()  # OK
            await ws.recv()  # the EVENT delivered back
        cpu_s = time.process_time() - start
    count = len(frames)
    return {
        "cpu_us": cpu_s / count * 1e6,
        "sent_bytes": _Counting.sent_bytes / count,
        "received_bytes": _Counting.received_bytes / count,
    }


async def _measure(port: int, frames: list[str], rounds: int) -> dict[str, list[dict[str, float]]]:
    results: dict[str, list[dict[str, float]]] = {"deflate": [], "none": []}
    for _ in range(rounds):
        for label, compression in (("deflate", "deflate"), ("none", None)):
            results[label].append(await _round(f"ws://127.0.0.1:{port}", frames, compression))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=0, help="relay port (0: a free one)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_relay(args.port))
        return
    port = args.port or free_port()
    frames = _frames(args.frames)
    relay = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--port", str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        if relay.stdout is None or relay.stdout.readline().strip() != "ready":
            raise SystemExit("the relay process did not start")
        results = asyncio.run(_measure(port, frames, args.rounds))
    finally:
        relay.terminate()
        relay.wait(timeout=10)
    print(
        f"round trips a run: {args.frames} ({len(frames[0])} B an EVENT frame); runs: {args.rounds} each, interleaved"
    )
    print("| client offers | CPU µs a round trip (best; all) | bytes sent | bytes received |")
    print("|---|---:|---:|---:|")
    for label, runs in results.items():
        cpu = [run["cpu_us"] for run in runs]
        all_cpu = " / ".join(f"{value:.0f}" for value in cpu)
        print(
            f"| {label} | {min(cpu):.0f} ({all_cpu}) | {runs[0]['sent_bytes']:.0f} | {runs[0]['received_bytes']:.0f} |"
        )
    saved = min(run["cpu_us"] for run in results["deflate"]) - min(run["cpu_us"] for run in results["none"])
    print(f"deflate's CPU a round trip: {saved:.0f} µs")


if __name__ == "__main__":
    main()
