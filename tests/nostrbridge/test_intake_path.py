"""The intake's path (nostrbridge.bridge.intake_trip.store_process_claim): a batch stored already
claimed, processed in the same call, its replies written leased for the publisher, and the
relays' answers to earlier batches recorded with it. It must store exactly what the consumer's
path (store, then claim) stores, answer each request once, let a poison message fail alone, and
give way to older rows. Real `orders` requests through the real dispatch, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.forms.models import model_to_dict
from django.utils import timezone

from nostrbridge import dispatch
from nostrbridge.bridge.intake import store_batch
from nostrbridge.bridge.intake_trip import store_process_claim
from nostrbridge.bridge.worker import drain_batch, store_and_process
from nostrbridge.inbox import LEASE_SECONDS, inbox_claim_rows, inbox_store_claimed
from nostrbridge.models import InboundEvent, InboundStatus, OutboundDelivery, OutboundMessage, OutboundStatus
from nostrbridge.node_identity import node_pubkey
from nostrbridge.outbox import outbox_collect
from nostrbridge.outbox_rounds import PublishPolicy, outbox_claim
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import IdsPayload
from nostrbridge.protocol.transport import wrap_v2
from nostrbridge.relays import PublishResult
from tests.nostrbridge.bridge_helpers import commits_counted

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = "w:1:a"
POLICY = PublishPolicy()
NOW = datetime(2026, 12, 6, 12, 0, 0, 123456, tzinfo=UTC)


class Crash(BaseException):
    """Stands for the process dying mid-batch: nothing in the bridge catches it."""


def requests(count: int) -> tuple[list[tuple[str, dict, bool]], list[str]]:
    """`count` live `orders` requests, each from a fresh trade key, and their senders."""
    items, senders = [], []
    for index in range(count):
        trade = Keys.generate()
        message = Message.new(Action.ORDERS, request_id=index + 1, payload=IdsPayload([uuid.uuid4()]))
        items.append(("ws://a", wrap_v2(message, trade, node_pubkey(), sign=False).to_dict(), False))
        senders.append(trade.public_key_hex)
    return items, senders


def run(items, **kwargs):
    return store_process_claim(
        items, worker_id=WORKER, stop=threading.Event(), network=None, publish=True, policy=POLICY, **kwargs
    )


def inbox() -> list[tuple[str, int, str]]:
    return list(InboundEvent.objects.order_by("pk").values_list("status", "attempts", "drop_reason"))


def replies() -> list[tuple[str, str]]:
    return list(OutboundMessage.objects.order_by("pk").values_list("recipient_pubkey", "action"))


def test_rows_stored_claimed_are_what_the_store_and_the_claim_make(monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    items, _ = requests(2)
    replayed = [(url, event, True) for url, event, _ in requests(1)[0]]
    batch = [*items, items[0], *replayed]  # a copy from another relay, and a replayed event

    store_batch(batch)
    claimed = inbox_claim_rows(worker_id=WORKER, limit=10)
    old = [model_to_dict(row) for row in InboundEvent.objects.order_by("pk")]
    assert [row.pk for row in claimed] == [row["id"] for row in old]
    InboundEvent.objects.all().delete()

    live = inbox_store_claimed(items=[(url, event) for url, event, _ in batch[:3]], worker_id=WORKER)
    caught_up = inbox_store_claimed(items=[(url, event) for url, event, _ in replayed], worker_id=WORKER, catch_up=True)
    new = [model_to_dict(row) for row in InboundEvent.objects.order_by("pk")]

    without_pk = [{key: value for key, value in row.items() if key != "id"} for row in new]
    assert without_pk == [{key: value for key, value in row.items() if key != "id"} for row in old]
    assert new[0]["status"] == InboundStatus.PROCESSING
    assert new[0]["locked_until"] == NOW + timedelta(seconds=LEASE_SECONDS)
    assert (new[0]["seen_count"], new[0]["attempts"], new[2]["caught_up"]) == (2, 1, True)
    # The returned instances are the stored rows, as the claim reads them back.
    assert [model_to_dict(row) for row in live + caught_up] == new


def test_a_batch_is_stored_answered_and_its_replies_leased_in_two_commits(monkeypatch):
    items, senders = requests(3)
    with commits_counted() as commits:
        unclaimed, processed, claimed, recorded = run(items)

    assert (unclaimed, processed, recorded) == (0, 3, True)
    assert len(commits) == 2  # the store, then the group with every reply
    assert inbox() == [(InboundStatus.DONE, 1, "cant-do not_found")] * 3
    assert replies() == [(sender, "cant-do") for sender in senders]
    rows = list(OutboundMessage.objects.order_by("pk"))
    # Leased as the publisher's claim leases them: its claim does not take them again.
    assert [item.pk for item in claimed] == [row.pk for row in rows]
    assert [item.frame for item in claimed] == [f'["EVENT",{row.event_json}]' for row in rows]
    assert all(row.status == OutboundStatus.PENDING and row.next_attempt_at is not None for row in rows)
    assert outbox_claim(limit=10, lease_s=POLICY.lease_s) == []
    # Their lease ends (the process died before publishing): the publisher's claim takes them.
    later = timezone.now() + timedelta(seconds=POLICY.lease_s + 1)
    assert [item.pk for item in outbox_claim(limit=10, lease_s=POLICY.lease_s, now=later)] == [row.pk for row in rows]


def test_older_claimable_rows_go_first_through_the_consumer():
    older, _ = requests(1)
    store_batch(older)  # waiting to be claimed
    items, _ = requests(2)

    assert store_and_process(items, worker_id=WORKER, stop=threading.Event()) == (2, 0, False)
    assert inbox() == [(InboundStatus.RECEIVED, 0, "")] * 3
    assert drain_batch(worker_id=WORKER, limit=10, stop=threading.Event()) == 3
    assert inbox() == [(InboundStatus.DONE, 1, "cant-do not_found")] * 3


def test_a_batch_larger_than_a_claim_goes_through_the_consumer():
    items, _ = requests(3)

    assert store_and_process(items, worker_id=WORKER, stop=threading.Event(), limit=2) == (3, 0, False)
    assert inbox() == [(InboundStatus.RECEIVED, 0, "")] * 3
    assert drain_batch(worker_id=WORKER, limit=2, stop=threading.Event()) == 2


def test_a_poison_message_in_the_batch_fails_alone(monkeypatch):
    items, senders = requests(3)
    real = dispatch.get_handler("orders")

    def poison(ctx) -> None:
        if ctx.sender != senders[1]:
            return real(ctx)
        with ctx.atomic():  # its final transaction: a savepoint in the group
            OutboundMessage.objects.create(event_id="f" * 64, kind=14, recipient_pubkey=ctx.sender, event_json="{}")
            raise RuntimeError("poison")

    monkeypatch.setattr(dispatch, "get_handler", lambda name: poison if name == "orders" else real(name))
    _, processed, claimed, _ = run(items)

    first, failed, last = inbox()
    assert processed == 3
    assert first == last == (InboundStatus.DONE, 1, "cant-do not_found")
    assert failed[:2] == (InboundStatus.RECEIVED, 1)  # retried later through the consumer
    assert replies() == [(senders[0], "cant-do"), (senders[2], "cant-do")]
    # The rolled-back row is not handed to the publisher.
    assert [item.pk for item in claimed] == list(OutboundMessage.objects.order_by("pk").values_list("pk", flat=True))

    monkeypatch.undo()
    assert drain_batch(worker_id=WORKER, limit=10, stop=threading.Event()) == 1
    assert [row[:2] for row in inbox()] == [(InboundStatus.DONE, 1), (InboundStatus.DONE, 2), (InboundStatus.DONE, 1)]
    assert sorted(replies()) == sorted((sender, "cant-do") for sender in senders)


def test_a_crash_after_the_store_leaves_the_rows_to_their_lease(monkeypatch):
    items, senders = requests(2)
    real_reply = dispatch._reply_cant_do

    def dies_after_the_first_reply(ctx, reason, **kwargs) -> None:
        real_reply(ctx, reason, **kwargs)
        raise Crash

    monkeypatch.setattr(dispatch, "_reply_cant_do", dies_after_the_first_reply)
    with pytest.raises(Crash):
        run(items)

    # Stored (committed) before anything was processed; nothing of the group is on disk.
    assert inbox() == [(InboundStatus.PROCESSING, 1, "")] * 2
    assert replies() == []
    monkeypatch.undo()
    InboundEvent.objects.update(locked_until=timezone.now() - timedelta(seconds=1))
    assert drain_batch(worker_id=WORKER, limit=10, stop=threading.Event()) == 2
    assert inbox() == [(InboundStatus.DONE, 2, "cant-do not_found")] * 2
    assert replies() == [(sender, "cant-do") for sender in senders]


@pytest.mark.parametrize("_case", ["with the next store", "the group rolled back, the store kept them"])
def test_relay_answers_are_recorded_once_with_the_next_batch(monkeypatch, _case):
    items, _ = requests(2)
    _, _, claimed, _ = run(items[:1])
    answers = [(item, {"ws://a": PublishResult(True, "")}) for item in claimed]
    if _case != "with the next store":
        real = dispatch.get_handler("orders")

        def breaks_the_group(ctx) -> None:
            with ctx.atomic():  # fails at COMMIT (a deferred foreign key): the group rolls back
                OutboundDelivery.objects.create(message_id=987_654, relay_url="ws://nowhere")

        monkeypatch.setattr(dispatch, "get_handler", lambda name: breaks_the_group if name == "orders" else real(name))

    _, processed, _, recorded = run(items[1:], outcomes=answers)

    assert (processed, recorded) == (1, True)
    first = OutboundMessage.objects.get(pk=claimed[0].pk)
    assert (first.status, first.attempts, first.next_attempt_at) == (OutboundStatus.SENT, 1, None)
    assert list(OutboundDelivery.objects.values_list("message_id", "relay_url", "accepted", "attempts")) == [
        (first.pk, "ws://a", True, 1)
    ]


def test_rows_collected_only_once_their_transaction_commits(monkeypatch):
    from django.db import transaction

    from nostrbridge.outbox import enqueue_cant_do
    from nostrbridge.protocol.enums import CantDoReason

    first, second, third = (Keys.generate().public_key_hex for _ in range(3))
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    with outbox_collect(lease_s=15) as committed:
        with transaction.atomic():
            enqueue_cant_do(recipient_pubkey=first, reason=CantDoReason.NOT_FOUND, request_id=1, order_id=None)
            try:
                with transaction.atomic():
                    enqueue_cant_do(recipient_pubkey=second, reason=CantDoReason.NOT_FOUND, request_id=2, order_id=None)
                    raise RuntimeError("rolled back")
            except RuntimeError:
                pass
            assert committed == []
    enqueue_cant_do(recipient_pubkey=third, reason=CantDoReason.NOT_FOUND, request_id=3, order_id=None)

    rows = list(OutboundMessage.objects.order_by("pk"))
    assert [row.recipient_pubkey for row in rows] == [first, third]
    assert [(item.pk, item.event.id) for item in committed] == [(rows[0].pk, rows[0].event_id)]
    assert [row.next_attempt_at for row in rows] == [NOW + timedelta(seconds=15), None]  # outside: not leased


def test_answers_recorded_before_a_later_failure_are_reported_as_recorded(monkeypatch):
    """The store committed the answers, then the trip failed (the database went away): the
    caller learns they were recorded, so the publisher does not record them a second time."""
    from django.db import DatabaseError, transaction

    from nostrbridge.bridge import intake_trip

    items, _ = requests(2)
    _, _, claimed, _ = run(items[:1])
    answers = [(item, {"ws://a": PublishResult(True, "")}) for item in claimed]

    def first_group_then_failure(batch, *, first, **kwargs):
        with transaction.atomic():
            first()
        raise DatabaseError("connection lost")

    monkeypatch.setattr(intake_trip, "store_and_process", first_group_then_failure)
    recorded_out: list[bool] = []
    with pytest.raises(DatabaseError, match="connection lost"):
        run(items[1:], outcomes=answers, recorded_out=recorded_out)

    assert recorded_out == [True]
    first = OutboundMessage.objects.get(pk=claimed[0].pk)
    assert (first.status, first.attempts) == (OutboundStatus.SENT, 1)


def test_the_store_is_one_insert_returning_the_new_rows_and_a_bump_for_known_ones():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    items, _ = requests(3)
    known, second, third = (event for _, event, _ in items)
    store_batch(items[:1])  # stored before: by an earlier batch, or another bridge process
    batch = [("ws://a", known), ("ws://a", second), ("ws://b", third), ("ws://c", third)]
    with CaptureQueriesContext(connection) as queries:
        rows = inbox_store_claimed(items=batch, worker_id=WORKER)

    statements = [q["sql"].split(" ", 1)[0] for q in queries.captured_queries if "inboundevent" in q["sql"]]
    assert statements == ["INSERT", "UPDATE"]  # the new rows returned whole; the known one's count
    assert [(row.event_id, row.seen_count, row.first_relay) for row in rows] == [
        (second["id"], 1, "ws://a"),
        (third["id"], 2, "ws://b"),
    ]
    assert rows[0].pk < rows[1].pk
    assert [model_to_dict(row) for row in rows] == [
        model_to_dict(row) for row in InboundEvent.objects.filter(pk__in=[row.pk for row in rows]).order_by("pk")
    ]
    assert InboundEvent.objects.get(event_id=known["id"]).seen_count == 2
    assert inbox_store_claimed(items=batch[:2], worker_id=WORKER) == []  # nothing new: nothing returned


def test_relay_answers_ride_the_store_and_a_message_for_the_lane_adds_only_its_own_transaction(monkeypatch):
    items, _ = requests(1)
    _, _, claimed, _ = run(items)
    answers = [(item, {"ws://a": PublishResult(True, "")}) for item in claimed]
    trade = Keys.generate()
    cancel = Message.new(Action.CANCEL, request_id=7, id=uuid.uuid4())
    batch = [("ws://a", wrap_v2(cancel, trade, node_pubkey(), sign=False).to_dict(), False)]
    seen: list[bool] = []

    def cancel_handler(ctx) -> None:  # may call LND: runs with no transaction open
        seen.append(ctx.sender == trade.public_key_hex and not connection.in_atomic_block)
        with ctx.atomic():
            pass

    real = dispatch.get_handler
    monkeypatch.setattr(dispatch, "get_handler", lambda name: cancel_handler if name == "cancel" else real(name))
    with commits_counted() as commits:
        _, processed, _, recorded = run(batch, outcomes=answers)

    assert (processed, recorded) == (1, True)
    # The store with the answers, then the cancel's own transaction. Before: a third, the group
    # the cancel ended, which held only the answers.
    assert len(commits) == 2
    assert seen == [True]
    assert inbox() == [(InboundStatus.DONE, 1, "cant-do not_found"), (InboundStatus.DONE, 1, "")]
    first = OutboundMessage.objects.get(pk=claimed[0].pk)
    assert (first.status, first.attempts) == (OutboundStatus.SENT, 1)


def test_answers_that_fail_at_commit_leave_the_batch_stored_and_answered_once():
    items, senders = requests(2)
    _, _, claimed, _ = run(items[:1])
    answers = [(item, {"ws://a": PublishResult(True, "")}) for item in claimed]
    # Pruned meanwhile: its delivery row fails the (deferred) foreign key at COMMIT.
    OutboundMessage.objects.filter(pk=claimed[0].pk).delete()

    _, processed, _, recorded = run(items[1:], outcomes=answers)

    assert (processed, recorded) == (1, False)  # the publisher gets them back
    assert inbox() == [(InboundStatus.DONE, 1, "cant-do not_found")] * 2
    assert replies() == [(senders[1], "cant-do")]
    assert OutboundDelivery.objects.count() == 0
