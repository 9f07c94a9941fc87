"""Dispute chat in the console: keys, sending through the outbox, receiving from the bridge's
side channel, who may read and write, delivery states, attachments and key rotation."""

import json
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from disputes.chat import atrest
from disputes.chat.bridge import ChatHooks
from disputes.chat.envelope import GIFTWRAP
from disputes.chat.keys import console_keys, solver_key_create
from disputes.chat.models import ChatMessage, SolverKey
from disputes.chat.services import chat_history, chat_send
from disputes.console import ConsoleForbidden, take_as
from disputes.models import Dispute, SolverLink
from nostrbridge.models import OutboundDelivery, OutboundMessage, OutboundStatus
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.nip01 import Event
from orders.models import Trader
from tests.browser.chat_party import BlobServer, image_message, tiny_png
from tests.disputes.chat_support import chat_trade, console_solver
from tests.disputes.support import disputed_trade
from tests.disputes.web import browser, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(node, fake_ln):
    return chat_trade(fake_ln)


def url(dispute, name="chat", **kwargs):
    return reverse(f"admin:disputes_dispute_{name}", kwargs={"object_id": dispute.pk, **kwargs})


# --- the solver's key ---------------------------------------------------------------------
def test_a_created_key_is_sealed_linked_and_registered(node):
    user = make_user("sol", "rw")
    old = user.solver_link.pubkey
    row = solver_key_create(user=user)
    assert SolverLink.objects.get(user=user).pubkey == row.pubkey != old
    assert Trader.objects.get(pk=row.pubkey).is_solver
    assert not Trader.objects.get(pk=old).is_solver
    assert row.secret_sealed.startswith("v1.")
    assert console_keys(row.pubkey).public_key_hex == row.pubkey
    assert console_keys(node_pubkey()) is None


def test_operators_and_busy_keys_get_no_new_key(node, fake_ln):
    operator = make_user("op", "operator")
    with pytest.raises(ConsoleForbidden, match="operators act as the node key"):
        solver_key_create(user=operator)
    chat = chat_trade(fake_ln)
    before = SolverKey.objects.get(user=chat.user).pubkey
    with pytest.raises(ConsoleForbidden) as refused:
        solver_key_create(user=chat.user)
    assert refused.value.code == "key_in_use"
    assert SolverKey.objects.get(user=chat.user).pubkey == before == SolverLink.objects.get(user=chat.user).pubkey


def test_take_announces_the_console_key_to_both_parties(chat):
    replies = OutboundMessage.objects.filter(order_id=chat.trade.order.id, action="admin-took-dispute")
    assert set(replies.values_list("recipient_pubkey", flat=True)) >= {chat.trade.buyer_key, chat.trade.seller_key}
    assert chat.dispute.solver_pubkey == chat.solver_pubkey


def test_nip07_proof_links_the_extension_key(node, client):
    from disputes.chat.keys import PROOF_KIND
    from nostrbridge.protocol.keys import Keys
    from nostrbridge.protocol.nip01 import sign_event

    user = make_user("ext", "rw")
    client.force_login(user)
    page = client.get(reverse("console:key"))
    challenge = client.session["console_key_challenge"]
    assert challenge in page.content.decode()
    extension = Keys.generate()
    proof = sign_event(
        extension, kind=PROOF_KIND, content="link", tags=[["challenge", challenge]], created_at=int(time.time())
    )
    answer = client.post(
        reverse("console:key-nip07"), json.dumps({"event": proof.to_dict()}), content_type="application/json"
    )
    assert (answer.status_code, answer.json()["pubkey"]) == (200, extension.public_key_hex)
    assert SolverLink.objects.get(user=user).pubkey == extension.public_key_hex
    assert not SolverKey.objects.filter(user=user).exists()
    assert Trader.objects.get(pk=extension.public_key_hex).is_solver
    # The challenge is spent: the same proof again is refused and changes nothing.
    again = client.post(
        reverse("console:key-nip07"), json.dumps({"event": proof.to_dict()}), content_type="application/json"
    )
    assert again.status_code == 403


# --- sending ------------------------------------------------------------------------------
def test_sending_queues_one_signed_envelope_and_a_sealed_message(chat, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        message = chat_send(user=chat.user, dispute_id=chat.dispute.pk, party="buyer", text="Which bank?")
    row = OutboundMessage.objects.get(pk=message.outbound_id)
    event = Event.from_json(row.event_json)
    side = chat.party_side("buyer")
    assert (row.action, row.recipient_pubkey, row.status, row.kind) == ("chat", chat.trade.buyer_key, "pending", 14)
    assert (event.pubkey, event.tags) == (side.sign.public_key_hex, [["p", side.conv.public_key_hex]])
    assert "Which bank?" not in message.body_sealed
    [view] = chat_history(chat.dispute)
    assert (view["text"], view["state"], view["from"], view["author"]) == (
        "Which bank?",
        "queued",
        "solver",
        "admin:sol",
    )
    # The party's client opens it with its own trade key.
    from disputes.chat.envelope import unwrap

    opened = unwrap(event.to_dict(), side, frozenset({chat.solver_pubkey}))
    assert (opened.content, opened.sender) == ("Which bank?", chat.solver_pubkey)


def test_delivery_state_follows_the_outbox(chat):
    message = chat_send(user=chat.user, dispute_id=chat.dispute.pk, party="seller", text="hello")
    state = lambda: chat_history(chat.dispute)[0]["state"]  # noqa: E731
    assert state() == "queued"
    OutboundMessage.objects.filter(pk=message.outbound_id).update(attempts=1)
    assert state() == "sent"
    OutboundDelivery.objects.create(message_id=message.outbound_id, relay_url="wss://r", accepted=True, attempts=1)
    OutboundMessage.objects.filter(pk=message.outbound_id).update(status=OutboundStatus.SENT)
    assert (state(), chat_history(chat.dispute)[0]["relays"]) == ("accepted", 1)
    OutboundMessage.objects.filter(pk=message.outbound_id).delete()  # pruned a month later
    assert state() == "accepted"


@pytest.mark.parametrize(
    ("who", "party", "text", "code"),
    [
        ("other", "buyer", "hi", "is_not_your_dispute"),
        ("solver", "judge", "hi", "bad_party"),
        ("solver", "buyer", "   ", "bad_text"),
        ("solver", "buyer", "x" * 2001, "bad_text"),
    ],
)
def test_refused_sends_change_nothing(chat, who, party, text, code):
    user = chat.user if who == "solver" else make_user("rival", "rw")
    before = (OutboundMessage.objects.count(), ChatMessage.objects.count())
    with pytest.raises(ConsoleForbidden) as refused:
        chat_send(user=user, dispute_id=chat.dispute.pk, party=party, text=text)
    assert refused.value.code == code
    assert (OutboundMessage.objects.count(), ChatMessage.objects.count()) == before


def test_the_node_key_never_chats(node, fake_ln):
    trade = disputed_trade(fake_ln)
    operator = make_user("op", "operator")
    take_as(operator, dispute_id=trade.dispute.id)
    before = OutboundMessage.objects.count()
    with pytest.raises(ConsoleForbidden) as refused:
        chat_send(user=operator, dispute_id=trade.dispute.pk, party="buyer", text="hi")
    assert refused.value.code == "no_console_key"
    assert OutboundMessage.objects.count() == before
    html = browser(operator).get(reverse("admin:disputes_dispute_change", args=[trade.dispute.pk])).content.decode()
    assert "The node&#x27;s key holds this dispute; it never chats." in html


# --- receiving ----------------------------------------------------------------------------
@pytest.mark.parametrize("design", ["kind14", GIFTWRAP])
def test_the_side_channel_stores_each_party_message_once(chat, design, django_capture_on_commit_callbacks):
    hooks = ChatHooks()
    subscription = hooks.subscription()
    buyer_side = chat.party_side("buyer")
    assert subscription.filters[0]["kinds"] == [14]
    assert buyer_side.sign.public_key_hex in subscription.filters[0]["authors"]
    assert buyer_side.legacy.public_key_hex in subscription.filters[1]["#p"]
    outer, inner = chat.party_writes("buyer", "I paid on Monday", envelope=design)
    assert subscription.claims(outer.to_dict())
    with django_capture_on_commit_callbacks(execute=True):
        assert hooks.store([outer.to_dict(), outer.to_dict()]) == 1  # a second relay's copy
    message = ChatMessage.objects.get()
    assert (message.direction, message.party, message.envelope, message.inner_event_id) == (
        "in",
        "buyer",
        design,
        inner.id,
    )
    assert chat_history(chat.dispute)[0]["text"] == "I paid on Monday"


def test_the_solvers_own_message_coming_back_is_not_stored_again(chat):
    message = chat_send(user=chat.user, dispute_id=chat.dispute.pk, party="buyer", text="echo")
    hooks = ChatHooks()
    subscription = hooks.subscription()
    echo = json.loads(message.outbound.event_json)
    assert subscription.claims(echo)
    assert hooks.store([echo]) == 0
    assert ChatMessage.objects.count() == 1


def test_events_of_other_conversations_are_not_claimed(chat):
    subscription = ChatHooks().subscription()
    stranger, _ = chat.party_writes("buyer", "x")
    forged = stranger.to_dict() | {"pubkey": "ab" * 32}
    assert not subscription.claims(forged)
    assert not subscription.claims({"kind": 14, "pubkey": node_pubkey(), "tags": [["p", node_pubkey()]]})


def test_a_resolved_dispute_keeps_its_chat_a_day_then_closes(chat):
    now = timezone.now()
    Dispute.objects.filter(pk=chat.dispute.pk).update(status="settled", resolved_at=now - timedelta(hours=23))
    assert len(ChatHooks().subscription().filters) == 2
    chat_send(user=chat.user, dispute_id=chat.dispute.pk, party="buyer", text="I settled it for you")
    Dispute.objects.filter(pk=chat.dispute.pk).update(resolved_at=now - timedelta(hours=25))
    assert ChatHooks().subscription().filters == []
    with pytest.raises(ConsoleForbidden) as refused:
        chat_send(user=chat.user, dispute_id=chat.dispute.pk, party="buyer", text="too late")
    assert refused.value.code == "chat_closed"


# --- the console's endpoints ----------------------------------------------------------------
def test_chat_endpoints_check_who_reads_and_writes(chat):
    solver, operator, rival = browser(chat.user), browser(make_user("op", "operator")), browser(make_user("r", "rw"))
    sent = solver.post(url(chat.dispute, "chat_send"), {"party": "buyer", "text": "hello"})
    assert sent.status_code == 201
    [message] = sent.json()["messages"]
    assert (message["text"], message["party"], message["direction"]) == ("hello", "buyer", "out")
    assert [m["text"] for m in operator.get(url(chat.dispute)).json()["messages"]] == ["hello"]
    assert rival.get(url(chat.dispute)).status_code == 403
    refused = rival.post(url(chat.dispute, "chat_send"), {"party": "buyer", "text": "hi"})
    assert (refused.status_code, refused.json()["code"]) == (403, "is_not_your_dispute")
    assert operator.post(url(chat.dispute, "chat_send"), {"party": "buyer", "text": "hi"}).status_code == 403
    assert Client().get(url(chat.dispute)).status_code == 302  # to the login page
    assert ChatMessage.objects.count() == 1
    assert solver.get(url(chat.dispute) + f"?ids={message['id']}").json()["messages"][0]["id"] == message["id"]


def test_an_attachment_is_fetched_by_the_node_decrypted_and_served_from_its_origin(chat):
    server = BlobServer()
    try:
        png = tiny_png()
        side = chat.party_side("seller")
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        blob = b"\x01" * 12 + ChaCha20Poly1305(side.shared).encrypt(b"\x01" * 12, png, b"")
        link = server.put("receipt", blob)
        outer, _ = chat.party_writes(
            "seller", image_message(link, filename="receipt.png", png=png, encrypted_size=len(blob))
        )
        hooks = ChatHooks()
        hooks.subscription()
        hooks.store([outer.to_dict()])
        [view] = chat_history(chat.dispute)
        assert view["attachment"] == {"kind": "image", "filename": "receipt.png", "mime_type": "image/png",
                                      "size": len(png), "inline": True}  # fmt: skip
        assert link not in json.dumps(view)  # the page never learns the outside URL
        response = browser(chat.user).get(url(chat.dispute, "chat_attachment", message_id=view["id"]))
        assert (response.status_code, response["Content-Type"], response.content) == (200, "image/png", png)
        assert response["X-Content-Type-Options"] == "nosniff"
        assert browser(chat.user).get(url(chat.dispute, "chat_attachment", message_id=view["id"])).content == png
        assert server.requests == ["/receipt"]  # fetched once, then from the cache
        server.blobs["receipt"] = b"\x02" * 40
        from django.core.cache import cache

        cache.clear()
        broken = browser(chat.user).get(url(chat.dispute, "chat_attachment", message_id=view["id"]))
        assert (broken.status_code, b"does not decrypt" in broken.content) == (502, True)
    finally:
        server.stop()


def test_the_dispute_page_shows_the_conversation_to_its_solver(chat):
    chat_send(user=chat.user, dispute_id=chat.dispute.pk, party="seller", text="Did the money arrive?")
    html = browser(chat.user).get(reverse("admin:disputes_dispute_change", args=[chat.dispute.pk])).content.decode()
    assert 'id="chat-form"' in html
    assert "Did the money arrive?" in html  # in the page's initial JSON
    assert 'id="action-take"' not in html  # held by this solver: no Take button


# --- key rotation ---------------------------------------------------------------------------
def test_rotation_keeps_everything_readable_and_rekey_reseals(chat, settings):
    chat_send(user=chat.user, dispute_id=chat.dispute.pk, party="buyer", text="before the rotation")
    settings.MOSTRO_CONSOLE_ENCRYPTION_KEY = "a brand new key"
    settings.MOSTRO_CONSOLE_ENCRYPTION_KEY_FALLBACKS = [settings.SECRET_KEY]
    atrest._derive.cache_clear()
    from disputes.chat.keys import _open

    _open.cache_clear()
    assert chat_history(chat.dispute)[0]["text"] == "before the rotation"
    call_command("console_rekey", stdout=open("/dev/null", "w"))  # noqa: SIM115
    settings.MOSTRO_CONSOLE_ENCRYPTION_KEY_FALLBACKS = []
    _open.cache_clear()
    assert chat_history(chat.dispute)[0]["text"] == "before the rotation"
    assert console_keys(chat.solver_pubkey).public_key_hex == chat.solver_pubkey
    settings.MOSTRO_CONSOLE_ENCRYPTION_KEY = "another key"
    _open.cache_clear()
    assert chat_history(chat.dispute)[0]["text"].startswith("(this message cannot be opened")


def test_a_sealed_value_does_not_open_on_another_row(chat):
    token = atrest.seal(b"secret", purpose=atrest.CHAT, aad=b"row-1")
    assert atrest.unseal(token, purpose=atrest.CHAT, aad=b"row-1") == b"secret"
    with pytest.raises(atrest.SealError):
        atrest.unseal(token, purpose=atrest.CHAT, aad=b"row-2")
    with pytest.raises(atrest.SealError):
        atrest.unseal(token, purpose=atrest.SOLVER_KEY, aad=b"row-1")


def test_console_solver_helper(node):
    user, pubkey = console_solver("helper")
    assert SolverKey.objects.get(user=user).pubkey == pubkey
