"""`bench_trades.py --relays N`: the node on N relays, as operators run it ("two or more",
docs/OPERATIONS.md §3.2), and clients that send every request to all of them, as Mostro's
clients do. The node then receives each request N times (one is stored and handled, the others
are duplicates it must recognise) and publishes each reply and order event to every relay.

The extra relays join through the operator's live path (`node_settings_update`, as the
settings page saves them), and the run starts once the node reports each one connected.
Clients read the node's replies from the first relay only: what they read is not the node's
CPU, and on two cores the benchmark's own CPU is taken from the node under test.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.e2e.trade_clients import TradeNetwork, WsRelayConnection
from tests.relays.local_relay import LocalRelayProcess

CONNECT_TIMEOUT_S = 30.0


def relays_add(net: TradeNetwork, count: int) -> list[LocalRelayProcess]:
    """Start `count` more relays and put them in the node's list beside its first one."""
    extra: list[LocalRelayProcess] = []
    try:
        for _ in range(count):
            relay = LocalRelayProcess()
            relay.start()
            extra.append(relay)
        net.set_relays([net.relay_url, *(relay.url for relay in extra)])
        _wait_connected(net, [relay.url for relay in extra])
    except BaseException:
        relays_stop(extra)
        raise
    return extra


def relays_stop(relays: list[LocalRelayProcess]) -> None:
    for relay in relays:
        relay.kill()


def _wait_connected(net: TradeNetwork, urls: list[str]) -> None:
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    for url in urls:
        while not net.relay_connected(url):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the node did not connect to {url}")
            time.sleep(0.1)


class Fanout:
    """A trader group's connection: reads through the first relay, sends to every relay."""

    def __init__(self, first: WsRelayConnection, others: list[WsRelayConnection]) -> None:
        self._first = first
        self._others = others

    @classmethod
    async def connect(cls, first: WsRelayConnection, urls: list[str]) -> Fanout:
        others = [await WsRelayConnection(url, first.node_pubkey).connect() for url in urls]
        return cls(first, others)

    async def send(self, event: Any) -> None:
        await asyncio.gather(*(connection.send(event) for connection in (self._first, *self._others)))

    async def close(self) -> None:
        for connection in (self._first, *self._others):
            await connection.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._first, name)
