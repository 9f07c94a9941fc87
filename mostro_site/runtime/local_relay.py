"""A local Nostr relay for the embedded default node: nostr-sdk's LocalRelay (in memory).

    python -m mostro_site.runtime.local_relay --host 127.0.0.1 --port 7000

prints `READY ws://127.0.0.1:7000` once it accepts connections and serves until SIGTERM or
SIGINT, or until its stdin closes when started with `--exit-on-stdin-eof` (so a crashed
parent never leaves it behind). Events live in memory only: a restart starts empty, and the
node republishes its order book and info event on its own schedule.

nostr-sdk is a development dependency, installed by `make run` (`pip install -e .[dev]`).
"""

import argparse
import asyncio
import os
import signal
import sys
import threading

# The library default (60 events/min per connection) would throttle the node's own bursts.
MAX_REQS = 1000
NOTES_PER_MINUTE = 10_000_000


def build_relay(host: str, port: int):
    from nostr_sdk import LocalRelayBuilder, RateLimit

    limit = RateLimit(max_reqs=MAX_REQS, notes_per_minute=NOTES_PER_MINUTE)
    return LocalRelayBuilder().addr(host).port(port).rate_limit(limit).build()


def _exit_when_stdin_closes() -> None:
    def watch() -> None:
        sys.stdin.read()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


async def serve(host: str, port: int) -> None:
    relay = build_relay(host, port)
    await relay.run()
    sys.stdout.write(f"READY {await relay.url()}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    relay.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run an in-memory Nostr relay (nostr-sdk LocalRelay).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7000)
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args(argv)
    if args.exit_on_stdin_eof:
        _exit_when_stdin_closes()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
