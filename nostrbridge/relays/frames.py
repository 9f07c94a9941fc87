"""Relay-to-client frames (NIP-01): shape checks and the small value types the pool returns.

Only the JSON shape is checked here. Event ids and signatures are verified later, by the
intake pipeline, because a relay is an untrusted transport either way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

HEX64 = re.compile(r"[0-9a-f]{64}")
HEX128 = re.compile(r"[0-9a-f]{128}")
# NIP-01 event fields and their JSON types; bool is excluded explicitly below.
EVENT_FIELDS: dict[str, type] = {
    "id": str,
    "pubkey": str,
    "created_at": int,
    "kind": int,
    "tags": list,
    "content": str,
    "sig": str,
}


class MalformedFrame(ValueError):
    """A frame that is not valid NIP-01; the pool logs it, counts it and reads on."""


@dataclass(frozen=True)
class PublishResult:
    """One relay's answer to a publish: True/False from its OK frame, None = no answer."""

    accepted: bool | None
    message: str


@dataclass
class RelayHealth:
    """Counters and last-seen times for one relay; `RelayPool.health()` hands out copies."""

    url: str
    connected: bool = False
    last_connected_at: datetime | None = None
    last_event_at: datetime | None = None
    last_error: str = ""
    last_error_at: datetime | None = None
    events_received: int = 0
    ok_count: int = 0
    refused_count: int = 0
    reconnects: int = 0
    malformed: int = 0
    notices: list[str] = field(default_factory=list)
    last_closed: str = ""


@dataclass(frozen=True)
class Subscription:
    """A REQ the pool keeps open on every relay and re-sends after each reconnect."""

    sub_id: str
    filters: tuple[dict[str, Any], ...]
    # Called at every (re)send; its value replaces `since` in each filter so a reconnect
    # can catch up on what was stored while the pool was away.
    since_provider: Callable[[], int | None] | None = None

    def req_frame(self) -> str:
        since = self.since_provider() if self.since_provider else None
        filters = [dict(f, since=since) if since is not None else f for f in self.filters]
        return dumps(["REQ", self.sub_id, *filters])


EventCallback = Callable[[str, dict[str, Any]], Awaitable[None]]


def dumps(message: list[Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def frame_too_large(raw: str, limit: int) -> bool:
    # len(str) <= utf-8 length <= 4 * len(str): only encode when the answer is in doubt.
    if len(raw) > limit:
        return True
    return len(raw) * 4 > limit and len(raw.encode()) > limit


def parse_frame(raw: str | bytes) -> list[Any]:
    """Decode one relay frame; raise MalformedFrame unless it is a well-shaped NIP-01 message.

    Unknown message types pass through untouched (the caller ignores them).
    """
    if not isinstance(raw, str):
        raise MalformedFrame("binary frame")
    try:
        # In C. orjson reads an integer beyond 64 bits as a float (json: an int); no field a frame
        # check accepts may be a float, so such an event is refused here as mistyped (tested).
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:  # what orjson refuses and `json` reads (NaN, Infinity, lone surrogates)
            message = json.loads(raw)
        except ValueError as exc:
            raise MalformedFrame("not JSON") from exc
    if not isinstance(message, list) or not message or not isinstance(message[0], str):
        raise MalformedFrame("not an array starting with a type")
    check = _CHECKS.get(message[0])
    if check is not None:
        check(message)
    return message


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise MalformedFrame(reason)


def _check_event_frame(message: list[Any]) -> None:
    _require(len(message) >= 3 and isinstance(message[1], str), "EVENT without subscription id")
    event = message[2]
    _require(isinstance(event, dict), "EVENT payload is not an object")
    for name, kind in EVENT_FIELDS.items():
        value = event.get(name)
        _require(isinstance(value, kind) and not isinstance(value, bool), f"event field {name!r} missing or mistyped")
    _require(HEX64.fullmatch(event["id"]) is not None, "event id is not 64 hex")
    _require(HEX64.fullmatch(event["pubkey"]) is not None, "event pubkey is not 64 hex")
    _require(HEX128.fullmatch(event["sig"]) is not None, "event sig is not 128 hex")
    _require(all(isinstance(tag, list) for tag in event["tags"]), "event tags are not arrays")


def _check_ok_frame(message: list[Any]) -> None:
    _require(len(message) >= 3, "OK too short")
    _require(isinstance(message[1], str) and isinstance(message[2], bool), "OK fields mistyped")
    _require(len(message) == 3 or isinstance(message[3], str), "OK message is not a string")


def _check_text_frame(message: list[Any]) -> None:
    # EOSE, CLOSED and NOTICE all carry one string; CLOSED may add a reason string.
    _require(len(message) >= 2 and isinstance(message[1], str), f"{message[0]} field mistyped")
    _require(len(message) == 2 or isinstance(message[2], str), f"{message[0]} reason is not a string")


_CHECKS: dict[str, Callable[[list[Any]], None]] = {
    "EVENT": _check_event_frame,
    "OK": _check_ok_frame,
    "EOSE": _check_text_frame,
    "CLOSED": _check_text_frame,
    "NOTICE": _check_text_frame,
}
