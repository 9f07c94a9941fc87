"""The one intake failure that is answered: a `user-info` request whose identity proof or trade
signature fails (docs/PROTOCOL.md §User-info). Every other action, and every other failure,
stays a silent drop."""

from __future__ import annotations

import pytest

from nostrbridge.protocol import nip44
from nostrbridge.protocol.enums import Action, MessageType
from nostrbridge.protocol.errors import (
    BadSignature,
    InvalidMessage,
    MissingTradeSignature,
    NotForUs,
    ProtocolError,
    SignatureRefusal,
    StaleMessage,
)
from nostrbridge.protocol.giftwrap import wrap_v1
from nostrbridge.protocol.inbound import open_inbound
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.nip01 import Event, sign_event
from nostrbridge.protocol.payloads import UserInfoPayload
from nostrbridge.protocol.structs import UserInfo
from nostrbridge.protocol.transport import encode_content, sign_identity_proof, sign_message, wrap_v2

NOW = 1_700_000_000
USER_INFO = Message.new(Action.USER_INFO, type=MessageType.RESTORE, request_id=77)
LAST_INDEX = Message.new(Action.LAST_TRADE_INDEX, type=MessageType.RESTORE, request_id=78)
STRANGER = Keys.from_hex("44" * 32)


@pytest.fixture
def alice(keys: dict[str, Keys]) -> tuple[Keys, Keys]:
    return keys["alice-trade-1"], keys["alice-identity"]


def kind14(
    message: Message,
    trade: Keys,
    identity: Keys,
    node: Keys,
    *,
    trade_sig: str = "good",
    proof: str = "good",
    created_at: int = NOW,
    content: str | None = None,
) -> dict:
    """A kind-14 event with each inner signature good, bad (another key's) or missing."""
    message_json = message.to_json()
    signer = {"good": trade, "bad": STRANGER}.get(trade_sig)
    sig = None if signer is None else sign_message(message_json, signer)
    prover = {"good": identity, "bad": STRANGER}[proof]
    proof_sig = sign_identity_proof(message_json, trade.public_key_hex, prover)
    plaintext = content or encode_content(message_json, sig, (identity.public_key_hex, proof_sig), arity=3)
    key = nip44.cached_conversation_key(trade.secret, bytes.fromhex(node.public_key_hex))
    event = sign_event(
        trade, kind=14, content=nip44.encrypt(plaintext, key), tags=[["p", node.public_key_hex]], created_at=created_at
    )
    return event.to_dict()


@pytest.mark.parametrize(("trade_sig", "proof"), [("good", "bad"), ("missing", "good"), ("bad", "good")])
def test_user_info_signature_failures_are_answerable(node, alice, trade_sig: str, proof: str) -> None:
    trade, identity = alice
    raw = kind14(USER_INFO, trade, identity, node, trade_sig=trade_sig, proof=proof)
    with pytest.raises(SignatureRefusal) as caught:
        open_inbound(raw, node, transport_version=2, now=NOW)
    assert (caught.value.sender, caught.value.request_id) == (trade.public_key_hex, 77)
    assert isinstance(caught.value, ProtocolError)  # a caller unaware of it still drops it


@pytest.mark.parametrize(
    ("trade_sig", "proof", "error"),
    [("good", "bad", BadSignature), ("missing", "good", MissingTradeSignature), ("bad", "good", BadSignature)],
)
def test_the_same_failures_on_another_action_stay_silent(node, alice, trade_sig, proof, error) -> None:
    trade, identity = alice
    raw = kind14(LAST_INDEX, trade, identity, node, trade_sig=trade_sig, proof=proof)
    with pytest.raises(error) as caught:
        open_inbound(raw, node, transport_version=2, now=NOW)
    assert not isinstance(caught.value, SignatureRefusal)


def test_a_stale_user_info_with_a_bad_proof_is_dropped(node, alice) -> None:
    trade, identity = alice
    raw = kind14(USER_INFO, trade, identity, node, proof="bad", created_at=NOW - 11)
    with pytest.raises(BadSignature) as caught:
        open_inbound(raw, node, transport_version=2, now=NOW)
    assert not isinstance(caught.value, SignatureRefusal)
    unsigned = kind14(USER_INFO, trade, identity, node, trade_sig="missing", created_at=NOW - 11)
    with pytest.raises(StaleMessage):
        open_inbound(unsigned, node, transport_version=2, now=NOW)


def test_outer_signature_and_decryption_failures_are_never_answered(node, alice, keys) -> None:
    trade, identity = alice
    raw = kind14(USER_INFO, trade, identity, node, proof="bad")
    with pytest.raises(BadSignature) as caught:
        open_inbound(dict(raw, sig="0" * 128), node, transport_version=2, now=NOW)
    assert not isinstance(caught.value, SignatureRefusal)
    with pytest.raises(NotForUs):
        open_inbound(raw, keys["bob-identity"], transport_version=2, now=NOW)


def test_an_unparseable_tuple_is_never_answered(node, alice) -> None:
    trade, identity = alice
    garbled = '[{"restore":{"version":2,"action":"user-info","payload":null}},"zz",["ab","cd"]]'
    with pytest.raises(ProtocolError) as caught:
        open_inbound(kind14(USER_INFO, trade, identity, node, content=garbled), node, transport_version=2, now=NOW)
    assert isinstance(caught.value, SignatureRefusal)  # the message parses: its proof is bad
    two = '[{"restore":{"version":2,"action":"user-info","payload":null}},"zz"]'
    with pytest.raises(ProtocolError) as caught:
        open_inbound(kind14(USER_INFO, trade, identity, node, content=two), node, transport_version=2, now=NOW)
    assert not isinstance(caught.value, SignatureRefusal)  # not a v2 tuple


def test_v1_user_info_without_trade_signature_is_answerable(node, alice) -> None:
    trade, identity = alice
    wrap = wrap_v1(USER_INFO, trade, node.public_key_hex, identity_keys=identity, sign=False, created_at=NOW)
    with pytest.raises(SignatureRefusal) as caught:
        open_inbound(wrap.to_dict(), node, transport_version=1, now=NOW)
    assert (caught.value.sender, caught.value.request_id) == (trade.public_key_hex, 77)


def test_a_good_user_info_request_opens(node, alice) -> None:
    trade, identity = alice
    unwrapped = open_inbound(kind14(USER_INFO, trade, identity, node), node, transport_version=2, now=NOW)
    assert (unwrapped.message.action, unwrapped.identity) == (Action.USER_INFO, identity.public_key_hex)


@pytest.mark.parametrize(
    "message",
    [
        Message.new(Action.USER_INFO, request_id=1),  # order wrapper
        Message.new(Action.USER_INFO, type=MessageType.RESTORE, id="c7dba9db-f13f-4c3f-a77f-3b82e43c2b1a"),
        Message.new(
            Action.USER_INFO,
            type=MessageType.RESTORE,
            payload=UserInfoPayload(UserInfo(rating=5.0, reviews=1, operating_days=0)),
        ),
    ],
)
def test_user_info_in_another_shape_is_dropped(node, alice, message: Message) -> None:
    trade, identity = alice
    event = wrap_v2(message, trade, node.public_key_hex, identity_keys=identity, created_at=NOW)
    with pytest.raises(InvalidMessage):
        open_inbound(Event.to_dict(event), node, transport_version=2, now=NOW)
