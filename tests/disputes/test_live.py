"""The staff dispute feed: Channels consumer, routing and post-commit pushes."""

import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from disputes.console import take_as
from disputes.consumers import StaffDisputesConsumer
from mostro_site.asgi import application
from nostrbridge.node_identity import node_pubkey
from tests.disputes.support import disputed_trade
from tests.disputes.web import make_user

pytestmark = pytest.mark.django_db(transaction=True)
PATH = "/ws/staff/disputes/"


def _session_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return [(b"cookie", cookie.encode()), (b"origin", b"http://127.0.0.1")]


async def test_staff_session_is_accepted_through_the_asgi_router():
    user = await database_sync_to_async(make_user)("op", "operator")
    headers = await database_sync_to_async(_session_headers)(user)
    communicator = WebsocketCommunicator(application, PATH, headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()


@pytest.mark.parametrize("who", ["anonymous", "no-permission", "not-staff"])
async def test_others_are_rejected(who):
    if who == "anonymous":
        user = AnonymousUser()
    else:
        user = await database_sync_to_async(make_user)(who, None if who == "no-permission" else "operator")
        if who == "not-staff":
            user.is_staff = False
    communicator = WebsocketCommunicator(StaffDisputesConsumer.as_asgi(), PATH)
    communicator.scope["user"] = user
    connected, code = await communicator.connect()
    assert (connected, code) == (False, 4403)


async def test_anonymous_browser_is_rejected_through_the_router():
    communicator = WebsocketCommunicator(application, PATH, headers=[(b"origin", b"http://127.0.0.1")])
    connected, _ = await communicator.connect()
    assert not connected


async def test_staff_receive_a_push_after_a_dispute_is_opened_and_taken(node, fake_ln):
    user = await database_sync_to_async(make_user)("op", "operator")
    communicator = WebsocketCommunicator(StaffDisputesConsumer.as_asgi(), PATH)
    communicator.scope["user"] = user
    assert (await communicator.connect())[0]

    trade = await database_sync_to_async(disputed_trade)(fake_ln)

    message = await communicator.receive_json_from(timeout=5)
    assert message == {
        "type": "dispute.changed",
        "dispute": {
            "id": str(trade.dispute.id),
            "order_id": str(trade.order.id),
            "status": "initiated",
            "solver_pubkey": None,
        },
    }
    await database_sync_to_async(take_as)(user, dispute_id=trade.dispute.id)
    message = await communicator.receive_json_from(timeout=5)
    assert (message["dispute"]["status"], message["dispute"]["solver_pubkey"]) == ("in-progress", node_pubkey())
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_the_live_socket_carries_orders_disputes_and_chat_ids_never_text(node, fake_ln):
    from disputes.chat.services import chat_send
    from disputes.consumers import StaffLiveConsumer
    from orders import live as orders_live
    from tests.disputes.chat_support import chat_trade

    user = await database_sync_to_async(make_user)("op", "operator")
    communicator = WebsocketCommunicator(StaffLiveConsumer.as_asgi(), "/ws/staff/live/")
    communicator.scope["user"] = user
    assert (await communicator.connect())[0]
    orders_live._last_push = 0.0  # a fresh rate-limit window

    chat = await database_sync_to_async(chat_trade)(fake_ln)
    seen = []
    while not await communicator.receive_nothing(timeout=0.3):
        seen.append(await communicator.receive_json_from())
    kinds = {message["type"] for message in seen}
    assert {"orders.changed", "dispute.changed"} <= kinds
    assert str(chat.trade.order.id) in {order for m in seen if m["type"] == "orders.changed" for order in m["orders"]}

    message = await database_sync_to_async(chat_send)(
        user=chat.user, dispute_id=chat.trade.dispute.id, party="buyer", text="top secret"
    )
    pushed = await communicator.receive_json_from(timeout=5)
    assert pushed == {"type": "chat.changed", "dispute": str(chat.trade.dispute.id), "messages": [message.pk]}
    await communicator.disconnect()


async def test_a_solver_without_order_permission_gets_only_the_dispute_feed(db):
    from disputes.consumers import _groups_for

    user = await database_sync_to_async(make_user)("sol", "ro")
    assert await _groups_for(user, ("staff.disputes", "staff.orders")) == ["staff.disputes", "staff.orders"]
    nobody = await database_sync_to_async(make_user)("nobody")
    assert await _groups_for(nobody, ("staff.disputes", "staff.orders")) == []


def test_order_pushes_are_rate_limited(monkeypatch):
    from orders import live as orders_live

    sent = []
    monkeypatch.setattr(orders_live, "get_channel_layer", lambda: _Layer(sent))
    clock = iter([100.0, 100.1, 100.2, 100.5])
    monkeypatch.setattr(orders_live, "_clock", lambda: next(clock))
    orders_live._last_push = 0.0
    orders_live._pending.clear()
    for order_id in ("a", "b", "c", "d"):
        orders_live._changed(order_id)
    assert sent == [["a"], ["b", "c", "d"]]


class _Layer:
    def __init__(self, sent: list) -> None:
        self.sent = sent

    async def group_send(self, group: str, event: dict) -> None:
        assert (group, event["type"]) == ("staff.orders", "orders.changed")
        self.sent.append(event["orders"])


@pytest.mark.parametrize(
    ("_case", "in_memory", "pushed"),
    [
        ("in-memory layer: the forked cluster reaches no page", True, []),
        ("Redis layer: every process's pages", False, [["a"]]),
    ],
)
def test_processes_forked_for_the_cluster_skip_pushes_only_with_an_in_memory_layer(
    _case, in_memory, pushed, monkeypatch
):
    from channels.layers import InMemoryChannelLayer

    from orders import live as orders_live

    class RecordingInMemoryLayer(InMemoryChannelLayer):
        async def group_send(self, group: str, message: dict) -> None:
            sent.append(message["orders"])

    sent: list = []
    layer = RecordingInMemoryLayer() if in_memory else _Layer(sent)
    if in_memory:
        layer.groups["staff.orders"] = {"specific.page": time.time()}  # a staff page of this process
    monkeypatch.setattr(orders_live, "get_channel_layer", lambda: layer)
    orders_live._last_push = 0.0
    orders_live._pending.clear()
    with orders_live.pushes_skipped_in_forks():
        orders_live._changed("a")  # what a process forked here does
    assert sent == pushed
    orders_live._last_push = 0.0
    orders_live._pending.clear()
    orders_live._changed("b")  # this process, after the block: pushes again
    assert sent == [*pushed, ["b"]]


@pytest.mark.parametrize(
    ("_case", "members", "pushed"),
    [
        ("no staff page of this process in the group: nothing to deliver", {}, []),
        ("a page in the group", {"specific.page": 0.0}, [["c"]]),
    ],
)
def test_in_memory_layer_pushes_only_with_a_page_in_the_group(_case, members, pushed, monkeypatch):
    from channels.layers import InMemoryChannelLayer

    from orders import live as orders_live

    class RecordingInMemoryLayer(InMemoryChannelLayer):
        async def group_send(self, group: str, message: dict) -> None:
            sent.append(message["orders"])

    sent: list = []
    layer = RecordingInMemoryLayer()
    if members:
        layer.groups["staff.orders"] = dict.fromkeys(members, time.time())
    monkeypatch.setattr(orders_live, "get_channel_layer", lambda: layer)
    orders_live._last_push = 0.0
    orders_live._pending.clear()
    orders_live._changed("c")
    assert sent == pushed
    assert orders_live._pending == set()  # nothing left waiting for a later push either way
