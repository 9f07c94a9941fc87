"""A publish round's frames reach the socket in one write (nostrbridge/relays/coalesced.py),
the same bytes in the same order, and websockets' end-of-stream marker is still honoured."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from nostrbridge.relays import PublishResult, RelayPool
from nostrbridge.relays import connection as relay_connection
from nostrbridge.relays.coalesced import CoalescedConnection
from tests.relays.fake_relay import FakeRelay

FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "connect_timeout_s": 2.0}


class _CountingTransport:
    """The real transport, with each `write` recorded (uvloop's transports take no attributes)."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _counting_connection(writes: list[bytes]) -> type[CoalescedConnection]:
    class Counting(CoalescedConnection):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(_CountingTransport(transport, writes))  # type: ignore[arg-type]

    return Counting


async def _ignore(url: str, event: dict[str, Any]) -> None:
    return None


async def _answer_ok(connection, frame) -> None:
    if frame[0] == "EVENT":
        await connection.send(json.dumps(["OK", frame[1]["id"], True, ""]))


def _items(count: int) -> list[tuple[str, str]]:
    events = [{"id": f"{index:064x}", "content": f"event {index}"} for index in range(1, count + 1)]
    return [(event["id"], json.dumps(["EVENT", event], separators=(",", ":"))) for event in events]


async def test_a_publish_round_is_one_write_with_every_frame_in_order(monkeypatch):
    writes: list[bytes] = []
    monkeypatch.setattr(relay_connection, "CoalescedConnection", _counting_connection(writes))
    items = _items(5)
    async with FakeRelay(_answer_ok) as relay:
        pool = RelayPool([relay.url], on_event=_ignore, **FAST)
        async with pool:
            async with asyncio.timeout(5):
                while pool.connected_urls() != [relay.url]:  # noqa: ASYNC110 - polls the pool's state
                    await asyncio.sleep(0.01)
            assert writes, "the pool's connection is not the coalescing one"
            writes.clear()
            results = await pool.publish_many(items, timeout_s=2.0)
    assert results == [{relay.url: PublishResult(True, "")}] * len(items)
    # The relay read the five EVENT frames, in order, byte for byte.
    assert [json.dumps(frame, separators=(",", ":")) for frame in relay.frames("EVENT")] == [raw for _, raw in items]
    # One write for the round (its first frame a text frame; websockets' own connection wrote five).
    round_writes = [data for data in writes if data[0] & 0x0F == 0x1]
    assert len(round_writes) == 1


class _Protocol:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def data_to_send(self) -> list[bytes]:
        chunks, self._chunks = self._chunks, []
        return chunks


class _Transport:
    def __init__(self, *, can_write_eof: bool) -> None:
        self._can_write_eof = can_write_eof
        self.calls: list[tuple[str, bytes | None]] = []

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def can_write_eof(self) -> bool:
        return self._can_write_eof

    def write_eof(self) -> None:
        self.calls.append(("write_eof", None))

    def close(self) -> None:
        self.calls.append(("close", None))


def _connection(chunks: list[bytes], *, can_write_eof: bool) -> tuple[CoalescedConnection, _Transport]:
    connection = CoalescedConnection(ClientProtocol(parse_uri("ws://127.0.0.1:1")))
    transport = _Transport(can_write_eof=can_write_eof)
    connection.protocol = _Protocol(chunks)  # type: ignore[assignment]
    connection.transport = transport  # type: ignore[assignment]
    return connection, transport


@pytest.mark.parametrize(
    ("chunks", "can_write_eof", "expected"),
    [
        ([], True, []),
        ([b"one"], True, [("write", b"one")]),
        ([b"one", b"two", b"three"], True, [("write", b"onetwothree")]),
        # The end-of-stream marker: what came before it is written first, then the half-close.
        ([b"one", b"two", b""], True, [("write", b"onetwo"), ("write_eof", None)]),
        ([b""], True, [("write_eof", None)]),
        # Without a half-close (TLS), the transport is closed, as websockets does.
        ([b"close-frame", b""], False, [("write", b"close-frame"), ("close", None)]),
    ],
)
async def test_send_data_joins_chunks_and_keeps_the_end_of_stream(chunks, can_write_eof, expected):
    connection, transport = _connection(chunks, can_write_eof=can_write_eof)
    connection.send_data()
    assert transport.calls == expected


async def test_websockets_own_connection_writes_each_frame_apart():
    # The baseline the class exists to change (guards the first test's meaning on an upgrade).
    connection = ClientConnection(ClientProtocol(parse_uri("ws://127.0.0.1:1")))
    transport = _Transport(can_write_eof=True)
    connection.protocol = _Protocol([b"one", b"two"])  # type: ignore[assignment]
    connection.transport = transport  # type: ignore[assignment]
    connection.send_data()
    assert transport.calls == [("write", b"one"), ("write", b"two")]
