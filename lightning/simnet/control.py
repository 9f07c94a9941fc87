"""The control endpoint (HTTP/JSON on 127.0.0.1) for fault injection, and a client for it.

Every request is `POST /<action>` with a JSON object body (or `GET /state`); the answer is
JSON. See the package docstring for the actions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import Callable
from typing import Any

from lightning.simnet.model import SimError

logger = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024


class ControlServer:
    def __init__(self, handlers: dict[str, Callable[..., Any]]) -> None:
        self._handlers = handlers

    async def start(self, port: int) -> asyncio.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await self._respond(reader)
        except (ValueError, asyncio.IncompleteReadError) as exc:
            status, body = 400, {"error": str(exc)}
        payload = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, Any]:
        request_line = (await reader.readline()).decode("latin-1").split()
        if len(request_line) < 2:
            raise ValueError("bad request line")
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length > MAX_BODY_BYTES:
            raise ValueError("body too large")
        raw = await reader.readexactly(length) if length else b"{}"
        action = request_line[1].strip("/")
        handler = self._handlers.get(action)
        if handler is None:
            return 404, {"error": f"unknown action {action!r}", "actions": sorted(self._handlers)}
        try:
            result = handler(**json.loads(raw or b"{}"))
            if asyncio.iscoroutine(result):
                result = await result
        except SimError as exc:
            return 400, {"error": exc.message}
        except (TypeError, KeyError) as exc:
            return 400, {"error": f"bad arguments: {exc}"}
        return 200, result


class SimnetControl:
    """Client for the control endpoint (tests, benchmarks, manual poking)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def call(self, action: str, **params: object) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - loopback URL from simnet.json
            f"{self.url}/{action}",
            data=json.dumps(params).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"simnet control {action}: {exc.read().decode()}") from exc

    def state(self) -> dict[str, Any]:
        return self.call("state")

    def mine(self, blocks: int = 1) -> int:
        return int(self.call("mine", blocks=blocks)["height"])

    def set_online(self, node: str, online: bool) -> None:
        self.call("online" if online else "offline", node=node)

    def restart(self, node: str, down_seconds: float = 0.0) -> None:
        self.call("restart", node=node, down_seconds=down_seconds)

    def delay(self, node: str, seconds: float, *, methods: list[str] | None = None, after_effect: bool = False) -> None:
        """Unary calls to `node` (all, or `methods`) answer `seconds` late; 0 ends it."""
        self.call("delay", node=node, seconds=seconds, methods=methods or [], after_effect=after_effect)

    def fail_next_payment(self, node: str, reason: str = "FAILURE_REASON_NO_ROUTE") -> None:
        self.call("fail_next_payment", node=node, reason=reason)

    def stick_next_payment(self, node: str) -> None:
        self.call("stick_next_payment", node=node)

    def resolve_payment(
        self, node: str, payment_hash: str, outcome: str = "deliver", reason: str = ""
    ) -> dict[str, Any]:
        return self.call("resolve_payment", node=node, payment_hash=payment_hash, outcome=outcome, reason=reason)

    def set_fees(self, base_msat: int, ppm: int) -> None:
        self.call("fees", base_msat=base_msat, ppm=ppm)

    def set_balance(self, node: str, balance_sats: int) -> None:
        self.call("balance", node=node, balance_sats=balance_sats)

    def balance_msat(self, node: str) -> int:
        return int(self.state()["nodes"][node]["balance_msat"])
