"""The staff dispute feed: Channels consumer, routing and post-commit pushes."""

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
