"""Pins the test relays' own behaviour that other tests rely on (raw websockets, no RelayPool)."""

from __future__ import annotations

import json
from typing import Any

from nostr_sdk import Keys
from websockets.asyncio.client import ClientConnection, connect

from tests.relays.events import sign_event, with_bad_signature
from tests.relays.local_relay import LOCAL_RELAY_MAX_EVENTS_PER_REQ


async def send_event(ws: ClientConnection, event: dict[str, Any]) -> list[Any]:
    await ws.send(json.dumps(["EVENT", event]))
    return json.loads(await ws.recv())


async def stored_count(ws: ClientConnection, query: dict[str, Any]) -> int:
    await ws.send(json.dumps(["REQ", "count", query]))
    count = 0
    while json.loads(await ws.recv())[0] == "EVENT":
        count += 1
    await ws.send(json.dumps(["CLOSE", "count"]))
    return count


async def test_local_relay_accepts_mostro_kinds_and_checks_gift_wrap_recipients(local_relay, nostr_keys):
    recipient = Keys.generate().public_key().to_hex()
    dm = sign_event(nostr_keys, kind=14, content="x", tags=[["p", recipient]])
    wrap = sign_event(nostr_keys, kind=1059, content="x", tags=[["p", recipient]])
    bare_wrap = sign_event(nostr_keys, kind=1059, content="x")
    async with connect(local_relay.url) as ws:
        assert await send_event(ws, dm) == ["OK", dm["id"], True, ""]
        assert await send_event(ws, wrap) == ["OK", wrap["id"], True, ""]
        assert await send_event(ws, bare_wrap) == [
            "OK",
            bare_wrap["id"],
            False,
            "blocked: GiftWrap must contain exactly one recipient public key",
        ]


async def test_local_relay_returns_at_most_500_stored_events_per_req(local_relay, nostr_keys):
    async with connect(local_relay.url) as ws:
        for i in range(LOCAL_RELAY_MAX_EVENTS_PER_REQ + 20):
            await ws.send(json.dumps(["EVENT", sign_event(nostr_keys, content=str(i))]))
        for _ in range(LOCAL_RELAY_MAX_EVENTS_PER_REQ + 20):
            await ws.recv()

        assert await stored_count(ws, {"kinds": [1], "limit": 5000}) == LOCAL_RELAY_MAX_EVENTS_PER_REQ


async def test_local_relay_process_forgets_events_on_restart(local_relay_process, nostr_keys):
    event = sign_event(nostr_keys, content="volatile")
    async with connect(local_relay_process.url) as ws:
        assert await send_event(ws, event) == ["OK", event["id"], True, ""]

    await local_relay_process.arestart()

    async with connect(local_relay_process.url) as ws:
        assert await stored_count(ws, {"ids": [event["id"]]}) == 0


async def test_py_relay_keeps_events_across_restart_and_refuses_with_empty_id(py_relay, nostr_keys):
    event = sign_event(nostr_keys, content="durable")
    async with connect(py_relay.url) as ws:
        assert await send_event(ws, event) == ["OK", event["id"], True, ""]

    await py_relay.arestart()

    async with connect(py_relay.url) as ws:
        assert await stored_count(ws, {"ids": [event["id"]]}) == 1
        forged = with_bad_signature(sign_event(nostr_keys, content="forged"))
        assert await send_event(ws, forged) == ["OK", "", False, "invalid: Bad signature"]
