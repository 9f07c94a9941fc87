"""Hold-invoice subscriptions: one SubscribeSingleInvoice stream per payment hash.

Generic on purpose (no models): the order side passes `on_update`, an async callback that
gets every `InvoiceUpdate` (the current state first, then each change), and optionally a
`hashes` provider that names the invoices to (re)subscribe at start and on `refresh()`.
LND replays the current state on every (re)subscription, so `on_update` must be idempotent.

A stream that fails (node restart, network error) is resubscribed with exponential backoff;
a stream that reaches SETTLED or CANCELED is dropped. An unknown hash is retried at the
longest backoff (an invoice created on another node connection may appear later).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable

from lightning.base import LightningClient
from lightning.errors import InvoiceNotFound, LightningError
from lightning.types import InvoiceState, InvoiceUpdate

logger = logging.getLogger(__name__)

OnUpdate = Callable[[InvoiceUpdate], Awaitable[None]]
HashProvider = Callable[[], Iterable[str] | Awaitable[Iterable[str]]]
_FINAL = (InvoiceState.SETTLED, InvoiceState.CANCELED)


class InvoiceWatcher:
    def __init__(
        self,
        client: LightningClient,
        on_update: OnUpdate,
        *,
        hashes: HashProvider | None = None,
        initial_backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self._client = client
        self._on_update = on_update
        self._hashes = hashes
        self._initial_backoff = initial_backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    @property
    def watched(self) -> frozenset[str]:
        return frozenset(self._tasks)

    async def start(self) -> None:
        """Subscribe every hash the provider names (resubscription at boot)."""
        self._stopping = False
        await self.refresh()

    async def refresh(self) -> None:
        if self._hashes is None:
            return
        hashes = self._hashes()
        if inspect.isawaitable(hashes):
            hashes = await hashes
        for payment_hash_hex in hashes:
            self.add(payment_hash_hex)

    def add(self, payment_hash_hex: str) -> None:
        """Watch one invoice; a no-op if it is already watched."""
        key = payment_hash_hex.lower()
        if self._stopping or key in self._tasks:
            return
        self._tasks[key] = asyncio.create_task(self._watch(key), name=f"invoice-watch-{key[:16]}")

    def remove(self, payment_hash_hex: str) -> None:
        task = self._tasks.pop(payment_hash_hex.lower(), None)
        if task is not None:
            task.cancel()

    async def stop(self) -> None:
        self._stopping = True
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, key: str) -> None:
        backoff = self._initial_backoff
        try:
            while True:
                received: list[InvoiceUpdate] = []
                try:
                    if await self._follow(key, received):
                        return
                except InvoiceNotFound:
                    logger.warning("invoice %s not found; retrying in %.0f s", key, self._max_backoff)
                    backoff = self._max_backoff
                except LightningError as exc:
                    logger.warning("invoice stream %s failed (%s); resubscribing in %.1f s", key, exc.message, backoff)
                if received:  # the stream had worked: this is a fresh failure, not a streak
                    backoff = self._initial_backoff
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
        finally:
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]

    async def _follow(self, key: str, received: list[InvoiceUpdate]) -> bool:
        """Follow one subscription; True once the invoice reached a final state."""
        async for update in self._client.subscribe_single_invoice(payment_hash=bytes.fromhex(key)):
            received.append(update)
            await self._deliver(update)
            if update.state in _FINAL:
                return True
        return False

    async def _deliver(self, update: InvoiceUpdate) -> None:
        try:
            await self._on_update(update)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Last-resort guard: one failing handler must not end the subscription.
            logger.exception("on_update failed for invoice %s state %s", update.payment_hash_hex, update.state)
