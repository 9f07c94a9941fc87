"""The interface the daemon codes against (`RelayPoolProtocol`); `nostrbridge.relays.RelayPool`
implements it, and test fakes do too. Pure asyncio typing, no Django."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from nostrbridge.relays.frames import PublishResult, RelayHealth


class RelayPoolProtocol(Protocol):
    """What the worker needs from a relay pool; `RelayPool` and a test fake both provide it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def set_subscription(
        self,
        sub_id: str,
        filters: list[dict[str, Any]],
        *,
        since_provider: Callable[[], int | None] | None = None,
    ) -> None: ...

    def remove_subscription(self, sub_id: str) -> None: ...

    async def publish(self, event: dict[str, Any], *, timeout_s: float = 10.0) -> dict[str, PublishResult]: ...

    async def publish_many(
        self, items: list[tuple[str, str]], *, timeout_s: float = 10.0
    ) -> list[dict[str, PublishResult]]: ...

    async def set_relays(self, urls: Iterable[str]) -> None: ...

    def health(self) -> dict[str, RelayHealth]: ...

    def connected_urls(self) -> list[str]: ...
