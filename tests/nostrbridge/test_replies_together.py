"""`nostrbridge.outbox.replies_together`: a trade step's direct messages as one outbox INSERT,
inside the transaction of its state change. Held only at the block's own level; an exception drops
them with the rollback; a savepoint inside the block writes at once; `flush()` orders rows."""

import json

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from nostrbridge.models import OutboundMessage
from nostrbridge.outbox import enqueue_event, enqueue_message, outbox_collect, replies_together
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.nip01 import Event, sign_event
from nostrbridge.protocol.transport import unwrap_v2

pytestmark = pytest.mark.django_db

ALICE, BOB = Keys.generate(), Keys.generate()


def _send(keys: Keys, request_id: int) -> str:
    message = Message.new(Action.FIAT_SENT_OK, request_id=request_id)
    return enqueue_message(recipient_pubkey=keys.public_key_hex, message=message)


def _outbox_inserts(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith('INSERT INTO "nostrbridge_outboundmessage"')]


def _rows() -> list[tuple[str, str, str]]:
    return list(OutboundMessage.objects.order_by("pk").values_list("event_id", "recipient_pubkey", "action"))


def _request_id(row_event_json: str, keys: Keys) -> int:
    message = json.loads(unwrap_v2(Event.from_dict(json.loads(row_event_json)), keys).message_json)
    return message["order"]["request_id"]


def test_the_blocks_messages_are_one_insert_in_queue_order():
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        with replies_together():
            first, second = _send(ALICE, 1), _send(BOB, 2)
            assert OutboundMessage.objects.count() == 0  # held to the block's end
        assert OutboundMessage.objects.count() == 2  # written before the transaction commits
    assert len(_outbox_inserts(queries)) == 1
    assert _rows() == [
        (first, ALICE.public_key_hex, "fiat-sent-ok"),
        (second, BOB.public_key_hex, "fiat-sent-ok"),
    ]
    rows = list(OutboundMessage.objects.order_by("pk"))
    assert [_request_id(rows[0].event_json, ALICE), _request_id(rows[1].event_json, BOB)] == [1, 2]


def _failing_step() -> None:
    with transaction.atomic(), replies_together():
        _send(ALICE, 1)
        raise RuntimeError("the step failed")


def test_an_exception_in_the_block_writes_nothing():
    with pytest.raises(RuntimeError):
        _failing_step()
    assert _rows() == []


def _failing_savepoint() -> None:
    with transaction.atomic():
        _send(BOB, 2)
        assert OutboundMessage.objects.count() == 1  # inside the savepoint: written at once
        raise RuntimeError("the savepoint rolls back")


def test_a_savepoint_in_the_block_writes_at_once_and_rolls_back_alone():
    with transaction.atomic():
        with replies_together():
            held = _send(ALICE, 1)
            with pytest.raises(RuntimeError):
                _failing_savepoint()
            kept = _send(BOB, 3)
    assert _rows() == [(held, ALICE.public_key_hex, "fiat-sent-ok"), (kept, BOB.public_key_hex, "fiat-sent-ok")]


def test_flush_writes_the_held_rows_before_later_ones():
    with transaction.atomic():
        with replies_together() as replies:
            first = _send(ALICE, 1)
            replies.flush()
            with transaction.atomic():  # a savepoint: written at once, after the flushed row
                middle = _send(BOB, 2)
            last = _send(ALICE, 3)
    assert [row[0] for row in _rows()] == [first, middle, last]


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_it_is_refused():
    with pytest.raises(RuntimeError), replies_together():
        pass


def test_inside_outbox_collect_the_rows_are_leased_and_handed_over_after_commit(django_capture_on_commit_callbacks):
    with outbox_collect(lease_s=30) as collected:
        with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
            with replies_together():
                first, second = _send(ALICE, 1), _send(BOB, 2)
            assert collected == []  # handed over only once committed
    rows = {row.event_id: row for row in OutboundMessage.objects.all()}
    assert [(c.pk, c.event.id) for c in collected] == [(rows[first].pk, first), (rows[second].pk, second)]
    assert all(row.next_attempt_at is not None for row in rows.values())


def test_an_event_joins_the_blocks_insert_and_is_returned_unsaved():
    event = sign_event(ALICE, kind=38383, content="", tags=[["d", "x"]], created_at=1_700_000_000)
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        with replies_together():
            reply = _send(BOB, 1)
            row = enqueue_event(event=event, d_tag="x")
            assert (row.pk, row.event_id, row.kind, row.d_tag) == (None, event.id, 38383, "x")
    assert len(_outbox_inserts(queries)) == 1
    stored = list(OutboundMessage.objects.order_by("pk").values_list("event_id", "kind", "d_tag", "event_json"))
    assert [entry[:3] for entry in stored] == [(reply, 14, ""), (event.id, 38383, "x")]
    assert stored[1][3] == event.to_json()
