"""The bridge's group commit (nostrbridge.bridge.group): a batch of inbound events in one
transaction, a savepoint per handler. A poison message fails alone, a crash mid-batch applies
nothing, a commit that fails is redone one message at a time, and a handler that may call the
network never runs inside the group's transaction. Real `orders` requests through the real
dispatch (answered `cant-do not_found`), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from nostrbridge import dispatch
from nostrbridge.bridge import group as bridge_group
from nostrbridge.bridge.intake import store_batch
from nostrbridge.bridge.worker import drain_batch
from nostrbridge.inbox import MAX_ATTEMPTS, inbox_claim_rows
from nostrbridge.models import InboundEvent, InboundStatus, OutboundDelivery, OutboundMessage
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import IdsPayload
from nostrbridge.protocol.transport import wrap_v2
from tests.nostrbridge.bridge_helpers import commits_counted

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = "w:1:a"


class Crash(BaseException):
    """Stands for the process dying mid-batch: nothing in the bridge catches it."""


def store(actions: list[Action]) -> list[str]:
    """Store one request per action, each from a fresh trade key; return the senders in order."""
    senders, items = [], []
    for action in actions:
        trade = Keys.generate()
        payload = IdsPayload([uuid.uuid4()]) if action == Action.ORDERS else None
        order_id = uuid.uuid4() if action == Action.CANCEL else None
        message = Message.new(action, request_id=len(senders) + 1, id=order_id, payload=payload)
        items.append(("ws://a", wrap_v2(message, trade, node_pubkey(), sign=False).to_dict(), False))
        senders.append(trade.public_key_hex)
    store_batch(items)
    return senders


def drain() -> int:
    return drain_batch(worker_id=WORKER, limit=50, stop=threading.Event())


def inbox() -> list[tuple[str, int, str]]:
    rows = InboundEvent.objects.order_by("pk").values_list("status", "attempts", "drop_reason")
    return [(status, attempts, reason) for status, attempts, reason in rows]


def replies() -> list[tuple[str, str]]:
    return list(OutboundMessage.objects.order_by("pk").values_list("recipient_pubkey", "action"))


def patch_handler(monkeypatch, action: str, handler) -> None:
    real = dispatch.get_handler
    monkeypatch.setattr(dispatch, "get_handler", lambda name: handler if name == action else real(name))


def poison_orders_handler(poison_sender: str, *, calls: list[str]):
    """The real `orders` handler, except for one sender: it writes an outbox row in its final
    transaction, then crashes inside it."""
    real = dispatch.get_handler("orders")

    def handler(ctx) -> None:
        calls.append(ctx.sender)
        if ctx.sender != poison_sender:
            return real(ctx)
        with ctx.atomic():  # its final transaction: a savepoint in the group
            OutboundMessage.objects.create(event_id="f" * 64, kind=14, recipient_pubkey=ctx.sender, event_json="{}")
            raise RuntimeError("poison")

    return handler


def test_a_batch_commits_once_and_answers_every_request():
    senders = store([Action.ORDERS] * 4)
    with commits_counted() as commits:
        assert drain() == 4

    assert inbox() == [(InboundStatus.DONE, 1, "cant-do not_found")] * 4
    assert replies() == [(sender, "cant-do") for sender in senders]
    # The claim is one statement, atomic on its own (autocommit, no COMMIT of ours); the four
    # messages with their replies are one transaction.
    assert len(commits) == 1


def test_a_poison_message_mid_batch_fails_alone_and_is_parked_after_its_retries(monkeypatch):
    senders = store([Action.ORDERS] * 3)
    calls: list[str] = []
    patch_handler(monkeypatch, "orders", poison_orders_handler(senders[1], calls=calls))

    assert drain() == 3

    first, poison, last = inbox()
    assert first == last == (InboundStatus.DONE, 1, "cant-do not_found")
    assert poison[:2] == (InboundStatus.RECEIVED, 1)  # retried later, as alone
    # Its outbox row went with its transaction (a savepoint); the others' replies are committed.
    assert replies() == [(senders[0], "cant-do"), (senders[2], "cant-do")]
    assert InboundEvent.objects.get(pk=InboundEvent.objects.order_by("pk")[1].pk).last_error == "RuntimeError: poison"

    for _ in range(MAX_ATTEMPTS - 1):
        drain()
    assert [row[:2] for row in inbox()] == [
        (InboundStatus.DONE, 1),
        (InboundStatus.PARKED, MAX_ATTEMPTS),
        (InboundStatus.DONE, 1),
    ]
    assert replies() == [(senders[0], "cant-do"), (senders[2], "cant-do")]
    assert calls == [senders[0], senders[1], senders[2]] + [senders[1]] * (MAX_ATTEMPTS - 1)


def test_a_crash_mid_batch_applies_nothing_and_the_retry_answers_each_request_once(monkeypatch):
    senders = store([Action.ORDERS] * 4)
    real_reply = dispatch._reply_cant_do
    calls: list[str] = []

    def dies_after_the_third_reply(ctx, reason, **kwargs) -> None:
        calls.append(ctx.sender)
        real_reply(ctx, reason, **kwargs)  # its reply and outcome are written (in the group's transaction)…
        if ctx.sender == senders[2]:
            raise Crash  # …and then the process dies

    monkeypatch.setattr(dispatch, "_reply_cant_do", dies_after_the_third_reply)
    with pytest.raises(Crash):
        drain()

    # Nothing of the batch is on disk: no outcome, no reply; the rows keep their leases.
    assert [(status, attempts) for status, attempts, _ in inbox()] == [(InboundStatus.PROCESSING, 1)] * 4
    assert replies() == []

    # The bridge restarts once the leases expire: every request is answered exactly once.
    InboundEvent.objects.update(locked_until=timezone.now() - timedelta(seconds=1))
    monkeypatch.undo()
    assert drain() == 4
    assert inbox() == [(InboundStatus.DONE, 2, "cant-do not_found")] * 4
    assert replies() == [(sender, "cant-do") for sender in senders]
    assert calls == senders[:3]


def test_a_commit_that_fails_is_redone_one_message_at_a_time(monkeypatch):
    """A deferred foreign key only fails at COMMIT: the group rolls back, then each message runs
    alone, where the poison fails at its own commit and the others are answered once."""
    senders = store([Action.ORDERS] * 3)
    real = dispatch.get_handler("orders")
    calls: list[str] = []

    def dangling_delivery_for_the_second(ctx) -> None:
        calls.append(ctx.sender)
        if ctx.sender == senders[1]:
            with ctx.atomic():
                OutboundDelivery.objects.create(message_id=987_654, relay_url="ws://nowhere")
            return
        real(ctx)

    patch_handler(monkeypatch, "orders", dangling_delivery_for_the_second)
    assert drain() == 3

    first, poison, last = inbox()
    assert first == last == (InboundStatus.DONE, 1, "cant-do not_found")
    assert poison[:2] == (InboundStatus.RECEIVED, 1)
    assert InboundEvent.objects.order_by("pk")[1].last_error.startswith("IntegrityError")
    assert replies() == [(senders[0], "cant-do"), (senders[2], "cant-do")]
    assert OutboundDelivery.objects.count() == 0
    assert calls == senders + senders  # the group's pass, then each alone


def test_an_action_outside_the_group_runs_alone_after_the_group_commits(monkeypatch):
    senders = store([Action.ORDERS, Action.CANCEL, Action.ORDERS])
    seen: list[tuple[bool, list[str]]] = []

    def cancel(ctx) -> None:
        # A handler that may call LND: no transaction open, the earlier reply already committed.
        seen.append((connection.in_atomic_block, [pubkey for pubkey, _ in replies()]))
        with ctx.atomic():
            pass

    patch_handler(monkeypatch, "cancel", cancel)
    assert drain() == 3

    assert seen == [(False, [senders[0]])]
    assert [(status, attempts) for status, attempts, _ in inbox()] == [(InboundStatus.DONE, 1)] * 3
    assert replies() == [(senders[0], "cant-do"), (senders[2], "cant-do")]


def test_a_stop_mid_group_commits_what_ran_and_hands_back_the_rest(monkeypatch):
    senders = store([Action.ORDERS] * 3)
    stop = threading.Event()
    real = dispatch.get_handler("orders")

    def stops_after_the_first(ctx) -> None:
        try:
            real(ctx)  # raises CantDo(not_found), answered by dispatch
        finally:
            stop.set()  # a shutdown arrives while the first handler runs

    patch_handler(monkeypatch, "orders", stops_after_the_first)
    assert drain_batch(worker_id=WORKER, limit=50, stop=stop) == 3

    assert [(status, attempts) for status, attempts, _ in inbox()] == [
        (InboundStatus.DONE, 1),
        (InboundStatus.RECEIVED, 0),
        (InboundStatus.RECEIVED, 0),
    ]
    assert replies() == [(senders[0], "cant-do")]


def test_group_commit_actions_are_the_database_only_handlers():
    from nostrbridge.wiring import bridge_wiring

    assert bridge_wiring().group_commit_actions == {
        "orders",
        "last-trade-index",
        "restore-session",
        "user-info",
        "trade-pubkey",
        "fiat-sent",
        "rate-user",
    }
    assert bridge_group.process_inbound is dispatch.process_inbound


class ListLane:
    """A network lane (`nostrbridge.dispatch.HandlerLane`) that takes `cancel` and keeps what it
    is handed, in order."""

    def __init__(self) -> None:
        self.handed: list[tuple[str, str, bool]] = []  # (sender, action, a transaction open)

    def takes(self, ctx) -> bool:
        return ctx.action == Action.CANCEL.value

    def submit(self, ctx) -> None:
        self.handed.append((ctx.sender, ctx.action, connection.in_atomic_block))


def process_claimed(lane: ListLane) -> None:
    rows = inbox_claim_rows(worker_id=WORKER, limit=50)
    alone: list[int] = []
    bridge_group.process_rows(
        rows,
        stop=threading.Event(),
        process_alone=lambda row: alone.append(row.pk),
        release=lambda pks: None,
        lane=lane,
    )
    assert alone == []


def test_a_message_for_the_lane_first_in_a_group_opens_no_transaction():
    senders = store([Action.CANCEL, Action.ORDERS, Action.CANCEL, Action.CANCEL])
    lane = ListLane()
    with commits_counted() as commits:
        process_claimed(lane)

    # Group one would hold only the first cancel and group three only the last: neither begins a
    # transaction (before, each was a BEGIN and an empty COMMIT). Group two: the request and its reply.
    assert len(commits) == 1
    assert lane.handed == [(senders[0], "cancel", False), (senders[2], "cancel", False), (senders[3], "cancel", False)]
    assert [(status, attempts) for status, attempts, _ in inbox()] == [
        (InboundStatus.PROCESSING, 1),  # the lane's now, still leased
        (InboundStatus.DONE, 1),
        (InboundStatus.PROCESSING, 1),
        (InboundStatus.PROCESSING, 1),
    ]
    assert replies() == [(senders[1], "cant-do")]


def test_a_drop_held_before_any_handler_begins_the_group_at_its_flush():
    senders = store([Action.ORDERS, Action.CANCEL])
    garbled = InboundEvent.objects.order_by("pk").first()
    garbled.raw = garbled.raw.replace('"content":"', '"content":"x', 1)  # its id no longer matches
    garbled.save(update_fields=["raw"])
    lane = ListLane()
    with commits_counted() as commits:
        process_claimed(lane)

    assert len(commits) == 1  # the held drop, flushed in the group's transaction
    assert inbox() == [
        (InboundStatus.DROPPED, 1, "EventIdMismatch: event id does not match its fields"),
        (InboundStatus.PROCESSING, 1, ""),
    ]
    assert lane.handed == [(senders[1], "cancel", False)]
    assert replies() == []
