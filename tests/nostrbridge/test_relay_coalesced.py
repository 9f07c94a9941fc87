"""`CoalescedConnection.send_data` (nostrbridge/relays/coalesced.py) joins what the protocol has
to send into one write and keeps websockets' end-of-stream marker; the round through a real
websocket server is tested with the other publish rounds (test_relay_publish_round.py)."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from nostrbridge.relays.coalesced import CoalescedConnection


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


def _connection(
    chunks: list[bytes], *, can_write_eof: bool, cls: type[ClientConnection] = CoalescedConnection
) -> tuple[ClientConnection, _Transport]:
    connection = cls(ClientProtocol(parse_uri("ws://127.0.0.1:1")))
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
    # The baseline the class exists to change (guards these tests' meaning on an upgrade).
    connection, transport = _connection([b"one", b"two"], can_write_eof=True, cls=ClientConnection)
    connection.send_data()
    assert transport.calls == [("write", b"one"), ("write", b"two")]
