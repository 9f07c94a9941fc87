"""Intake: relay events → cheap checks → batched inbox inserts → a nudge to the consumer.

Everything here runs on the event loop and must stay cheap: the checks are the ones that
need no database (kind, our `p` tag, size, PoW, NIP-01 id and signature), so junk never
reaches the inbox table. The full pipeline (decryption, freshness, gates) runs later in
`nostrbridge.dispatch`, in the database thread.

`CatchUp` decides the `since` of the inbox subscription. A relay that (re)connects replays
what it stored since the moment the bridge may have lost sight of it, minus the timestamp
slack; events created before the relay's current subscription began are stored with
`catch_up=True`, so dispatch judges their freshness against the catch-up window instead of
the live 10 s.
"""

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from django.db import DatabaseError

from nostrbridge import metrics
from nostrbridge.bridge.coalesce import Coalescing
from nostrbridge.bridge.dbthread import db_call
from nostrbridge.dispatch import CATCH_UP_WINDOW_SECONDS
from nostrbridge.inbox import inbox_store
from nostrbridge.protocol.errors import BadSignature, ProtocolError
from nostrbridge.protocol.inbound import check_pow, check_signature, parse_event, transport_kind
from nostrbridge.protocol.nip01 import Event

logger = logging.getLogger(__name__)

SUB_ID = "mostro-inbox"
# docs/PROTOCOL.md §Intake: a message may be up to 10 s old; replay a little more than that.
TIMESTAMP_SLACK_S = 10
# NIP-59 wraps are back-dated up to two days, so on protocol v1 `since` must look that far back.
GIFT_WRAP_BACKDATE_S = 2 * 86_400
MAX_STORE_BATCH = 500
# Above this many verified-but-unstored events, on_event waits: the pool's bounded queue then
# pushes back on the relay sockets instead of memory growing while the database is slow.
HIGH_WATER = 5_000
# Duplicates from several relays arrive within milliseconds; remembering recent ids skips
# their signature check (the inbox's unique constraint stays the real guard).
RECENT_IDS = 20_000
DATABASE_RETRY_S = 1.0
# After a relay's EOSE, its stored events may still be in the pool's queue for a moment.
EOSE_GRACE_S = 5.0


def inbox_filters(*, node_pubkey: str, protocol_version: int) -> list[dict[str, Any]]:
    # No `limit: 0` (docs/PROTOCOL.md §Intake): the bridge sets `since` instead, so a reconnect
    # catches up on what the relay stored while the bridge was away.
    return [{"kinds": [transport_kind(protocol_version)], "#p": [node_pubkey]}]


class CatchUp:
    """Per relay: has it sent EOSE since it last connected, and since when may we miss events."""

    def __init__(self, *, anchor: float, protocol_version: int):
        self.protocol_version = protocol_version
        self._start_anchor = anchor  # the newest stored event: where the last run stopped
        self._lost_at: dict[str, float] = {}  # relays not caught up -> since when
        self._caught_up: set[str] = set()
        self._connected_at: dict[str, float] = {}
        self._eose_at: dict[str, float] = {}

    def since(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        anchor = min(self._lost_at.values(), default=now)
        slack, window = TIMESTAMP_SLACK_S, CATCH_UP_WINDOW_SECONDS
        if self.protocol_version == 1:
            slack, window = slack + GIFT_WRAP_BACKDATE_S, window + GIFT_WRAP_BACKDATE_S
        # A sender's clock may run ahead (no upper bound on created_at): never ask for the future.
        return int(max(min(anchor, now) - slack, now - window))

    def track(self, urls: list[str], *, anchor: float | None = None) -> None:
        """Relays to catch up on: at start from the last stored event, later from now."""
        for url in urls:
            if url not in self._caught_up:
                self._lost_at.setdefault(url, self._start_anchor if anchor is None else anchor)

    def forget(self, url: str) -> None:
        self._lost_at.pop(url, None)
        self._caught_up.discard(url)
        self._connected_at.pop(url, None)
        self._eose_at.pop(url, None)

    def catching_up(self, url: str) -> bool:
        return url not in self._caught_up

    def on_connect(self, url: str, now: float | None = None) -> None:
        self._connected_at[url] = time.time() if now is None else now

    def replayed(self, url: str, created_at: int, now: float | None = None) -> bool:
        """May this event come from the relay's stored replay rather than live traffic?

        The pool hands EOSE over at once but events through its queue, so a stored event can
        arrive just after its relay's EOSE: hence the grace period, and on v2 also `created_at`
        before the subscription began (a gift wrap's outer `created_at` is random, v1 skips it).
        """
        now = time.time() if now is None else now
        if url not in self._caught_up or now < self._eose_at.get(url, 0.0) + EOSE_GRACE_S:
            return True
        return self.protocol_version == 2 and created_at < self._connected_at.get(url, float("inf"))

    def on_eose(self, url: str, sub_id: str, now: float | None = None) -> None:
        if sub_id == SUB_ID:
            self._caught_up.add(url)
            self._lost_at.pop(url, None)
            self._eose_at[url] = time.time() if now is None else now

    def on_disconnect(self, url: str, now: float | None = None) -> None:
        if url in self._caught_up:
            self._caught_up.discard(url)
            self._lost_at[url] = time.time() if now is None else now

    def resubscribed(self, *, protocol_version: int, urls: list[str], now: float | None = None) -> None:
        """A new filter (other kind): nothing before now is owed under it."""
        now = time.time() if now is None else now
        self.protocol_version = protocol_version
        self._caught_up.clear()
        self._lost_at = dict.fromkeys(urls, now)


class Intake:
    def __init__(
        self,
        *,
        node_pubkey: str,
        catch_up: CatchUp,
        config: Callable[[], Any],
        nudge: Callable[[], None],
        store: Callable[[list[tuple[str, dict, bool]], dict[str, tuple[dict, Event]]], Awaitable[int]] | None = None,
        coalescing: Coalescing | None = None,
    ):
        """`store(batch, checked)` writes a batch to the inbox and returns how many of its new rows
        are left for the consumer to claim (`nudge` is called then): by default all of them; the
        bridge's store processes them itself when it can (`worker.store_and_process`), on the
        `Event`s this intake parsed and verified (`checked`, by event id: see `take_checked`).
        `coalescing` decides how long a batch gathers (`nostrbridge.bridge.coalesce`)."""
        self._node_pubkey = node_pubkey
        self._catch_up = catch_up
        self._config = config  # the bridge's cached NodeConfig (no database access on the loop)
        self._nudge = nudge
        self._store = store or _store_only
        self._buffer: list[tuple[str, dict, bool]] = []
        self._coalescing = coalescing or Coalescing()
        self._first_at: float | None = None  # monotonic arrival of the oldest unstored event
        self._full: asyncio.Future[None] | None = None  # resolved to end a gathering early
        self._recent: OrderedDict[str, None] = OrderedDict()
        # Accepted events not stored yet, by id: the event object and the `Event` made of it.
        self._checked: dict[str, tuple[dict, Event]] = {}
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._lock = asyncio.Lock()
        self._stopping = False
        self.dropped: Counter[str] = Counter()
        self.accepted = 0

    # -- relay pool callbacks ----------------------------------------------------------
    async def on_event(self, url: str, raw: dict[str, Any]) -> None:
        reason = self._reject_reason(raw)
        if reason is not None:
            self.dropped[reason] += 1
            metrics.intake_dropped(cause=reason)
            logger.debug("dropped event %s from %s: %s", str(raw.get("id"))[:12], url, reason)
            return
        self.accepted += 1
        if self._first_at is None:
            self._first_at = time.monotonic()
        self._buffer.append((url, raw, self._catch_up.replayed(url, raw["created_at"])))
        self._wake.set()
        if self._full is not None and len(self._buffer) >= self._coalescing.full_batch:
            _resolve(self._full)
        if len(self._buffer) >= HIGH_WATER:
            self._room.clear()
            await self._room.wait()

    def _reject_reason(self, raw: dict[str, Any]) -> str | None:
        config = self._config()
        if raw.get("kind") != transport_kind(config.protocol_version):
            return "kind"
        p_tags = [tag for tag in raw.get("tags", ()) if tag and tag[0] == "p"]
        if len(p_tags) != 1 or p_tags[0][1:2] != [self._node_pubkey]:
            return "p tag"
        if raw.get("id") in self._recent:
            return None  # verified moments ago (same id from another relay)
        try:
            event = parse_event(raw)
            check_pow(event, config.pow_bits)
            check_signature(event)
        except BadSignature:
            return "signature"
        except ProtocolError as exc:
            return type(exc).__name__
        self._remember(event.id)
        self._checked[event.id] = (raw, event)
        return None

    def _remember(self, event_id: str) -> None:
        self._recent[event_id] = None
        if len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)

    # -- storing ------------------------------------------------------------------------
    async def run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            await self._gather()
            self._wake.clear()
            await self._store_next()
            if self._buffer:
                self._wake.set()  # a remainder beyond MAX_STORE_BATCH (new events set it themselves)

    async def _gather(self) -> None:
        """Wait until the oldest buffered event has waited the window (`Coalescing.window_s`),
        or the batch is full, whichever comes first."""
        if self._first_at is None or len(self._buffer) >= self._coalescing.full_batch:
            return
        delay_s = self._first_at + self._coalescing.window_s() - time.monotonic()
        if delay_s <= 0:
            return
        loop = asyncio.get_running_loop()
        self._full = loop.create_future()
        timer = loop.call_later(delay_s, _resolve, self._full)
        try:
            await self._full
        finally:
            timer.cancel()
            self._full = None

    async def stop(self, task: asyncio.Task[None]) -> None:
        """End `run` after the batch it is writing, if any (events keep arriving into the buffer)."""
        self._stopping = True
        self._wake.set()
        if self._full is not None:
            _resolve(self._full)
        await asyncio.gather(task, return_exceptions=True)

    async def flush(self) -> None:
        """Store everything received so far (also called once more at shutdown)."""
        while self._buffer:
            await self._store_next()

    async def _store_next(self) -> None:
        """Store the oldest buffered events, up to MAX_STORE_BATCH (retrying while the database fails)."""
        async with self._lock:
            while self._buffer:
                batch = self._buffer[:MAX_STORE_BATCH]
                self._taken(len(batch))
                checked = self.take_checked(batch)  # (a retry after a failure checks afresh)
                try:
                    unclaimed = await self._store(batch, checked)
                except DatabaseError:
                    logger.exception("inbox insert failed; retrying in %.0f s", DATABASE_RETRY_S)
                    await asyncio.sleep(DATABASE_RETRY_S)
                    continue
                del self._buffer[: len(batch)]
                if len(self._buffer) < HIGH_WATER:
                    self._room.set()
                if unclaimed:
                    self._nudge()
                return

    def _taken(self, events: int) -> None:
        now = time.monotonic()
        self._coalescing.taken(events, now)
        # Events arriving from now on start the next batch's window; a remainder has waited already.
        self._first_at = now if len(self._buffer) > events else None

    def take_checked(self, batch: list[tuple[str, dict, bool]]) -> dict[str, tuple[dict, Event]]:
        """Hand over (and forget) the checked `Event`s of a batch about to be stored: the database
        thread then processes a row stored from one of these very event objects without parsing
        its JSON and verifying its signature a second time (`open_inbound`'s `checked`)."""
        checked = self._checked
        taken = {}
        for _, raw, _ in batch:
            entry = checked.pop(raw["id"], None)
            if entry is not None:
                taken[raw["id"]] = entry
        return taken

    @property
    def pending(self) -> int:
        return len(self._buffer)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _store_only(batch: list[tuple[str, dict, bool]], checked: dict[str, tuple[dict, Event]]) -> int:
    """The default store: the batch stored for the consumer, which parses and checks each row."""
    return await db_call(store_batch)(batch)


def store_batch(batch: list[tuple[str, dict, bool]]) -> int:
    """Insert live and replayed events (one transaction each); return how many were new."""
    return sum(len(inbox_store(items=items, catch_up=catch_up)) for catch_up, items in split_replayed(batch))


def split_replayed(batch: list[tuple[str, dict, bool]]) -> list[tuple[bool, list[tuple[str, dict]]]]:
    """(catch_up, [(url, event), …]) for the live events, then for the replayed ones; no empty group."""
    live = [(url, event) for url, event, catching_up in batch if not catching_up]
    replayed = [(url, event) for url, event, catching_up in batch if catching_up]
    return [(catch_up, items) for catch_up, items in ((False, live), (True, replayed)) if items]
