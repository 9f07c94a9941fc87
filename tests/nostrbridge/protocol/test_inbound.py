"""The stateless intake pipeline (docs/PROTOCOL.md §Intake): each step's drop, in the daemon's order."""

from __future__ import annotations

import json
import uuid

import pytest

from nostrbridge.protocol import nip44
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.errors import (
    BadSignature,
    EventIdMismatch,
    InsufficientPow,
    InvalidMessage,
    MalformedEvent,
    MessageParseError,
    MissingTradeSignature,
    NotForUs,
    OversizedEvent,
    StaleMessage,
    WrongKind,
)
from nostrbridge.protocol.giftwrap import wrap_v1
from nostrbridge.protocol.inbound import MAX_EVENT_BYTES, open_inbound, transport_kind
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.nip01 import leading_zero_bits, sign_event
from nostrbridge.protocol.payloads import TextMessagePayload
from nostrbridge.protocol.transport import wrap_v2
from tests.nostrbridge.protocol.conftest import MOSTRO_VECTORS

NOW = 1_700_000_000
NEW_ORDER = Message.from_json(MOSTRO_VECTORS["canonical_messages"]["A01_new_order_req"])
V2_EVENT = MOSTRO_VECTORS["v2_client_event"]["event"]


@pytest.fixture
def alice(keys: dict[str, Keys]) -> tuple[Keys, Keys]:
    return keys["alice-trade-1"], keys["alice-identity"]


def test_vector_v2_event_is_accepted_at_its_time(node: Keys) -> None:
    unwrapped = open_inbound(V2_EVENT, node, transport_version=2, now=NOW + 10)
    assert unwrapped.message.action is Action.NEW_ORDER
    assert unwrapped.identity != unwrapped.sender


@pytest.mark.parametrize("form", ["dict", "str", "bytes"])
def test_accepts_dict_str_or_bytes(node: Keys, form: str) -> None:
    raw = {"dict": V2_EVENT, "str": json.dumps(V2_EVENT), "bytes": json.dumps(V2_EVENT).encode()}[form]
    assert open_inbound(raw, node, transport_version=2, now=NOW).event_id == V2_EVENT["id"]


def test_vector_v1_gift_wrap_is_accepted(node: Keys) -> None:
    wrap = MOSTRO_VECTORS["v1_giftwrap"]["wrap"]
    unwrapped = open_inbound(wrap, node, transport_version=1, now=NOW)
    assert unwrapped.rumor_id == MOSTRO_VECTORS["v1_giftwrap"]["rumor"]["id"]


def test_freshness_window_is_ten_seconds_with_no_upper_bound(node: Keys) -> None:
    assert open_inbound(V2_EVENT, node, transport_version=2, now=NOW + 10).created_at == NOW
    assert open_inbound(V2_EVENT, node, transport_version=2, now=NOW - 86_400).created_at == NOW
    with pytest.raises(StaleMessage):
        open_inbound(V2_EVENT, node, transport_version=2, now=NOW + 11)


def test_v1_freshness_uses_the_rumor_time_not_the_tweaked_wrap_time(node: Keys) -> None:
    wrap = MOSTRO_VECTORS["v1_giftwrap"]["wrap"]  # wrap 1699954321, seal 1699912345, rumor 1700000000
    assert wrap["created_at"] < NOW - 10
    open_inbound(wrap, node, transport_version=1, now=NOW + 10)
    with pytest.raises(StaleMessage):
        open_inbound(wrap, node, transport_version=1, now=NOW + 11)


def test_pow_checks_the_real_id(node: Keys, alice: tuple[Keys, Keys]) -> None:
    trade, identity = alice
    mined = wrap_v2(NEW_ORDER, trade, node.public_key_hex, identity_keys=identity, created_at=NOW, pow_bits=8)
    assert leading_zero_bits(mined.id) >= 8
    assert mined.tags[-1][0] == "nonce"
    assert open_inbound(mined.to_dict(), node, transport_version=2, pow_bits=8, now=NOW).event_id == mined.id
    unmined = wrap_v2(NEW_ORDER, trade, node.public_key_hex, identity_keys=identity, created_at=NOW)
    # A claimed target in the nonce tag does not count; only the id's zero bits do.
    while leading_zero_bits(unmined.id) >= 8:
        unmined = wrap_v2(NEW_ORDER, trade, node.public_key_hex, identity_keys=identity, created_at=NOW)
    with pytest.raises(InsufficientPow):
        open_inbound(unmined.to_dict(), node, transport_version=2, pow_bits=8, now=NOW)


def test_pow_is_checked_before_kind_and_signature(node: Keys) -> None:
    raw = dict(MOSTRO_VECTORS["published_events"]["rating_38384"], sig="0" * 128)
    with pytest.raises(InsufficientPow):
        open_inbound(raw, node, transport_version=2, pow_bits=250, now=NOW)
    with pytest.raises(WrongKind):
        open_inbound(raw, node, transport_version=2, now=NOW)


@pytest.mark.parametrize(("version", "raw"), [(1, V2_EVENT), (2, MOSTRO_VECTORS["v1_giftwrap"]["wrap"])])
def test_wrong_transport_kind(node: Keys, version: int, raw: dict) -> None:
    with pytest.raises(WrongKind):
        open_inbound(raw, node, transport_version=version, now=NOW)


def test_bad_outer_signature_is_checked_before_decryption(keys: dict[str, Keys]) -> None:
    raw = dict(V2_EVENT, sig="0" * 128)
    with pytest.raises(BadSignature):
        open_inbound(raw, keys["bob-identity"], transport_version=2, now=NOW)  # not even ours


def test_event_for_another_node_is_not_for_us(keys: dict[str, Keys]) -> None:
    with pytest.raises(NotForUs):
        open_inbound(V2_EVENT, keys["bob-identity"], transport_version=2, now=NOW)


def test_tampered_id_is_rejected(node: Keys) -> None:
    with pytest.raises(EventIdMismatch):
        open_inbound(dict(V2_EVENT, created_at=NOW + 1), node, transport_version=2, now=NOW)


def test_reputation_mode_requires_trade_signature(node: Keys, alice: tuple[Keys, Keys]) -> None:
    trade, identity = alice
    unsigned = wrap_v2(NEW_ORDER, trade, node.public_key_hex, identity_keys=identity, sign=False, created_at=NOW)
    with pytest.raises(MissingTradeSignature):
        open_inbound(unsigned.to_dict(), node, transport_version=2, now=NOW)
    v1_unsigned = wrap_v1(NEW_ORDER, trade, node.public_key_hex, identity_keys=identity, sign=False, created_at=NOW)
    with pytest.raises(MissingTradeSignature):
        open_inbound(v1_unsigned.to_dict(), node, transport_version=1, now=NOW)


def test_full_privacy_needs_no_signature(node: Keys, alice: tuple[Keys, Keys]) -> None:
    trade, _ = alice
    for version, wrap in ((2, wrap_v2), (1, wrap_v1)):
        event = wrap(NEW_ORDER, trade, node.public_key_hex, sign=False, created_at=NOW)
        unwrapped = open_inbound(event.to_dict(), node, transport_version=version, now=NOW)
        assert unwrapped.is_full_privacy
        assert unwrapped.trade_signature is None
        assert unwrapped.message.kind.version == version


def test_verify_failure_is_invalid_message(node: Keys, alice: tuple[Keys, Keys]) -> None:
    trade, identity = alice
    no_id = Message.new(Action.ADMIN_ADD_SOLVER, payload=TextMessagePayload("npub1x:read"))
    event = wrap_v2(no_id, trade, node.public_key_hex, identity_keys=identity, created_at=NOW)
    with pytest.raises(InvalidMessage):
        open_inbound(event.to_dict(), node, transport_version=2, now=NOW)
    with_id = Message.new(Action.ADMIN_ADD_SOLVER, id=uuid.UUID(int=0), payload=TextMessagePayload("npub1x:read"))
    event = wrap_v2(with_id, trade, node.public_key_hex, identity_keys=identity, created_at=NOW)
    assert open_inbound(event.to_dict(), node, transport_version=2, now=NOW).message == with_id


def test_oversized_event(node: Keys, alice: tuple[Keys, Keys]) -> None:
    trade, _ = alice
    big = Message.new(Action.SEND_DM, id=uuid.UUID(int=1), payload=TextMessagePayload("x" * 5000))
    event = wrap_v2(big, trade, node.public_key_hex, created_at=NOW)
    assert len(event.to_json()) > MAX_EVENT_BYTES
    for raw in (event.to_json(), event.to_json().encode(), event.to_dict()):
        with pytest.raises(OversizedEvent):
            open_inbound(raw, node, transport_version=2, now=NOW)


def test_malformed_inputs_are_malformed_events(node: Keys) -> None:
    for raw in ("", "[]", "null", b"\x80", 42, None, {"id": 1}):
        with pytest.raises(MalformedEvent):
            open_inbound(raw, node, transport_version=2, now=NOW)  # type: ignore[arg-type]


def test_garbage_content_is_not_for_us(node: Keys, alice: tuple[Keys, Keys]) -> None:
    trade, _ = alice
    event = sign_event(trade, kind=14, content="hello", tags=[["p", node.public_key_hex]], created_at=NOW)
    with pytest.raises(NotForUs):
        open_inbound(event.to_dict(), node, transport_version=2, now=NOW)
    inner = nip44.encrypt("[]", nip44.get_conversation_key(trade.secret, node.public_key))
    event = sign_event(trade, kind=14, content=inner, tags=[], created_at=NOW)  # no `p` tag: not needed
    with pytest.raises(MessageParseError, match="exactly 3"):
        open_inbound(event.to_dict(), node, transport_version=2, now=NOW)


def test_transport_kind() -> None:
    assert (transport_kind(1), transport_kind(2)) == (1059, 14)
    with pytest.raises(ValueError, match="1 or 2"):
        transport_kind(3)
