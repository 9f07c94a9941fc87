"""RelayPool.publish_many waits for every relay's OKs together (no task per relay), an OK
costs no hook coroutine when the pool has no `on_ok` (docs/PERFORMANCE.md, ninth round), and a
round's frames reach the socket in one write (`CoalescedConnection`, thirteenth round)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from nostrbridge.relays import PublishResult, RelayPool
from nostrbridge.relays import connection as relay_connection
from nostrbridge.relays.coalesced import CoalescedConnection
from tests.relays.fake_relay import FakeRelay
from tests.relays.net import free_port

FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "connect_timeout_s": 2.0}


async def _ignore(url: str, event: dict[str, Any]) -> None:
    return None


def _answering(accepted: bool, message: str = "", *, silent_for: frozenset[str] = frozenset()):
    async def respond(connection, frame):
        if frame[0] == "EVENT" and frame[1]["id"] not in silent_for:
            await connection.send(json.dumps(["OK", frame[1]["id"], accepted, message]))

    return respond


def _items(*contents: str) -> list[tuple[str, str]]:
    events = [{"id": f"{index:064x}", "content": content} for index, content in enumerate(contents, start=1)]
    return [(event["id"], json.dumps(["EVENT", event], separators=(",", ":"))) for event in events]


async def _connected(pool: RelayPool, urls: list[str]) -> None:
    async with asyncio.timeout(5):
        while sorted(pool.connected_urls()) != sorted(urls):  # noqa: ASYNC110 - polls the pool's state
            await asyncio.sleep(0.01)


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


class TaskCount:
    """Counts the tasks created on the running loop while active."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __enter__(self) -> TaskCount:
        loop = asyncio.get_running_loop()
        self._previous = loop.get_task_factory()

        def factory(loop, coro, **kwargs):
            self.names.append(getattr(coro, "__qualname__", repr(coro)))
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(factory)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.get_running_loop().set_task_factory(self._previous)


async def test_publish_many_answers_every_relay_without_a_task_per_relay():
    dead_url = f"ws://127.0.0.1:{free_port()}"
    items = _items("one", "two", "three")
    quiet = frozenset({items[1][0]})
    async with FakeRelay(_answering(True)) as yes, FakeRelay(_answering(False, "blocked", silent_for=quiet)) as no:
        pool = RelayPool([yes.url, dead_url, no.url], on_event=_ignore, **FAST)
        async with pool:
            await _connected(pool, [yes.url, no.url])
            with TaskCount() as created:
                results = await pool.publish_many(items, timeout_s=0.5)
            connections = [pool._connections[url] for url in (yes.url, no.url)]
            assert [c._pending for c in connections] == [{}, {}]  # every waiter forgotten
    # The publish itself makes no task (before: one per relay, and asyncio.gather's wrapping).
    assert [name for name in created.names if "publish" in name] == []
    timeout = PublishResult(None, "timeout: no OK within 0.5s")
    refused = PublishResult(False, "blocked")
    not_connected = PublishResult(None, "not connected")
    assert results == [
        {yes.url: PublishResult(True, ""), dead_url: not_connected, no.url: refused},
        {yes.url: PublishResult(True, ""), dead_url: not_connected, no.url: timeout},
        {yes.url: PublishResult(True, ""), dead_url: not_connected, no.url: refused},
    ]
    for relay in (yes, no):  # in order, each relay
        assert [frame[1]["id"] for frame in relay.frames("EVENT")] == [event_id for event_id, _ in items]


async def test_publish_many_cancelled_forgets_its_waiters_on_every_relay():
    async with FakeRelay() as first, FakeRelay() as second:  # up, never answering
        pool = RelayPool([first.url, second.url], on_event=_ignore, **FAST)
        async with pool:
            await _connected(pool, [first.url, second.url])
            publish = asyncio.create_task(pool.publish_many(_items("a", "b"), timeout_s=30))
            async with asyncio.timeout(5):
                while len(second.frames("EVENT")) < 2:  # noqa: ASYNC110 - polls the relay's record
                    await asyncio.sleep(0.01)
            assert all(c._pending for c in pool._connections.values())
            publish.cancel()
            await asyncio.gather(publish, return_exceptions=True)
            assert publish.cancelled()
            assert [c._pending for c in pool._connections.values()] == [{}, {}]


async def test_publish_many_with_a_relay_closing_midway_answers_with_the_reason():
    async def close_on_second(connection, frame):
        if frame[0] == "EVENT" and len(closing.frames("EVENT")) == 2:
            await connection.close(1000, "bye")

    closing = FakeRelay(close_on_second)
    async with closing, FakeRelay(_answering(True)) as yes:
        pool = RelayPool([closing.url, yes.url], on_event=_ignore, **FAST)
        async with pool:
            await _connected(pool, [closing.url, yes.url])
            results = await pool.publish_many(_items("a", "b"), timeout_s=5)
    gone = PublishResult(None, "closed by the relay: 1000 bye")
    assert results == [{closing.url: gone, yes.url: PublishResult(True, "")}] * 2


async def test_publish_many_of_nothing_answers_nothing():
    async with FakeRelay() as relay:
        pool = RelayPool([relay.url], on_event=_ignore, **FAST)
        async with pool:
            await _connected(pool, [relay.url])
            assert await pool.publish_many([], timeout_s=5) == []


async def test_ok_without_an_on_ok_hook_makes_no_hook_call(monkeypatch):
    calls: list[tuple[Any, ...]] = []
    real_call_hook = relay_connection.call_hook

    async def counting(hook, *args):
        calls.append((hook, *args))
        await real_call_hook(hook, *args)

    monkeypatch.setattr(relay_connection, "call_hook", counting)
    seen: list[tuple[str, str, bool, str]] = []
    async with FakeRelay(_answering(True)) as relay:
        quiet = RelayPool([relay.url], on_event=_ignore, **FAST)
        hooked = RelayPool([relay.url], on_event=_ignore, on_ok=lambda *ok: seen.append(ok), **FAST)
        async with quiet, hooked:
            await _connected(quiet, [relay.url])
            await _connected(hooked, [relay.url])
            calls.clear()  # (the health hooks' calls at connect)
            assert await quiet.publish_many(_items("x"), timeout_s=5) == [{relay.url: PublishResult(True, "")}]
            assert [call for call in calls if call[0] is None] == []
            await hooked.publish_many(_items("y"), timeout_s=5)
    assert seen == [(relay.url, f"{1:064x}", True, "")]


async def test_frames_queued_together_are_written_in_one_send_context_in_order(monkeypatch):
    from websockets.asyncio.client import ClientConnection

    sends: list[str] = []
    real_send = ClientConnection.send

    async def counting_send(self, message, *args, **kwargs):
        sends.append(message)
        await real_send(self, message, *args, **kwargs)

    monkeypatch.setattr(ClientConnection, "send", counting_send)
    items = _items("one", "two", "three")
    async with FakeRelay(_answering(True)) as relay:
        pool = RelayPool([relay.url], on_event=_ignore, **FAST)
        async with pool:
            await _connected(pool, [relay.url])
            sends.clear()
            pool.set_subscription("late", [{"kinds": [1]}])  # a REQ queued before the round
            results = await pool.publish_many(items, timeout_s=5)
            pool.remove_subscription("late")  # a CLOSE after it
            async with asyncio.timeout(5):
                while not relay.frames("CLOSE"):  # noqa: ASYNC110 - polls the relay's record
                    await asyncio.sleep(0.01)
            one_alone = await pool.publish_many(_items("alone"), timeout_s=5)
    assert results == [{relay.url: PublishResult(True, "")}] * 3
    assert one_alone == [{relay.url: PublishResult(True, "")}]
    kinds = [frame[0] for frame in relay.received]
    assert kinds[-6:] == ["REQ", "EVENT", "EVENT", "EVENT", "CLOSE", "EVENT"]
    assert [frame[1]["id"] for frame in relay.frames("EVENT")][:3] == [event_id for event_id, _ in items]
    # The REQ and the three EVENTs went out together without `send`; the CLOSE and the lone
    # EVENT, each alone in the queue, through `send` as before.
    assert [json.loads(message)[0] for message in sends] == ["CLOSE", "EVENT"]


async def test_a_failed_queueing_forgets_the_futures_already_queued_on_other_relays(monkeypatch):
    async with FakeRelay() as first, FakeRelay() as second:
        pool = RelayPool([first.url, second.url], on_event=_ignore, **FAST)
        async with pool:
            await _connected(pool, [first.url, second.url])
            broken = pool._connections[second.url]

            def fail(items):
                raise RuntimeError("queueing failed")

            monkeypatch.setattr(broken, "queue_many", fail)
            with pytest.raises(RuntimeError, match="queueing failed"):
                await pool.publish_many(_items("a"), timeout_s=5)
            assert pool._connections[first.url]._pending == {}


async def test_a_publish_round_is_one_write_with_every_frame_in_order(monkeypatch):
    writes: list[bytes] = []
    monkeypatch.setattr(relay_connection, "CoalescedConnection", _counting_connection(writes))
    items = _items("one", "two", "three", "four", "five")
    async with FakeRelay(_answering(True)) as relay:
        pool = RelayPool([relay.url], on_event=_ignore, **FAST)
        async with pool:
            await _connected(pool, [relay.url])
            assert writes, "the pool's connection is not the coalescing one"
            writes.clear()
            results = await pool.publish_many(items, timeout_s=2.0)
    assert results == [{relay.url: PublishResult(True, "")}] * len(items)
    # The relay read the five EVENT frames, in order, byte for byte.
    assert [json.dumps(frame, separators=(",", ":")) for frame in relay.frames("EVENT")] == [raw for _, raw in items]
    # One write for the round (its first frame a text frame; websockets' own connection wrote five).
    round_writes = [data for data in writes if data[0] & 0x0F == 0x1]
    assert len(round_writes) == 1
