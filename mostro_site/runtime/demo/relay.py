"""A minimal Nostr relay client for the demo traders (one websocket per trader, as real clients)."""

import asyncio
import contextlib
import json
import uuid

import websockets
from websockets.asyncio.client import ClientConnection

from nostrbridge.protocol.nip01 import Event


class RelayRefused(RuntimeError):
    pass


class RelayClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self._acks: dict[str, asyncio.Future] = {}
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task | None = None

    async def connect(self) -> None:
        self._socket = await websockets.connect(self.url, max_size=2**20)
        self._reader = asyncio.create_task(self._read())

    def _connected(self) -> ClientConnection:
        if self._socket is None:
            raise RuntimeError("connect() first")
        return self._socket

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._socket is not None:
            await self._socket.close()

    async def subscribe(self, filters: dict) -> str:
        sub_id = uuid.uuid4().hex[:12]
        await self._connected().send(json.dumps(["REQ", sub_id, filters]))
        return sub_id

    async def publish(self, event: Event, wait_seconds: float = 10.0) -> None:
        ack = asyncio.get_running_loop().create_future()
        self._acks[event.id] = ack
        await self._connected().send(json.dumps(["EVENT", event.to_dict()]))
        accepted, message = await asyncio.wait_for(ack, wait_seconds)
        if not accepted:
            raise RelayRefused(f"{self.url} refused {event.id[:12]}: {message}")

    async def _read(self) -> None:
        async for raw in self._connected():
            frame = json.loads(raw)
            if frame[0] == "EVENT" and len(frame) == 3:
                await self.events.put(Event.from_dict(frame[2]))
            elif frame[0] == "OK" and len(frame) >= 3:
                ack = self._acks.pop(frame[1], None)
                if ack is not None and not ack.done():
                    ack.set_result((bool(frame[2]), frame[3] if len(frame) > 3 else ""))
