"""The database feed of the staff pages: changes no push announced (made by a process outside
the channel layer, here a bare UPDATE) still reach an open page, once each."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from disputes.chat.models import ChatMessage
from disputes.consumers import StaffLiveConsumer
from disputes.live import STAFF_DISPUTES_GROUP
from disputes.live_poll import ChangeWatch
from disputes.models import Dispute
from orders.live import STAFF_ORDERS_GROUP
from orders.models import Order
from tests.disputes.support import disputed_trade
from tests.disputes.web import make_user

pytestmark = pytest.mark.django_db(transaction=True)
BOTH = [STAFF_DISPUTES_GROUP, STAFF_ORDERS_GROUP]


def _touch_order(order_id) -> None:
    """A change the way another process makes it: no on_commit push in this one."""
    Order.objects.filter(pk=order_id).update(updated_at=timezone.now())


def _aged_trade(fake_ln):
    """A disputed trade whose rows last changed a minute ago: older than any page opened now."""
    trade = disputed_trade(fake_ln)
    past = timezone.now() - timedelta(minutes=1)
    Order.objects.filter(pk=trade.order.id).update(updated_at=past)
    Dispute.objects.filter(pk=trade.dispute.pk).update(updated_at=past)
    return trade


def _chat_row(dispute, n: int) -> ChatMessage:
    return ChatMessage.objects.create(
        dispute=dispute,
        party="buyer",
        direction="in",
        solver_pubkey="a" * 64,
        party_pubkey="b" * 64,
        sender_pubkey="b" * 64,
        envelope="kind14",
        inner_event_id=f"{n:064x}",
        outer_event_id=f"{n + 1000:064x}",
        body_sealed="sealed",
        sent_at=timezone.now(),
    )


def test_an_unannounced_order_change_is_reported_once(node, fake_ln):
    trade = disputed_trade(fake_ln)
    watch = ChangeWatch([STAFF_ORDERS_GROUP])
    # The first look reaches OVERLAP_S back: the trade's own last write is reported once.
    assert watch.look() == [{"type": "orders.changed", "orders": [str(trade.order.id)]}]
    assert watch.look() == []

    _touch_order(trade.order.id)
    assert watch.look() == [{"type": "orders.changed", "orders": [str(trade.order.id)]}]
    assert watch.look() == []  # same row, same stamp: not again

    _touch_order(trade.order.id)
    assert watch.look() == [{"type": "orders.changed", "orders": [str(trade.order.id)]}]


def test_a_page_sees_only_the_feeds_it_joined(node, fake_ln):
    trade = _aged_trade(fake_ln)
    watch = ChangeWatch([STAFF_DISPUTES_GROUP], since=timezone.now())
    _touch_order(trade.order.id)
    assert watch.look() == []


def test_dispute_and_chat_changes_are_reported_with_the_push_shapes(node, fake_ln):
    trade = _aged_trade(fake_ln)
    watch = ChangeWatch(BOTH, since=timezone.now())
    Dispute.objects.filter(pk=trade.dispute.pk).update(status="in-progress", updated_at=timezone.now())
    row = _chat_row(trade.dispute, 1)

    messages = watch.look()

    assert messages == [
        {
            "type": "dispute.changed",
            "dispute": {
                "id": str(trade.dispute.id),
                "order_id": str(trade.order.id),
                "status": "in-progress",
                "solver_pubkey": None,
            },
        },
        {"type": "chat.changed", "dispute": str(trade.dispute.id), "messages": [row.pk]},
    ]
    assert watch.look() == []


def test_a_change_stamped_before_the_last_look_but_committed_after_it_is_not_missed(node, fake_ln):
    trade = _aged_trade(fake_ln)
    watch = ChangeWatch([STAFF_ORDERS_GROUP], since=timezone.now())
    stamped = timezone.now()
    assert watch.look() == []
    # The writer stamped before that look and committed after it.
    Order.objects.filter(pk=trade.order.id).update(updated_at=stamped)
    assert watch.look() == [{"type": "orders.changed", "orders": [str(trade.order.id)]}]


def test_changes_older_than_the_page_are_not_reported(node, fake_ln):
    _aged_trade(fake_ln)
    assert ChangeWatch(BOTH).look() == []


async def _open_page_then_touch_an_order(fake_ln, settings, poll_seconds: float):
    """An operator's live page is open; then an order changes with no push."""
    settings.MOSTRO_LIVE_POLL_SECONDS = poll_seconds
    user = await database_sync_to_async(make_user)("op", "operator")
    trade = await database_sync_to_async(_aged_trade)(fake_ln)
    communicator = WebsocketCommunicator(StaffLiveConsumer.as_asgi(), "/ws/staff/live/")
    communicator.scope["user"] = user
    assert (await communicator.connect())[0]
    await database_sync_to_async(_touch_order)(trade.order.id)
    return communicator, trade


async def test_an_open_page_receives_a_change_no_push_announced(node, fake_ln, settings):
    communicator, trade = await _open_page_then_touch_an_order(fake_ln, settings, 0.05)

    message = await communicator.receive_json_from(timeout=5)
    assert message == {"type": "orders.changed", "orders": [str(trade.order.id)]}
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_without_the_setting_no_database_feed_runs(node, fake_ln, settings):
    communicator, _ = await _open_page_then_touch_an_order(fake_ln, settings, 0)
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()
