"""RelayPool against real relays (nostr-sdk LocalRelay, Python nostr-relay) and a scripted one."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from nostr_sdk import Keys

from nostrbridge.relays import PublishResult, RelayHealth, RelayPool
from tests.relays.events import sign_event, with_bad_signature
from tests.relays.fake_relay import FakeRelay
from tests.relays.local_relay import InProcessLocalRelay
from tests.relays.net import free_port

FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "connect_timeout_s": 2.0}


class Recorder:
    """Collects on_event / on_eose calls so tests can wait for them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.eose: list[tuple[str, str]] = []
        self.oks: list[tuple[str, str, bool, str]] = []
        self.health_changes: list[tuple[str, bool]] = []

    async def on_event(self, url: str, event: dict[str, Any]) -> None:
        self.events.append((url, event))

    def on_eose(self, url: str, sub_id: str) -> None:
        self.eose.append((url, sub_id))

    def on_ok(self, url: str, event_id: str, accepted: bool, message: str) -> None:
        self.oks.append((url, event_id, accepted, message))

    async def on_health_change(self, url: str, health: RelayHealth) -> None:
        self.health_changes.append((url, health.connected))

    def pool(self, urls: list[str], **kwargs: Any) -> RelayPool:
        hooks = {"on_eose": self.on_eose, "on_ok": self.on_ok, "on_health_change": self.on_health_change}
        return RelayPool(urls, on_event=self.on_event, **hooks, **{**FAST, **kwargs})


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polls state written by pool callbacks
            await asyncio.sleep(0.01)


def author_filter(keys: Keys) -> list[dict[str, Any]]:
    return [{"kinds": [1], "authors": [keys.public_key().to_hex()]}]


async def test_published_event_reaches_another_pools_subscription(local_relay, nostr_keys):
    sub, pub = Recorder(), Recorder()
    async with sub.pool([local_relay.url]) as reader, pub.pool([local_relay.url]) as writer:
        reader.set_subscription("feed", author_filter(nostr_keys))
        await eventually(lambda: sub.eose == [(local_relay.url, "feed")])
        await eventually(lambda: writer.connected_urls() == [local_relay.url])
        event = sign_event(nostr_keys, content="hello")

        results = await writer.publish(event)

        assert results == {local_relay.url: PublishResult(True, "")}
        await eventually(lambda: len(sub.events) == 1)
        assert sub.events == [(local_relay.url, event)]
        assert pub.oks == [(local_relay.url, event["id"], True, "")]
        writer_health = writer.health()[local_relay.url]
        assert (writer_health.ok_count, writer_health.refused_count) == (1, 0)
        reader_health = reader.health()[local_relay.url]
        assert (reader_health.connected, reader_health.events_received, reader_health.reconnects) == (True, 1, 0)


async def test_same_event_is_delivered_once_per_relay(local_relay, py_relay, nostr_keys):
    urls = [local_relay.url, py_relay.url]
    sub, pub = Recorder(), Recorder()
    async with sub.pool(urls) as reader, pub.pool(urls) as writer:
        reader.set_subscription("feed", author_filter(nostr_keys))
        await eventually(lambda: sorted(sub.eose) == sorted((url, "feed") for url in urls))
        await eventually(lambda: sorted(writer.connected_urls()) == sorted(urls))
        event = sign_event(nostr_keys, content="twice")

        results = await writer.publish(event)

        assert results == {local_relay.url: PublishResult(True, ""), py_relay.url: PublishResult(True, "")}
        await eventually(lambda: len(sub.events) == 2)
        assert sorted(url for url, _ in sub.events) == sorted(urls)
        assert [e for _, e in sub.events] == [event, event]


async def test_reconnects_and_resubscribes_after_relay_restart(local_relay_process, nostr_keys):
    url = local_relay_process.url
    sub, pub = Recorder(), Recorder()
    async with sub.pool([url]) as reader:
        reader.set_subscription("feed", author_filter(nostr_keys))
        await eventually(lambda: len(sub.eose) == 1)

        local_relay_process.kill()
        await eventually(lambda: not reader.health()[url].connected)
        await local_relay_process.arestart()
        await eventually(lambda: len(sub.eose) == 2)
        async with pub.pool([url]) as writer:
            await eventually(lambda: writer.connected_urls() == [url])
            event = sign_event(nostr_keys, content="after restart")
            assert await writer.publish(event) == {url: PublishResult(True, "")}
            await eventually(lambda: len(sub.events) == 1)

        assert sub.events == [(url, event)]
        health = reader.health()[url]
        assert (health.connected, health.reconnects, health.events_received) == (True, 1, 1)
        assert sub.eose == [(url, "feed"), (url, "feed")]
    assert sub.health_changes == [(url, True), (url, False), (url, True), (url, False)]
    assert reader.health()[url].last_error == "closed by the pool"


async def test_catches_up_on_events_stored_while_disconnected(py_relay_factory, nostr_keys):
    # given a subscriber that asks for everything newer than the last event it saw
    relay = py_relay_factory()
    now = int(time.time())
    seen: list[int] = []
    since_calls: list[int | None] = []

    def since_provider() -> int | None:
        since_calls.append(max(seen) + 1 if seen else None)
        return since_calls[-1]

    sub = Recorder()

    async def on_event(url: str, event: dict[str, Any]) -> None:
        seen.append(event["created_at"])
        await sub.on_event(url, event)

    first = sign_event(nostr_keys, content="before", created_at=now - 100)
    missed = [sign_event(nostr_keys, content=f"missed {i}", created_at=now - 50 + i) for i in range(3)]
    reader = RelayPool([relay.url], on_event=on_event, on_eose=sub.on_eose, **FAST)
    async with reader:
        reader.set_subscription("feed", author_filter(nostr_keys), since_provider=since_provider)
        await eventually(lambda: len(sub.eose) == 1)
        async with Recorder().pool([relay.url]) as writer:
            await eventually(lambda: writer.connected_urls() == [relay.url])
            assert await writer.publish(first) == {relay.url: PublishResult(True, "")}
        await eventually(lambda: len(sub.events) == 1)

        # when the relay dies and its database receives events through another relay process
        relay.kill()
        await eventually(lambda: not reader.health()[relay.url].connected)
        twin = py_relay_factory(db_path=relay.db_path)
        async with Recorder().pool([twin.url]) as writer:
            await eventually(lambda: writer.connected_urls() == [twin.url])
            for event in missed:
                assert await writer.publish(event) == {twin.url: PublishResult(True, "")}
        twin.kill()
        await relay.arestart()

        # then the resubscription (since = newest seen + 1) delivers exactly the missed events
        await eventually(lambda: len(sub.eose) == 2, timeout_s=10)
        await eventually(lambda: len(sub.events) == 4)

    assert sub.events[0] == (relay.url, first)
    assert sorted((e for _, e in sub.events[1:]), key=lambda e: e["created_at"]) == missed
    assert since_calls == [None, now - 99]
    assert reader.health()[relay.url].reconnects == 1


async def test_refused_event_reports_the_relays_reason(local_relay, nostr_keys):
    sub, pub = Recorder(), Recorder()
    async with sub.pool([local_relay.url]) as reader, pub.pool([local_relay.url]) as writer:
        reader.set_subscription("feed", author_filter(nostr_keys))
        await eventually(lambda: len(sub.eose) == 1 and writer.connected_urls() == [local_relay.url])
        forged = with_bad_signature(sign_event(nostr_keys, content="forged"))

        results = await writer.publish(forged)

        assert results == {local_relay.url: PublishResult(False, "invalid: invalid event signature")}
        health = writer.health()[local_relay.url]
        assert (health.ok_count, health.refused_count) == (0, 1)
        # a valid event sent afterwards is the only one the subscriber ever sees
        valid = sign_event(nostr_keys, content="valid")
        assert await writer.publish(valid) == {local_relay.url: PublishResult(True, "")}
        await eventually(lambda: len(sub.events) == 1)
        assert sub.events == [(local_relay.url, valid)]


async def test_refusal_without_event_id_is_matched_to_the_publish(py_relay, nostr_keys):
    # nostr-relay answers refusals with ["OK", "", false, reason]
    pub = Recorder()
    async with pub.pool([py_relay.url]) as writer:
        await eventually(lambda: writer.connected_urls() == [py_relay.url])
        oversize = sign_event(nostr_keys, content="x" * 70_000)

        results = await writer.publish(oversize, timeout_s=5)

    reason = "invalid: 280 characters should be enough for anybody"
    assert results == {py_relay.url: PublishResult(False, reason)}
    assert pub.oks == [(py_relay.url, oversize["id"], False, reason)]
    assert writer.health()[py_relay.url].refused_count == 1


async def test_publish_does_not_wait_for_down_or_silent_relays(local_relay, nostr_keys):
    dead_url = f"ws://127.0.0.1:{free_port()}"
    held: list[asyncio.StreamWriter] = []
    blackhole = await asyncio.start_server(lambda r, w: held.append(w), "127.0.0.1", 0)  # TCP up, no handshake
    blackhole_url = f"ws://127.0.0.1:{blackhole.sockets[0].getsockname()[1]}"
    async with FakeRelay() as silent:
        urls = [local_relay.url, dead_url, blackhole_url, silent.url]
        pub = Recorder()
        async with pub.pool(urls, connect_timeout_s=30) as writer:
            await eventually(lambda: sorted(writer.connected_urls()) == sorted([local_relay.url, silent.url]))
            event = sign_event(nostr_keys, content="partial")
            started = time.monotonic()

            results = await writer.publish(event, timeout_s=0.5)

            elapsed = time.monotonic() - started
    for writer_side in held:
        writer_side.close()
    blackhole.close()
    await blackhole.wait_closed()
    assert results == {
        local_relay.url: PublishResult(True, ""),
        dead_url: PublishResult(None, "not connected"),
        blackhole_url: PublishResult(None, "not connected"),
        silent.url: PublishResult(None, "timeout: no OK within 0.5s"),
    }
    assert elapsed < 1.5
    assert silent.frames("EVENT") == [["EVENT", event]]


async def test_relay_closing_mid_publish_answers_none_and_reconnects(nostr_keys):
    async def script(connection, frame):
        if frame[0] == "EVENT" and len(relay.frames("EVENT")) == 1:
            await connection.close(1000, "bye")

    relay = FakeRelay(script)
    pub = Recorder()
    async with relay, pub.pool([relay.url]) as writer:
        await eventually(lambda: writer.connected_urls() == [relay.url])

        results = await writer.publish(sign_event(nostr_keys, content="cut"), timeout_s=5)

        await eventually(lambda: writer.health()[relay.url].reconnects == 1)
    assert results == {relay.url: PublishResult(None, "closed by the relay: 1000 bye")}
    assert pub.health_changes == [(relay.url, True), (relay.url, False), (relay.url, True), (relay.url, False)]


async def test_set_relays_switches_relays_while_running(local_relay, nostr_keys):
    other = InProcessLocalRelay()
    await other.start()
    sub, pub = Recorder(), Recorder()
    try:
        async with sub.pool([local_relay.url]) as reader, pub.pool([other.url]) as writer:
            reader.set_subscription("feed", author_filter(nostr_keys))
            await eventually(lambda: sub.eose == [(local_relay.url, "feed")])

            await reader.set_relays([other.url])

            assert list(reader.health()) == [other.url]
            assert reader.connected_urls() == []
            await eventually(lambda: sub.eose == [(local_relay.url, "feed"), (other.url, "feed")])
            await eventually(lambda: writer.connected_urls() == [other.url])
            event = sign_event(nostr_keys, content="moved")
            assert await writer.publish(event) == {other.url: PublishResult(True, "")}
            await eventually(lambda: len(sub.events) == 1)
            assert sub.events == [(other.url, event)]
            assert await reader.publish(event) == {other.url: PublishResult(True, "duplicate: already have this event")}
    finally:
        other.shutdown()


async def test_malformed_frames_are_dropped_and_counted(nostr_keys):
    valid = sign_event(nostr_keys, content="ok")
    bad_frames: list[str | bytes] = [
        "not json",
        "{}",
        "[]",
        "[1, 2]",
        '["EVENT"]',
        '["EVENT", "feed", {"id": 1}]',
        json.dumps(["EVENT", "feed", {**valid, "created_at": "yesterday"}]),
        json.dumps(["EVENT", "feed", {**valid, "kind": True}]),
        '["OK", "abc"]',
        '["OK", "abc", "yes", ""]',
        '["NOTICE", 5]',
        '["CLOSED"]',
        b'["NOTICE", "binary"]',
        json.dumps(["EVENT", "feed", {**valid, "content": "x" * 7_000}]),  # above 6,000 bytes
    ]

    async def script(connection, frame):
        if frame[0] == "REQ":
            for raw in bad_frames:
                await connection.send(raw)
            await connection.send(json.dumps(["NOTICE", "still here"]))
            await connection.send(json.dumps(["AUTH", "challenge"]))  # ignored, not malformed
            await connection.send(json.dumps(["EVENT", "feed", valid]))

    sub = Recorder()
    async with FakeRelay(script) as relay, sub.pool([relay.url]) as reader:
        reader.set_subscription("feed", author_filter(nostr_keys))
        await eventually(lambda: len(sub.events) == 1)
        health = reader.health()[relay.url]

    assert sub.events == [(relay.url, valid)]
    assert (health.malformed, health.connected, health.reconnects) == (len(bad_frames), True, 0)
    assert health.notices == ["still here"]


async def test_req_frames_carry_filters_and_since(nostr_keys):
    pubkey = nostr_keys.public_key().to_hex()
    inbox = [{"kinds": [14], "#p": [pubkey], "limit": 0}]
    async with FakeRelay() as relay, Recorder().pool([relay.url]) as reader:
        reader.set_subscription("inbox", inbox)
        reader.set_subscription("book", [{"kinds": [38383], "authors": [pubkey]}], since_provider=lambda: 1_700_000_000)
        await eventually(lambda: len(relay.frames("REQ")) == 2)
        reader.remove_subscription("book")
        await eventually(lambda: len(relay.frames("CLOSE")) == 1)

    assert relay.received == [
        ["REQ", "inbox", {"kinds": [14], "#p": [pubkey], "limit": 0}],
        ["REQ", "book", {"kinds": [38383], "authors": [pubkey], "since": 1_700_000_000}],
        ["CLOSE", "book"],
    ]


async def test_a_relay_that_accepts_compression_is_offered_none():
    """FakeRelay accepts permessage-deflate, as websockets' server and strfry do by default: the
    pool's connection does not offer it, so every frame goes uncompressed both ways."""
    async with FakeRelay() as relay, Recorder().pool([relay.url]) as reader:
        reader.set_subscription("inbox", [{"kinds": [14]}])
        await eventually(lambda: len(relay.frames("REQ")) == 1)
        (connection,) = relay.connections
        assert connection.request.headers.get_all("Sec-WebSocket-Extensions") == []
        assert connection.protocol.extensions == []


async def test_closed_subscription_is_resent_unless_the_reason_is_final():
    async def script(connection, frame):
        if frame[0] == "REQ" and frame[1] == "auth":
            await connection.send(json.dumps(["CLOSED", "auth", "auth-required: log in first"]))
        elif frame[0] == "REQ" and len([f for f in relay.frames("REQ") if f[1] == "flaky"]) == 1:
            await connection.send(json.dumps(["CLOSED", "flaky", "error: shutting down idle subscriptions"]))

    relay = FakeRelay(script)
    async with relay, Recorder().pool([relay.url], backoff_initial_s=0.01) as reader:
        reader.set_subscription("auth", [{"kinds": [1]}])
        reader.set_subscription("flaky", [{"kinds": [1]}])
        await eventually(lambda: len(relay.frames("REQ")) == 3)
        await asyncio.sleep(0.2)  # time for a wrongly re-sent "auth" REQ to show up
        health = reader.health()[relay.url]

    assert [f[1] for f in relay.frames("REQ")] == ["auth", "flaky", "flaky"]
    assert health.last_closed == "flaky: error: shutting down idle subscriptions"


async def test_failing_on_event_does_not_stop_intake(local_relay, nostr_keys):
    delivered: list[str] = []

    async def on_event(url: str, event: dict[str, Any]) -> None:
        if event["content"] == "poison":
            raise RuntimeError("handler bug")
        delivered.append(event["content"])

    eose = Recorder()
    reader = RelayPool([local_relay.url], on_event=on_event, on_eose=eose.on_eose, **FAST)
    async with reader, Recorder().pool([local_relay.url]) as writer:
        reader.set_subscription("feed", author_filter(nostr_keys))
        await eventually(lambda: len(eose.eose) == 1 and writer.connected_urls() == [local_relay.url])
        for content in ("poison", "fine"):
            await writer.publish(sign_event(nostr_keys, content=content))
        await eventually(lambda: delivered == ["fine"])


async def test_burst_of_1000_events_reaches_the_subscriber(local_relay, nostr_keys):
    events = [sign_event(nostr_keys, content=f"burst {i}") for i in range(1000)]
    sub = Recorder()
    async with sub.pool([local_relay.url]) as reader, Recorder().pool([local_relay.url]) as writer:
        reader.set_subscription("feed", [{"kinds": [1], "authors": [nostr_keys.public_key().to_hex()], "limit": 0}])
        await eventually(lambda: len(sub.eose) == 1 and writer.connected_urls() == [local_relay.url])

        results = await asyncio.gather(*(writer.publish(e) for e in events))

        assert results == [{local_relay.url: PublishResult(True, "")}] * 1000
        await eventually(lambda: len(sub.events) == 1000, timeout_s=15)
    assert sorted(e["id"] for _, e in sub.events) == sorted(e["id"] for e in events)
    assert reader.health()[local_relay.url].events_received == 1000


async def test_stop_cancels_every_task(local_relay):
    baseline = asyncio.all_tasks()
    pool = Recorder().pool([local_relay.url, f"ws://127.0.0.1:{free_port()}"])
    await pool.start()
    pool.set_subscription("feed", [{"kinds": [1], "limit": 0}])
    await eventually(lambda: pool.connected_urls() == [local_relay.url])

    await pool.stop()

    assert asyncio.all_tasks() == baseline
    assert [h.connected for h in pool.health().values()] == [False, False]


@pytest.mark.parametrize(
    ("_case", "raw", "expected"),
    [
        ("trailing slash", "wss://relay.example/", "wss://relay.example"),
        ("path kept", "wss://relay.example/nostr/", "wss://relay.example/nostr/"),
        ("blanks", "  ws://127.0.0.1:7000 ", "ws://127.0.0.1:7000"),
    ],
)
def test_relay_urls_are_normalized(_case, raw, expected):
    pool = RelayPool([raw, expected], on_event=Recorder().on_event)
    assert pool.urls == [expected]


def test_rejects_non_websocket_url():
    with pytest.raises(ValueError, match="not a websocket relay url"):
        RelayPool(["https://relay.example"], on_event=Recorder().on_event)


async def test_publish_many_sends_the_frames_in_order_and_answers_per_event_and_relay(local_relay, nostr_keys):
    dead_url = f"ws://127.0.0.1:{free_port()}"
    async with FakeRelay() as silent:
        urls = [local_relay.url, dead_url, silent.url]
        pub = Recorder()
        async with pub.pool(urls) as writer:
            await eventually(lambda: sorted(writer.connected_urls()) == sorted([local_relay.url, silent.url]))
            first, second = (sign_event(nostr_keys, content=content) for content in ("one", "two"))
            frames = [(event["id"], json.dumps(["EVENT", event], separators=(",", ":"))) for event in (first, second)]

            results = await writer.publish_many([*frames, frames[0]], timeout_s=0.5)

    timeout = PublishResult(None, "timeout: no OK within 0.5s")
    assert (
        results[:2]
        == [
            {
                local_relay.url: PublishResult(True, ""),
                dead_url: PublishResult(None, "not connected"),
                silent.url: timeout,
            }
        ]
        * 2
    )
    # The same event twice: both wait on the first OK for its id.
    assert results[2] == results[0]
    assert silent.frames("EVENT") == [["EVENT", first], ["EVENT", second], ["EVENT", first]]
    assert writer.health()[local_relay.url].ok_count == 3
