"""The bridge's parts without relays: intake checks, catch-up `since`, consumer batches and
leases, the publisher's retry bookkeeping, relay health rows."""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone

from mostro_site.config import env_node_config
from nostrbridge import outbox_rounds
from nostrbridge.bridge import group as bridge_group
from nostrbridge.bridge import worker as bridge_worker
from nostrbridge.bridge.coalesce import Coalescing
from nostrbridge.bridge.health import HealthTracker, relay_health_save
from nostrbridge.bridge.intake import (
    GIFT_WRAP_BACKDATE_S,
    SUB_ID,
    CatchUp,
    Intake,
    store_batch,
)
from nostrbridge.bridge.worker import drain_batch, host_tag, release_dead_leases
from nostrbridge.dispatch import CATCH_UP_WINDOW_SECONDS
from nostrbridge.inbox import inbox_claim
from nostrbridge.models import (
    InboundEvent,
    InboundStatus,
    OutboundDelivery,
    OutboundMessage,
    OutboundStatus,
    RelayHealth,
)
from nostrbridge.node_identity import node_pubkey
from nostrbridge.outbox import enqueue_event
from nostrbridge.outbox_rounds import NOT_CONNECTED, Claimed, PublishPolicy, outbox_claim, outbox_record
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.nip01 import leading_zero_bits, mine_pow, sign_event
from nostrbridge.protocol.payloads import IdsPayload
from nostrbridge.protocol.transport import wrap_v2
from nostrbridge.relays import PublishResult
from nostrbridge.relays import RelayHealth as PoolHealth


def orders_event(*, trade: Keys | None = None, created_at: int | None = None) -> dict:
    message = Message.new(Action.ORDERS, request_id=1, payload=IdsPayload([uuid.uuid4()]))
    return wrap_v2(message, trade or Keys.generate(), node_pubkey(), sign=False, created_at=created_at).to_dict()


# -- intake ---------------------------------------------------------------------------------
class IntakeProbe:
    def __init__(self, *, coalescing: Coalescing | None = None, **config: object) -> None:
        self.config = replace(env_node_config(), **config)
        self.catch_up = CatchUp(anchor=0, protocol_version=self.config.protocol_version)
        self.stored: list[list[tuple[str, dict, bool]]] = []
        self.checked: list[dict] = []
        self.nudges = 0

        async def store(batch: list[tuple[str, dict, bool]], checked: dict) -> int:
            self.stored.append(list(batch))
            self.checked.append(checked)
            return len(batch)

        def nudge() -> None:
            self.nudges += 1

        self.intake = Intake(
            node_pubkey=node_pubkey(),
            catch_up=self.catch_up,
            config=lambda: self.config,
            nudge=nudge,
            store=store,
            coalescing=coalescing,
        )


@pytest.mark.django_db
async def test_intake_stores_only_events_that_pass_the_cheap_checks():
    probe = IntakeProbe()
    good = orders_event()
    other_p = {**good, "tags": [["p", "ab" * 32]]}
    two_p = {**good, "tags": [["p", node_pubkey()], ["p", node_pubkey()]]}
    forged = {**orders_event(), "sig": "00" * 64}
    wrong_kind = sign_event(Keys.generate(), kind=1, content="x", tags=[["p", node_pubkey()]], created_at=1).to_dict()
    huge = sign_event(Keys.generate(), kind=14, content="x" * 7000, tags=[["p", node_pubkey()]], created_at=1)

    for event in (good, other_p, two_p, forged, wrong_kind, huge.to_dict()):
        await probe.intake.on_event("ws://a", event)
    await probe.intake.flush()

    assert [[event["id"] for _, event, _ in batch] for batch in probe.stored] == [[good["id"]]]
    assert dict(probe.intake.dropped) == {"p tag": 2, "signature": 1, "kind": 1, "OversizedEvent": 1}
    assert probe.nudges == 1


@pytest.mark.django_db
async def test_intake_enforces_the_configured_proof_of_work():
    probe = IntakeProbe(pow_bits=8)
    trade = Keys.generate()
    weak = orders_event(trade=trade)
    while leading_zero_bits(weak["id"]) >= 8:  # one random id in 256 meets 8 bits by chance
        weak = orders_event(trade=trade)
    mined = mine_pow(
        trade, kind=14, content=weak["content"], tags=weak["tags"], created_at=weak["created_at"], difficulty=8
    ).to_dict()

    await probe.intake.on_event("ws://a", weak)
    await probe.intake.on_event("ws://a", mined)
    await probe.intake.flush()

    assert [event["id"] for _, event, _ in probe.stored[0]] == [mined["id"]]
    assert dict(probe.intake.dropped) == {"InsufficientPow": 1}


@pytest.mark.django_db
async def test_intake_marks_events_older_than_the_relays_subscription_as_catch_up():
    probe = IntakeProbe()
    for url, connected_at in (("ws://a", 1_000), ("ws://b", 2_000)):
        probe.catch_up.on_connect(url, now=connected_at)
        probe.catch_up.on_eose(url, SUB_ID, now=connected_at)
    event = orders_event(created_at=1_500)  # stored by relay b before the bridge subscribed there

    await probe.intake.on_event("ws://a", event)
    await probe.intake.on_event("ws://b", event)  # the same event again (no second signature check)
    await probe.intake.flush()

    assert [(url, flag) for url, _, flag in probe.stored[0]] == [("ws://a", False), ("ws://b", True)]


@pytest.mark.django_db(transaction=True)
def test_store_batch_keeps_catch_up_flag_and_counts_duplicates():
    live, replayed = orders_event(), orders_event()

    stored = store_batch([("ws://a", live, False), ("ws://a", replayed, True), ("ws://b", live, False)])
    again = store_batch([("ws://c", live, True)])

    assert (stored, again) == (2, 0)
    rows = {row.event_id: row for row in InboundEvent.objects.all()}
    assert (rows[live["id"]].caught_up, rows[live["id"]].seen_count, rows[live["id"]].first_relay) == (
        False,
        3,
        "ws://a",
    )
    assert rows[replayed["id"]].caught_up is True


def test_replay_is_judged_by_eose_and_a_grace_period_on_gift_wrap():
    catch_up = CatchUp(anchor=0, protocol_version=1)
    catch_up.on_connect("ws://a", now=1_000)
    assert catch_up.replayed("ws://a", created_at=5, now=1_001)  # before EOSE
    catch_up.on_eose("ws://a", SUB_ID, now=1_002)
    assert catch_up.replayed("ws://a", created_at=5, now=1_003)  # still draining the pool's queue
    assert not catch_up.replayed("ws://a", created_at=5, now=1_010)  # a wrap's created_at says nothing


# -- since ----------------------------------------------------------------------------------
def test_since_starts_from_the_newest_stored_event_minus_the_slack():
    catch_up = CatchUp(anchor=10_000, protocol_version=2)
    catch_up.track(["ws://a"])
    assert catch_up.since(now=10_100) == 10_000 - 10


def test_since_is_bounded_by_the_catch_up_window_and_never_in_the_future():
    old = CatchUp(anchor=0, protocol_version=2)
    old.track(["ws://a"])
    ahead = CatchUp(anchor=50_000, protocol_version=2)  # a sender whose clock runs ahead
    ahead.track(["ws://a"])
    assert old.since(now=100_000) == 100_000 - CATCH_UP_WINDOW_SECONDS
    assert ahead.since(now=20_000) == 20_000 - 10


def test_since_after_a_disconnect_starts_from_the_moment_the_relay_was_lost():
    catch_up = CatchUp(anchor=1_000, protocol_version=2)
    catch_up.track(["ws://a", "ws://b"])
    catch_up.on_eose("ws://a", SUB_ID)
    catch_up.on_eose("ws://b", SUB_ID)
    catch_up.on_eose("ws://b", "another-subscription")

    catch_up.on_disconnect("ws://a", now=1_200)

    assert catch_up.catching_up("ws://a")
    assert not catch_up.catching_up("ws://b")
    assert catch_up.since(now=1_250) == 1_190
    catch_up.on_eose("ws://a", SUB_ID)
    assert catch_up.since(now=1_300) == 1_290  # nobody to catch up: live only


def test_since_on_gift_wrap_looks_two_days_back():
    catch_up = CatchUp(anchor=1_000_000, protocol_version=1)
    catch_up.track(["ws://a"])
    assert catch_up.since(now=1_000_000) == 1_000_000 - GIFT_WRAP_BACKDATE_S - 10


# -- consumer -------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_drain_batch_processes_claimed_events_and_hands_back_the_rest_on_stop(monkeypatch):
    store_batch([("ws://a", orders_event(), False) for _ in range(3)])
    stop = threading.Event()
    seen: list[int] = []

    def process(pk, *, row, grouped=False, lane=None, checked=None):
        seen.append(pk)
        stop.set()  # a shutdown arrives while the first handler runs
        InboundEvent.objects.filter(pk=pk).update(status=InboundStatus.DONE)
        return InboundStatus.DONE

    monkeypatch.setattr(bridge_group, "process_inbound", process)

    assert drain_batch(worker_id="w:1:a", limit=10, stop=stop) == 3

    rows = list(InboundEvent.objects.order_by("pk").values_list("status", "attempts"))
    assert rows == [(InboundStatus.DONE, 1), (InboundStatus.RECEIVED, 0), (InboundStatus.RECEIVED, 0)]
    assert InboundEvent.objects.filter(status=InboundStatus.RECEIVED, locked_until__isnull=False).count() == 0
    assert len(seen) == 1


@pytest.mark.django_db(transaction=True)
def test_event_crashing_outside_its_handler_is_retried_then_parked(monkeypatch):
    store_batch([("ws://a", orders_event(), False)])

    def explode(pk, *, row, grouped=False, lane=None, checked=None):
        raise UnicodeDecodeError("utf-8", b"", 0, 1, "poison")

    monkeypatch.setattr(bridge_worker, "process_inbound", explode)  # alone, after the group rolled back
    monkeypatch.setattr(bridge_group, "process_inbound", explode)
    for _ in range(3):
        drain_batch(worker_id="w:1:a", limit=10, stop=threading.Event())

    row = InboundEvent.objects.get()
    assert (row.status, row.attempts) == (InboundStatus.PARKED, 3)
    assert row.last_error.startswith("UnicodeDecodeError")


@pytest.mark.django_db(transaction=True)
def test_leases_of_a_dead_bridge_on_this_host_are_released_at_start():
    store_batch([("ws://a", orders_event(), False) for _ in range(3)])
    here = host_tag()
    dead, alive, elsewhere = f"{here}:999999:aa", f"{here}:{os.getpid()}:bb", f"{here}x:1:cc"  # another namespace
    for worker in (dead, alive, elsewhere):
        inbox_claim(worker_id=worker, limit=1)

    assert release_dead_leases() == 1

    rows = dict(InboundEvent.objects.values_list("locked_by", "status"))
    assert rows == {dead: InboundStatus.RECEIVED, alive: InboundStatus.PROCESSING, elsewhere: InboundStatus.PROCESSING}


# -- publisher ------------------------------------------------------------------------------
POLICY = PublishPolicy(timeout_s=1.0, retry_base_s=2.0, max_attempts=3)
A, B = "ws://a", "ws://b"


def queued_event() -> OutboundMessage:
    event = sign_event(Keys.generate(), kind=1, content="x", tags=[], created_at=1)
    return enqueue_event(event=event)


def publish_round(results: dict[str, PublishResult], now=None) -> OutboundMessage:
    now = now or timezone.now()
    (claimed,) = outbox_claim(limit=10, lease_s=POLICY.lease_s, now=now)
    outbox_record(outcomes=[(claimed, results)], policy=POLICY, now=now)
    return OutboundMessage.objects.get(pk=claimed.pk)


def deliveries(message: OutboundMessage) -> dict[str, tuple]:
    rows = OutboundDelivery.objects.filter(message=message)
    return {row.relay_url: (row.accepted, row.relay_message, row.attempts) for row in rows}


@pytest.mark.django_db
def test_message_accepted_by_one_relay_is_sent_and_retried_on_the_other():
    message = queued_event()
    now = timezone.now()

    first = publish_round({A: PublishResult(True, ""), B: PublishResult(False, "blocked: no")}, now)
    assert outbox_claim(limit=10, lease_s=5, now=now + timedelta(seconds=1)) == []  # backing off
    later = now + timedelta(seconds=2)
    second = publish_round({A: PublishResult(True, "duplicate: have it"), B: PublishResult(True, "")}, later)

    assert (first.status, first.attempts, first.next_attempt_at) == (OutboundStatus.SENT, 1, now + timedelta(seconds=2))
    assert first.last_error == "ws://b: blocked: no"
    assert (second.status, second.attempts, second.next_attempt_at, second.sent_at) == (
        OutboundStatus.SENT,
        2,
        None,
        first.sent_at,
    )
    assert deliveries(message) == {A: (True, "", 1), B: (True, "", 2)}


@pytest.mark.django_db
def test_message_no_relay_accepts_is_parked_after_the_budget():
    message = queued_event()
    now = timezone.now()
    refused = {A: PublishResult(False, "invalid: nope"), B: PublishResult(None, "timeout: no OK within 1s")}

    for attempt in range(3):
        row = publish_round(refused, now + timedelta(seconds=100 * attempt))

    assert (row.status, row.attempts, row.next_attempt_at) == (OutboundStatus.PARKED, 3, None)
    assert row.last_error == "ws://a: invalid: nope; ws://b: timeout: no OK within 1s"
    assert deliveries(message) == {A: (False, "invalid: nope", 3), B: (None, "timeout: no OK within 1s", 3)}


@pytest.mark.django_db
def test_round_without_a_connected_relay_is_not_an_attempt():
    queued_event()
    now = timezone.now()

    row = publish_round({A: PublishResult(None, NOT_CONNECTED), B: PublishResult(None, "connection lost: reset")}, now)

    assert (row.status, row.attempts, row.next_attempt_at) == (
        OutboundStatus.PENDING,
        0,
        now + timedelta(seconds=0.5),
    )


@pytest.mark.django_db
def test_a_relay_that_has_the_event_is_never_downgraded():
    message = queued_event()
    now = timezone.now()
    publish_round({A: PublishResult(True, ""), B: PublishResult(False, "rate-limited")}, now)

    publish_round({A: PublishResult(None, NOT_CONNECTED), B: PublishResult(True, "")}, now + timedelta(seconds=5))

    assert deliveries(message) == {A: (True, "", 1), B: (True, "", 2)}


@pytest.mark.django_db
def test_a_first_round_one_relay_accepted_is_sent_once_with_nothing_to_retry():
    message = queued_event()
    now = timezone.now()

    row = publish_round({A: PublishResult(True, "")}, now)

    assert (row.status, row.attempts, row.next_attempt_at, row.sent_at, row.last_error) == (
        OutboundStatus.SENT,
        1,
        None,
        now,
        "",
    )
    assert deliveries(message) == {A: (True, "", 1)}


@pytest.mark.parametrize("status", [OutboundStatus.PENDING, OutboundStatus.SENT])
@pytest.mark.parametrize(
    "results",
    [
        {A: PublishResult(True, "")},
        {A: PublishResult(True, "duplicate: have it")},
        {A: PublishResult(False, "blocked: no")},
        {A: PublishResult(None, "timeout: no OK within 1s")},
        {A: PublishResult(None, NOT_CONNECTED)},
        {A: PublishResult(True, ""), B: PublishResult(False, "rate-limited")},
    ],
)
@pytest.mark.parametrize("delivered", [{}, {B: (True, 1)}, {A: (False, 2)}])
def test_the_plan_of_the_common_round_is_the_plan_of_every_round(status, results, delivered):
    claimed = Claimed(pk=1, event={"id": "ab" * 32}, status=status, attempts=1, deliveries=delivered)
    now = timezone.now()

    planned = outbox_rounds._plan(claimed, results, POLICY, now)
    assert planned == outbox_rounds._plan_rounds(claimed, results, POLICY, now)


@pytest.mark.django_db
def test_claims_are_leased_oldest_first():
    first, second = queued_event(), queued_event()
    now = timezone.now()

    claimed = outbox_claim(limit=10, lease_s=15, now=now)

    assert [c.pk for c in claimed] == [first.pk, second.pk]
    assert outbox_claim(limit=10, lease_s=15, now=now + timedelta(seconds=14)) == []
    assert [c.pk for c in outbox_claim(limit=10, lease_s=15, now=now + timedelta(seconds=16))] == [first.pk, second.pk]


# -- health ---------------------------------------------------------------------------------
@pytest.mark.django_db
def test_relay_health_rows_add_up_counters_across_syncs():
    tracker = HealthTracker()
    record = PoolHealth(url=A, connected=True, ok_count=3, refused_count=1, events_received=10)

    relay_health_save(**dict(zip(("changes", "gone"), tracker.changes({A: record}), strict=True)))
    record = replace(record, ok_count=5, refused_count=1, events_received=12, last_error="closed")
    relay_health_save(**dict(zip(("changes", "gone"), tracker.changes({A: record}), strict=True)))
    RelayHealth.objects.filter(relay_url=A).update(ok_count=100)  # another bridge process counted too
    relay_health_save(**dict(zip(("changes", "gone"), tracker.changes({}), strict=True)))

    row = RelayHealth.objects.get(relay_url=A)
    assert (row.ok_count, row.refused_count, row.events_received, row.last_error, row.connected) == (
        100,
        1,
        12,
        "closed",
        False,
    )
