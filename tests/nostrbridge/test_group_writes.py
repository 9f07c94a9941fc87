"""Writes a group commit holds to its end (nostrbridge.group_writes): the refusals' outbox rows as
one INSERT and the outcomes as one UPDATE, in the group's transaction before its COMMIT. Only
writes at the group's own level are held: one made inside a savepoint runs at once and goes with
its savepoint; a flush that fails rolls the group back and its messages run alone. Real `orders`
requests through the real dispatch, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from nostrbridge import dispatch, group_writes
from nostrbridge.bridge.intake import store_batch
from nostrbridge.bridge.intake_trip import store_process_claim
from nostrbridge.bridge.worker import drain_batch
from nostrbridge.group_writes import holding, update_by_pk
from nostrbridge.models import InboundEvent, InboundStatus, OutboundMessage, OutboundStatus
from nostrbridge.node_identity import node_pubkey
from nostrbridge.outbox import enqueue_cant_do, enqueue_message
from nostrbridge.outbox_rounds import PublishPolicy
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.nip01 import Event
from nostrbridge.protocol.payloads import IdsPayload
from nostrbridge.protocol.transport import unwrap_v2, wrap_v2
from tests.nostrbridge.bridge_helpers import commits_counted

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = "w:1:a"
NOT_FOUND = "cant-do not_found"


def requests(count: int, *, stranger: int | None = None) -> tuple[list[tuple[str, dict, bool]], list[Keys]]:
    """`count` `orders` requests (request_id 1…), each from a fresh trade key; request number
    `stranger` (0-based) is encrypted to another key than the node's (dropped: NotForUs)."""
    items, keys = [], []
    for index in range(count):
        trade = Keys.generate()
        message = Message.new(Action.ORDERS, request_id=index + 1, payload=IdsPayload([uuid.uuid4()]))
        to = Keys.generate().public_key_hex if index == stranger else node_pubkey()
        items.append(("ws://a", wrap_v2(message, trade, to, sign=False).to_dict(), False))
        keys.append(trade)
    return items, keys


def drain() -> int:
    return drain_batch(worker_id=WORKER, limit=50, stop=threading.Event())


def outcomes() -> list[tuple[str, int, str, str]]:
    rows = InboundEvent.objects.order_by("pk").values_list("status", "attempts", "action", "drop_reason")
    return [tuple(row) for row in rows]


def replies() -> list[tuple[str, str]]:
    return list(OutboundMessage.objects.order_by("pk").values_list("recipient_pubkey", "action"))


def reply_of(row: OutboundMessage, trade: Keys) -> list:
    """The reply's message as the client reads it."""
    return json.loads(unwrap_v2(Event.from_dict(json.loads(row.event_json)), trade).message_json)


def patch_handler(monkeypatch, handler) -> None:
    real = dispatch.get_handler
    monkeypatch.setattr(dispatch, "get_handler", lambda name: handler if name == "orders" else real(name))


def test_a_groups_refusals_are_one_insert_and_one_update():
    items, keys = requests(4)
    store_batch(items)
    started = timezone.now()
    with CaptureQueriesContext(connection) as queries, commits_counted() as commits:
        assert drain() == 4
    ended = timezone.now()

    sql = [query["sql"] for query in queries.captured_queries]
    assert len([s for s in sql if s.startswith('INSERT INTO "nostrbridge_outboundmessage"')]) == 1
    assert len([s for s in sql if s.startswith('UPDATE "nostrbridge_inboundevent"') and "drop_reason" in s]) == 1
    assert len(commits) == 1
    assert outcomes() == [(InboundStatus.DONE, 1, "orders", NOT_FOUND)] * 4
    inbound = list(InboundEvent.objects.order_by("pk"))
    assert all(row.locked_until is None and started <= row.processed_at <= ended for row in inbound)
    # The flush's time, one value for the group: a plain assignment, not a CASE per row.
    assert len({row.processed_at for row in inbound}) == 1
    [outcome_sql] = [s for s in sql if s.startswith('UPDATE "nostrbridge_inboundevent"') and "drop_reason" in s]
    assert "CASE" not in outcome_sql
    rows = list(OutboundMessage.objects.order_by("pk"))
    assert [(row.recipient_pubkey, row.action, row.kind, row.order_id) for row in rows] == [
        (trade.public_key_hex, "cant-do", 14, None) for trade in keys
    ]
    assert all(row.status == OutboundStatus.PENDING and started <= row.created_at <= ended for row in rows)
    # Each reply answers its own request.
    for index, (row, trade) in enumerate(zip(rows, keys, strict=True)):
        content = reply_of(row, trade)["cant-do"]
        assert (content["action"], content["request_id"], content["payload"]) == (
            "cant-do",
            index + 1,
            {"cant_do": "not_found"},
        )


def test_drops_and_refusals_share_the_one_outcome_update():
    items, keys = requests(3, stranger=1)
    store_batch(items)
    with CaptureQueriesContext(connection) as queries:
        assert drain() == 3

    updates = [q["sql"] for q in queries.captured_queries if "drop_reason" in q["sql"] and "UPDATE" in q["sql"]]
    assert len(updates) == 1
    first, dropped, last = outcomes()
    assert first == last == (InboundStatus.DONE, 1, "orders", NOT_FOUND)
    assert dropped[:3] == (InboundStatus.DROPPED, 1, "")
    assert dropped[3].startswith("NotForUs: ")
    assert replies() == [(keys[0].public_key_hex, "cant-do"), (keys[2].public_key_hex, "cant-do")]


def test_only_writes_at_the_groups_own_level_are_held():
    with transaction.atomic(), group_writes.group_writes() as writes:
        assert holding() is writes
        with transaction.atomic(savepoint=False):  # the same level
            assert holding() is writes
            with transaction.atomic():  # a savepoint: its writes run at once
                assert holding() is None
            assert holding() is writes
        with transaction.atomic():
            assert holding() is None
            with transaction.atomic(savepoint=False):
                assert holding() is None
        assert holding() is writes
    assert holding() is None  # after the group


def test_a_write_in_a_savepoint_rolled_back_goes_with_it_and_the_held_ones_stay():
    first, second, third = (Keys.generate().public_key_hex for _ in range(3))
    with transaction.atomic(), group_writes.group_writes():
        enqueue_cant_do(recipient_pubkey=first, reason=CantDoReason.NOT_FOUND, request_id=1, order_id=None)
        try:
            with transaction.atomic():  # opened after the held write: cannot undo it
                enqueue_cant_do(recipient_pubkey=second, reason=CantDoReason.NOT_FOUND, request_id=2, order_id=None)
                assert replies() == [(second, "cant-do")]  # written at once, inside the savepoint
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        assert replies() == []  # the held one is not written yet
        enqueue_cant_do(recipient_pubkey=third, reason=CantDoReason.NOT_FOUND, request_id=3, order_id=None)
    assert replies() == [(first, "cant-do"), (third, "cant-do")]


def test_a_handlers_savepoint_rolled_back_leaves_nothing_held(monkeypatch):
    """The poison writes a cant-do reply and its outcome inside its final transaction (a
    savepoint), then crashes: nothing of it may survive through the group's held writes."""
    items, keys = requests(3)
    store_batch(items)
    real = dispatch.get_handler("orders")

    def handler(ctx) -> None:
        if ctx.sender != keys[1].public_key_hex:
            return real(ctx)
        with ctx.atomic():
            enqueue_cant_do(recipient_pubkey=ctx.sender, reason=CantDoReason.NOT_FOUND, request_id=2, order_id=None)
            ctx.mark_done(drop_reason="must not survive")
            raise RuntimeError("poison")

    patch_handler(monkeypatch, handler)
    assert drain() == 3

    assert outcomes() == [
        (InboundStatus.DONE, 1, "orders", NOT_FOUND),
        (InboundStatus.RECEIVED, 1, "", ""),  # retried later, as alone
        (InboundStatus.DONE, 1, "orders", NOT_FOUND),
    ]
    assert InboundEvent.objects.order_by("pk")[1].last_error == "RuntimeError: poison"
    assert replies() == [(keys[0].public_key_hex, "cant-do"), (keys[2].public_key_hex, "cant-do")]


def test_a_flush_that_fails_rolls_the_group_back_and_each_message_runs_alone(monkeypatch):
    items, keys = requests(3)
    store_batch(items)
    real_update = group_writes._update_outcomes
    flushes: list[int] = []

    def fails_the_first_time(held) -> None:
        flushes.append(len(held))
        if len(flushes) == 1:
            raise DatabaseError("disk I/O error")  # after the replies' INSERT ran
        real_update(held)

    monkeypatch.setattr(group_writes, "_update_outcomes", fails_the_first_time)
    with commits_counted() as commits:
        assert drain() == 3

    assert flushes == [3]  # the group's; alone, nothing is held
    assert len(commits) == 3  # the group rolled back, then one transaction per message
    assert outcomes() == [(InboundStatus.DONE, 1, "orders", NOT_FOUND)] * 3
    # The group's INSERT went with its rollback: each request answered once.
    assert replies() == [(trade.public_key_hex, "cant-do") for trade in keys]


def test_a_crash_after_held_writes_applies_nothing(monkeypatch):
    items, _ = requests(3)
    store_batch(items)

    class Crash(BaseException):
        pass

    def dies(held) -> None:
        raise Crash

    monkeypatch.setattr(group_writes, "_update_outcomes", dies)
    with pytest.raises(Crash):
        drain()
    assert [row[:2] for row in outcomes()] == [(InboundStatus.PROCESSING, 1)] * 3
    assert replies() == []

    monkeypatch.undo()
    InboundEvent.objects.update(locked_until=timezone.now() - timedelta(seconds=1))
    assert drain() == 3
    assert outcomes() == [(InboundStatus.DONE, 2, "orders", NOT_FOUND)] * 3
    assert len(replies()) == 3


def test_held_replies_reach_the_publisher_with_their_own_ids_after_commit(monkeypatch):
    """One reply written at once (inside the handler's savepoint), the others held: every
    committed row is handed to the publisher once, under its own primary key."""
    items, keys = requests(3)
    real = dispatch.get_handler("orders")

    def answers_the_second(ctx) -> None:
        if ctx.sender != keys[1].public_key_hex:
            return real(ctx)
        with ctx.atomic():
            enqueue_message(recipient_pubkey=ctx.sender, message=Message.new(Action.ORDERS, request_id=2))

    patch_handler(monkeypatch, answers_the_second)
    policy = PublishPolicy()
    _, processed, claimed, _ = store_process_claim(
        items, worker_id=WORKER, stop=threading.Event(), network=None, publish=True, policy=policy
    )

    assert processed == 3
    rows = list(OutboundMessage.objects.order_by("pk"))
    # The one written at once comes first: the held ones are inserted at the group's end.
    assert [(row.recipient_pubkey, row.action) for row in rows] == [
        (keys[1].public_key_hex, "orders"),
        (keys[0].public_key_hex, "cant-do"),
        (keys[2].public_key_hex, "cant-do"),
    ]
    assert [(item.pk, item.event["id"]) for item in claimed] == [(row.pk, row.event_id) for row in rows]
    assert [item.frame for item in claimed] == [f'["EVENT",{row.event_json}]' for row in rows]
    assert all(row.next_attempt_at is not None and row.next_attempt_at > timezone.now() for row in rows)
    assert outcomes() == [
        (InboundStatus.DONE, 1, "orders", NOT_FOUND),
        (InboundStatus.DONE, 1, "orders", ""),
        (InboundStatus.DONE, 1, "orders", NOT_FOUND),
    ]


def test_update_by_pk_sets_each_rows_own_values_and_keeps_its_guard():
    items, _ = requests(4)
    store_batch(items)
    pks = list(InboundEvent.objects.order_by("pk").values_list("pk", flat=True))
    InboundEvent.objects.filter(pk__in=pks[:3]).update(status=InboundStatus.PROCESSING)
    at = [timezone.now() - timedelta(seconds=seconds) for seconds in (3, 2, 1, 0)]
    values = [
        {"status": "done", "action": "orders", "drop_reason": "a", "processed_at": at[0], "locked_until": None},
        {"status": "dropped", "action": "", "drop_reason": "b", "processed_at": at[1], "locked_until": None},
        {"status": "done", "action": "orders", "drop_reason": "a", "processed_at": at[2], "locked_until": None},
        {"status": "done", "action": "x", "drop_reason": "c", "processed_at": at[3], "locked_until": None},
    ]

    changed = update_by_pk(
        InboundEvent, rows=dict(zip(pks, values, strict=True)), where={"status": InboundStatus.PROCESSING.value}
    )

    assert changed == 3
    rows = InboundEvent.objects.order_by("pk").values_list("status", "action", "drop_reason", "processed_at")
    assert list(rows) == [
        ("done", "orders", "a", at[0]),
        ("dropped", "", "b", at[1]),
        ("done", "orders", "a", at[2]),
        (InboundStatus.RECEIVED, "", "", None),  # not PROCESSING: left alone
    ]
