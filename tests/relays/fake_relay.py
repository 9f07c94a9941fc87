"""A scripted websocket "relay" for tests that need frames no real relay sends (malformed JSON,
CLOSED, NOTICE, silence). It records every client frame and lets the test push raw frames.
Without a responder it never answers: a relay that is up but silent."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

# Called with (connection, parsed client frame); may send replies on the connection.
Responder = Callable[[ServerConnection, list[Any]], Awaitable[None]]


class FakeRelay:
    def __init__(self, responder: Responder | None = None, host: str = "127.0.0.1"):
        self.host = host
        self.responder = responder
        self.received: list[list[Any]] = []
        self.connections: list[ServerConnection] = []
        self._server: Server | None = None
        self.port: int | None = None  # known once started; kept after stop() for assertions

    @property
    def url(self) -> str:
        assert self.port is not None, "FakeRelay not started"
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> str:
        self._server = await serve(self._handle, self.host, 0, max_size=None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FakeRelay:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def frames(self, kind: str) -> list[list[Any]]:
        return [frame for frame in self.received if frame and frame[0] == kind]

    async def broadcast(self, raw: str | bytes) -> None:
        for connection in list(self.connections):
            await connection.send(raw)

    async def _handle(self, connection: ServerConnection) -> None:
        self.connections.append(connection)
        try:
            async for raw in connection:
                frame = json.loads(raw)
                self.received.append(frame)
                if self.responder is not None:
                    await self.responder(connection, frame)
        except ConnectionClosed:
            pass
        finally:
            self.connections.remove(connection)
