"""Signed NIP-01 events as plain dicts, made with nostr-sdk (the reference implementation)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from nostr_sdk import EventBuilder, Keys, Kind, Tag, Timestamp


def sign_event(
    keys: Keys,
    *,
    kind: int = 1,
    content: str = "",
    tags: Sequence[Sequence[str]] = (),
    created_at: int | None = None,
) -> dict[str, Any]:
    builder = EventBuilder(Kind(kind), content).tags([Tag.parse(list(tag)) for tag in tags])
    if created_at is not None:
        builder = builder.custom_created_at(Timestamp.from_secs(created_at))
    return json.loads(builder.finalize(keys).as_json())


def with_bad_signature(event: dict[str, Any]) -> dict[str, Any]:
    """The same event with its signature's last byte flipped (id still matches the content)."""
    sig = event["sig"]
    return {**event, "sig": sig[:-2] + format(int(sig[-2:], 16) ^ 0xFF, "02x")}
