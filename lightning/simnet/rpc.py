"""Per-call checks every simulated node applies, as LND's interceptors do.

A node made slow (`SimNode.call_delay_s`) answers its unary calls late, before or after they
take effect. Refusals use LND's status codes and messages: a node taken offline answers UNAVAILABLE, a
missing macaroon "expected 1 macaroon, got 0", a wrong one "verification failed:
signature mismatch after caveat verification" (both UNKNOWN, as LND returns them).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc

from lightning.simnet.model import RESTART, SimError, SimNode

OFFLINE_MESSAGE = "simnet: node offline (connection refused)"
RESTART_MESSAGE = "simnet: node restarting, stream closed"
Context = grpc.aio.ServicerContext[Any, Any]
# A servicer method: (servicer, request protobuf) -> response protobuf.
Handler = Callable[[Any, Any], Any]


def check_call(node: SimNode, context: Context) -> None:
    if not node.online:
        raise SimError(OFFLINE_MESSAGE, code="UNAVAILABLE")
    macaroons = [value for key, value in context.invocation_metadata() or () if key == "macaroon"]
    if len(macaroons) != 1:
        raise SimError(f"expected 1 macaroon, got {len(macaroons)}")
    if macaroons[0] != node.macaroon_hex:
        raise SimError("verification failed: signature mismatch after caveat verification")


async def abort(context: Context, exc: SimError) -> NoReturn:
    await context.abort(grpc.StatusCode[exc.code], exc.message)


def unary(method: Handler) -> Callable[[Any, Any, Context], Awaitable[Any]]:
    """Wrap a synchronous handler `(self, request) -> response` as an authenticated RPC."""

    @functools.wraps(method)
    async def handler(self: Any, request: Any, context: Context) -> Any:
        try:
            check_call(self.node, context)
            delay_s = self.node.delay_for(method.__name__)
            if delay_s and not self.node.delay_after_effect:
                await asyncio.sleep(delay_s)  # cancelled with the call when the client gives up
            response = method(self, request)
            if delay_s and self.node.delay_after_effect:
                await asyncio.sleep(delay_s)
            return response
        except SimError as exc:
            await abort(context, exc)

    return handler


async def drain(
    queue: asyncio.Queue[object], context: Context, *, is_final: Callable[[object], bool]
) -> AsyncIterator[Any]:
    """Yield queued protobuf updates until one is final; a RESTART ends with UNAVAILABLE."""
    while True:
        item = await queue.get()
        if item is RESTART:
            await context.abort(grpc.StatusCode.UNAVAILABLE, RESTART_MESSAGE)
        yield item
        if is_final(item):
            return
