"""`user-info` through the pipeline (docs/PROTOCOL.md §User-info): the reply byte for byte, the
refusals, and the one intake failure that is answered (`invalid_signature`)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from mostro_site.config import clear_node_config_cache
from nostrbridge.models import InboundStatus
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol import nip44
from nostrbridge.protocol.enums import Action, MessageType
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.nip01 import Event, sign_event
from nostrbridge.protocol.transport import encode_content, sign_identity_proof, sign_message
from orders.models import Trader
from tests.orders.reputation_support import inbound_status, outbox, rated, state
from tests.orders.services.support import cant_do_json
from tests.trade.harness import TradeClient, deliver

pytestmark = pytest.mark.django_db


def ask(client: TradeClient, *, request_id: int = 123456, **kwargs):
    return client.send(
        Action.USER_INFO, index=1, type=MessageType.RESTORE, request_id=request_id, trade_index=None, **kwargs
    )


def reply_json(rating: str, reviews: int, days: int, since: int | None = None, request_id: int = 123456) -> str:
    since_field = "" if since is None else f',"since":{since}'
    return (
        f'{{"restore":{{"version":2,"request_id":{request_id},"trade_index":null,"action":"user-info","payload":'
        f'{{"user_info":{{"rating":{rating},"reviews":{reviews},"operating_days":{days}{since_field}}}}}}}}}'
    )


def test_known_identity_gets_its_reputation(node):
    alice = TradeClient("alice")
    record = rated(alice.identity.public_key_hex, votes=(5, 3, 4))
    created = timezone.now() - timedelta(days=142, hours=5)
    Trader.objects.filter(pk=record.pk).update(created_at=created)
    since = int(created.timestamp()) - int(created.timestamp()) % 86_400

    replies = ask(alice)

    # Votes 5, 3, 4 with the corrected average: 2.5, 2.75, 3.1666666666666665 (§Rate-user).
    assert [(r.recipient, r.message.to_json()) for r in replies] == [
        (alice.pubkey(1), reply_json("3.1666666666666665", 3, 142, since))
    ]
    assert replies[0].message.verify() is True


def test_unknown_identity_gets_zeros_without_since_and_no_record(node):
    eve = TradeClient("eve")
    before = state()
    replies = ask(eve, request_id=5)
    assert [r.message.to_json() for r in replies] == [reply_json("0.0", 0, 0, request_id=5)]
    assert state() == before


def test_full_privacy_is_refused_with_reputation_identity_required(node):
    carol = TradeClient("carol", full_privacy=True)
    before = state()
    replies = ask(carol, request_id=9)
    assert [(r.recipient, r.message.to_json()) for r in replies] == [
        (carol.pubkey(1), cant_do_json("reputation_identity_required", request_id=9))
    ]
    assert state() == before


@pytest.mark.parametrize(
    ("_case", "kwargs"),
    [
        ("order wrapper", {"type": MessageType.ORDER}),
        ("an id", {"order_id": "c7dba9db-f13f-4c3f-a77f-3b82e43c2b1a"}),
    ],
)
def test_another_shape_is_dropped_unanswered(node, _case, kwargs):
    alice = TradeClient("alice")
    rated(alice.identity.public_key_hex)
    before, rows = state(), len(outbox())
    base = {"type": MessageType.RESTORE, "request_id": 1, "trade_index": None}
    event = alice.build(Action.USER_INFO, index=1, **(base | kwargs))
    assert deliver(event) == InboundStatus.DROPPED
    assert alice.replies() == []
    assert (state(), len(outbox())) == (before, rows)


# --- the answered signature failures ------------------------------------------------------------
STRANGER = Keys.from_hex("44" * 32)


def kind14(client: TradeClient, message: Message, *, trade_sig: str = "good", proof: str = "good") -> Event:
    """The client's v2 request with a good, bad (another key's) or missing signature."""
    trade, identity = client.trade_key(1), client.identity
    text = message.to_json()
    signer = {"good": trade, "bad": STRANGER}.get(trade_sig)
    proof_sig = sign_identity_proof(text, trade.public_key_hex, {"good": identity, "bad": STRANGER}[proof])
    sig = None if signer is None else sign_message(text, signer)
    plaintext = encode_content(text, sig, (identity.public_key_hex, proof_sig), arity=3)
    content = nip44.encrypt(plaintext, nip44.cached_conversation_key(trade.secret, bytes.fromhex(node_pubkey())))
    return sign_event(
        trade, kind=14, content=content, tags=[["p", node_pubkey()]], created_at=int(timezone.now().timestamp())
    )


USER_INFO = Message.new(Action.USER_INFO, type=MessageType.RESTORE, request_id=31)


@pytest.mark.parametrize(("trade_sig", "proof"), [("good", "bad"), ("missing", "good"), ("bad", "good")])
def test_a_bad_identity_proof_or_trade_signature_is_answered(node, trade_sig, proof):
    alice = TradeClient("alice")
    rated(alice.identity.public_key_hex)
    before, rows = state(), len(outbox())
    event = kind14(alice, USER_INFO, trade_sig=trade_sig, proof=proof)

    assert deliver(event) == InboundStatus.DONE

    assert [(r.recipient, r.message.to_json()) for r in alice.replies()] == [
        (alice.pubkey(1), cant_do_json("invalid_signature", request_id=31))
    ]
    status, action, reason = inbound_status(event.id)
    assert (status, action, reason.startswith("cant-do invalid_signature")) == ("done", "user-info", True)
    assert (state(), len(outbox())) == (before, rows + 1)


@pytest.mark.parametrize(("trade_sig", "proof"), [("good", "bad"), ("missing", "good"), ("bad", "good")])
def test_the_same_failures_on_other_actions_stay_silent(node, trade_sig, proof):
    alice = TradeClient("alice")
    rated(alice.identity.public_key_hex)
    before, rows = state(), len(outbox())
    message = Message.new(Action.LAST_TRADE_INDEX, type=MessageType.RESTORE, request_id=31)
    event = kind14(alice, message, trade_sig=trade_sig, proof=proof)
    assert deliver(event) == InboundStatus.DROPPED
    assert alice.replies() == []
    assert (state(), len(outbox())) == (before, rows)


def test_an_unknown_key_short_of_the_first_contact_pow_gets_nothing(node, settings):
    settings.MOSTRO_POW_FIRST_CONTACT = 255
    clear_node_config_cache()
    alice = TradeClient("alice")
    rows = len(outbox())
    event = kind14(alice, USER_INFO, proof="bad")
    assert deliver(event) == InboundStatus.DROPPED
    assert inbound_status(event.id)[2] == "first-contact proof of work not met"
    assert (alice.replies(), len(outbox())) == ([], rows)
