"""The intake's per-message memory is bounded (the memory soak, docs/PERFORMANCE.md): the recent-id
memory keeps at most RECENT_IDS ids, and past HIGH_WATER verified-but-unstored events the relay
callback waits until a store makes room, instead of the buffer growing with an overloaded
database."""

from __future__ import annotations

import asyncio

import pytest

from nostrbridge.bridge import intake as intake_module
from tests.nostrbridge.test_bridge_units import IntakeProbe, orders_event


@pytest.mark.django_db
async def test_intake_remembers_only_the_newest_recent_ids(monkeypatch):
    monkeypatch.setattr(intake_module, "RECENT_IDS", 3)
    probe = IntakeProbe()
    events = [orders_event() for _ in range(5)]

    for event in events:
        await probe.intake.on_event("ws://a", event)

    assert list(probe.intake._recent) == [event["id"] for event in events[2:]]
    assert probe.intake.accepted == 5


@pytest.mark.django_db
async def test_intake_waits_at_the_high_water_mark_until_a_store_makes_room(monkeypatch):
    monkeypatch.setattr(intake_module, "HIGH_WATER", 2)
    probe = IntakeProbe()
    first, second, third = (orders_event() for _ in range(3))

    await probe.intake.on_event("ws://a", first)
    blocked = asyncio.create_task(probe.intake.on_event("ws://a", second))
    for _ in range(5):
        await asyncio.sleep(0)
    assert (blocked.done(), probe.intake.pending) == (False, 2)

    await probe.intake.flush()
    await asyncio.wait_for(blocked, 5)
    await probe.intake.on_event("ws://a", third)

    assert (probe.intake.pending, [len(batch) for batch in probe.stored]) == (1, [2])
