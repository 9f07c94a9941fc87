"""The bridge's timers: `every` runs a coroutine function on an interval, `guarded` runs one
and logs what it raised, so a failing periodic task never stops the bridge.

Plain functions: the runner's loops (inbox poll, configuration, stats) and the node's own
events and jobs (`nostrbridge.bridge.node_tasks`) share them.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

# Logged under the runner's name, as before these were split from it: log filters and the
# fault suite (tests/chaos) match "nostrbridge.bridge.runner bridge task … failed".
logger = logging.getLogger("nostrbridge.bridge.runner")


async def guarded(func: Callable[[], Awaitable[Any]], what: str) -> bool:
    """Runs `func`; False (logged) when it raised."""
    try:
        await func()
    except Exception:  # noqa: BLE001 — a failing periodic task must not stop the bridge
        logger.exception("bridge task %s failed", what)
        return False
    return True


async def every(
    interval: float, func: Callable[[], Awaitable[Any]], *, delay: bool = False, first_delay: float = 0.0
) -> None:
    """Runs `func` every `interval` seconds, first after `interval` (`delay`) or `first_delay`;
    its failures are logged under its name."""
    await asyncio.sleep(interval if delay else first_delay)
    while True:
        await guarded(func, getattr(func, "__name__", "periodic"))
        await asyncio.sleep(interval)
