"""The intake's adaptive coalescing (nostrbridge.bridge.coalesce, docs/PERFORMANCE.md issue 20):
light traffic keeps the 10 ms window, a sustained arrival rate grows it up to 30 ms, a full batch
is stored at once, and each batch's window counts from its own first event."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from nostrbridge.bridge.coalesce import Coalescing
from tests.nostrbridge.test_bridge_units import IntakeProbe, orders_event


def feed(coalescing: Coalescing, batches: list[tuple[float, int]]) -> list[float]:
    """Take each (time, events) batch in turn; the window decided after each."""
    windows = []
    for now_s, events in batches:
        coalescing.taken(events, now_s)
        windows.append(round(coalescing.window_s(), 6))
    return windows


@pytest.mark.parametrize(
    ("rate_per_s", "window_s"),
    [(0.0, 0.01), (100.0, 0.01), (137.5, 0.015), (175.0, 0.02), (250.0, 0.03), (5_000.0, 0.03)],
)
def test_window_grows_linearly_from_the_light_rate_to_the_busy_rate(rate_per_s, window_s):
    coalescing = Coalescing()
    coalescing.rate_per_s = rate_per_s

    assert coalescing.window_s() == pytest.approx(window_s)


def test_rate_is_the_batches_events_over_their_interval_decayed_by_the_horizon():
    coalescing = Coalescing()

    coalescing.taken(7, 100.0)  # the first batch has no interval: no rate yet
    assert coalescing.rate_per_s == 0.0
    coalescing.taken(15, 100.05)  # 300/s over one horizon
    assert coalescing.rate_per_s == pytest.approx((1 - math.exp(-1)) * 300)
    coalescing.taken(0, 100.05)  # no time passed: nothing to learn
    assert coalescing.rate_per_s == pytest.approx((1 - math.exp(-1)) * 300)


def test_steady_300_per_second_reaches_the_busy_window_in_eight_batches():
    # 300/s spread evenly with the light window: a batch of 4 every 13.3 ms (about 0.1 s in all).
    windows = feed(Coalescing(), [(round(k * 0.04 / 3, 6), 4) for k in range(8)])

    assert windows == [0.01, 0.01, 0.013201, 0.018694, 0.022901, 0.026123, 0.028591, 0.03]


def test_light_traffic_keeps_the_light_window_and_a_burst_moves_it_a_little():
    # 100/s: one event every 10 ms, then three within 5 ms, then one every 10 ms again.
    batches = [(0.01 * k, 1) for k in range(10)] + [(0.095, 3)] + [(0.1 + 0.01 * k, 1) for k in range(1, 6)]

    windows = feed(Coalescing(), batches)

    assert windows[:10] == [0.01] * 10
    assert windows[10:] == [0.01435, 0.012071, 0.011695, 0.011388, 0.011136, 0.01093]


def test_a_pause_brings_the_first_events_back_to_the_light_window():
    coalescing = Coalescing()
    feed(coalescing, [(k * 0.033, 10) for k in range(20)])  # 300/s with the busy window
    assert coalescing.window_s() == pytest.approx(0.03)

    coalescing.taken(1, 19 * 0.033 + 0.5)  # one event half a second later

    assert coalescing.window_s() == pytest.approx(0.01)
    assert coalescing.rate_per_s == pytest.approx(2.0 + 300 * math.exp(-10), rel=1e-3)  # 1 event in 0.5 s


def watch_stores(probe: IntakeProbe) -> asyncio.Event:
    """An event set after each store (clear it to wait for the next)."""
    stored = asyncio.Event()
    plain_store = probe.intake._store

    async def store(batch, checked):
        result = await plain_store(batch, checked)
        stored.set()
        return result

    probe.intake._store = store
    return stored


async def _stored(probe: IntakeProbe, stored: asyncio.Event, batches: int) -> None:
    while len(probe.stored) < batches:
        stored.clear()
        await stored.wait()


@pytest.mark.django_db
async def test_intake_waits_the_window_from_its_first_event():
    probe = IntakeProbe(coalescing=Coalescing(light_window_s=0.2))
    stored = watch_stores(probe)
    task = asyncio.create_task(probe.intake.run())
    started = time.monotonic()
    await probe.intake.on_event("ws://a", orders_event())
    await probe.intake.on_event("ws://a", orders_event())
    try:
        await asyncio.wait_for(stored.wait(), 5)
        waited_s = time.monotonic() - started
    finally:
        await probe.intake.stop(task)

    assert [len(batch) for batch in probe.stored] == [2]
    assert waited_s >= 0.2


@pytest.mark.django_db
async def test_a_full_batch_is_stored_at_once():
    probe = IntakeProbe(coalescing=Coalescing(light_window_s=30.0, full_batch=3))
    stored = watch_stores(probe)
    task = asyncio.create_task(probe.intake.run())
    await probe.intake.on_event("ws://a", orders_event())
    await asyncio.sleep(0.05)  # the intake now waits out its 30 s window
    for _ in range(3):
        await probe.intake.on_event("ws://a", orders_event())
    try:
        await asyncio.wait_for(_stored(probe, stored, 1), 5)  # not 30 s: the third event ends the wait
    finally:
        await asyncio.wait_for(probe.intake.stop(task), 5)  # stop ends a window too

    assert [len(batch) for batch in probe.stored][:1] == [4]  # everything buffered when it ended


@pytest.mark.django_db
async def test_events_arriving_during_a_store_wait_their_own_window():
    release, storing = asyncio.Event(), asyncio.Event()
    probe = IntakeProbe(coalescing=Coalescing(light_window_s=0.15))
    stored = watch_stores(probe)
    stored_at: list[float] = []
    watched_store = probe.intake._store

    async def slow_store(batch, checked):
        stored_at.append(time.monotonic())
        storing.set()
        if len(stored_at) == 1:
            await release.wait()
        return await watched_store(batch, checked)

    probe.intake._store = slow_store
    task = asyncio.create_task(probe.intake.run())
    await probe.intake.on_event("ws://a", orders_event())
    await asyncio.wait_for(storing.wait(), 5)
    await probe.intake.on_event("ws://a", orders_event())  # during the first store
    second_arrived = time.monotonic()
    release.set()
    try:
        await asyncio.wait_for(_stored(probe, stored, 2), 5)
    finally:
        await probe.intake.stop(task)

    assert [len(batch) for batch in probe.stored] == [1, 1]
    assert stored_at[1] - second_arrived >= 0.15
