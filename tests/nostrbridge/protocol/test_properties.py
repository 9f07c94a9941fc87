"""Property tests: no input makes the parsers raise anything but a ProtocolError; round trips hold."""

from __future__ import annotations

import copy
import json
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nostrbridge.protocol import nip44
from nostrbridge.protocol.enums import Kind, Status
from nostrbridge.protocol.errors import MessageParseError, ProtocolError
from nostrbridge.protocol.giftwrap import make_rumor, wrap_v1
from nostrbridge.protocol.inbound import open_inbound
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.nip01 import Event, sign_event
from nostrbridge.protocol.structs import SmallOrder
from nostrbridge.protocol.transport import wrap_v2
from tests.nostrbridge.protocol.conftest import MOSTRO_VECTORS

KEYS = {label: Keys.from_hex(pair["sk"]) for label, pair in MOSTRO_VECTORS["keys"].items()}
NODE, TRADE, IDENTITY, EPHEMERAL = (
    KEYS["mostro-node"],
    KEYS["alice-trade-1"],
    KEYS["alice-identity"],
    KEYS["ephemeral-1"],
)
NOW = 1_700_000_000
CANONICAL = list(MOSTRO_VECTORS["canonical_messages"].values())
NEW_ORDER = Message.from_json(CANONICAL[0])
V2_EVENT = wrap_v2(NEW_ORDER, TRADE, NODE.public_key_hex, identity_keys=IDENTITY, created_at=NOW).to_dict()
V1_EVENT = wrap_v1(NEW_ORDER, TRADE, NODE.public_key_hex, identity_keys=IDENTITY, created_at=NOW).to_dict()

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["new-order", "order", "cant_do", "pending", "sell", str(uuid.uuid4()), "ab" * 32])
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def _expect_protocol_error_or_success(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except ProtocolError:
        return None


def _mutate(value, data: st.DataObject):
    """Replace, delete or add one node somewhere inside a JSON value."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        action = data.draw(st.sampled_from(["recurse", "replace", "delete", "add"]))
        if action == "recurse":
            value[key] = _mutate(value[key], data)
        elif action == "replace":
            value[key] = data.draw(json_values)
        elif action == "delete":
            del value[key]
        else:
            value[data.draw(st.text(max_size=8))] = data.draw(json_values)
        return value
    if isinstance(value, list) and value and data.draw(st.booleans()):
        index = data.draw(st.integers(0, len(value) - 1))
        action = data.draw(st.sampled_from(["recurse", "replace", "delete", "append"]))
        if action == "recurse":
            value[index] = _mutate(value[index], data)
        elif action == "replace":
            value[index] = data.draw(json_values)
        elif action == "delete":
            del value[index]
        else:
            value.append(data.draw(json_values))
        return value
    return data.draw(json_values)


# --- open_inbound on hostile input --------------------------------------------------------


@FAST
@given(raw=st.binary(max_size=300) | st.text(max_size=300) | json_values)
def test_open_inbound_on_arbitrary_input_raises_only_protocol_errors(raw) -> None:
    for version in (1, 2):
        assert _expect_protocol_error_or_success(open_inbound, raw, NODE, transport_version=version, now=NOW) is None


@FAST
@given(data=st.data(), version=st.sampled_from([1, 2]))
def test_open_inbound_on_mutated_events_raises_only_protocol_errors(data: st.DataObject, version: int) -> None:
    event = copy.deepcopy(V2_EVENT if version == 2 else V1_EVENT)
    mutated = _mutate(event, data)
    text = json.dumps(mutated, ensure_ascii=False)
    _expect_protocol_error_or_success(open_inbound, mutated, NODE, transport_version=version, now=NOW)
    _expect_protocol_error_or_success(open_inbound, text, NODE, transport_version=version, now=NOW)


@FAST
@given(data=st.data())
def test_open_inbound_on_mutated_signed_content_raises_only_protocol_errors(data: st.DataObject) -> None:
    """Correct envelope and signature around a mutated tuple: reaches the deep parsers."""
    tuple_ = [json.loads(data.draw(st.sampled_from(CANONICAL))), "ab" * 64, None]
    plaintext = json.dumps(_mutate(tuple_, data), ensure_ascii=False) or "x"
    content = nip44.encrypt(plaintext, nip44.get_conversation_key(TRADE.secret, NODE.public_key))
    event = sign_event(TRADE, kind=14, content=content, tags=[["p", NODE.public_key_hex]], created_at=NOW)
    result = _expect_protocol_error_or_success(open_inbound, event.to_json(), NODE, transport_version=2, now=NOW)
    if result is not None:
        assert Message.from_json(result.message_json) == result.message


@FAST
@given(data=st.data())
def test_open_inbound_on_mutated_rumors_raises_only_protocol_errors(data: st.DataObject) -> None:
    rumor = json.loads(make_rumor(TRADE, "[" + CANONICAL[2] + ",null]", NOW).to_json())
    rumor_json = json.dumps(_mutate(rumor, data), ensure_ascii=False)
    seal = sign_event(
        IDENTITY,
        kind=13,
        tags=[],
        created_at=NOW,
        content=nip44.encrypt(rumor_json or " ", nip44.get_conversation_key(IDENTITY.secret, NODE.public_key)),
    )
    wrap = sign_event(
        EPHEMERAL,
        kind=1059,
        tags=[["p", NODE.public_key_hex]],
        created_at=NOW,
        content=nip44.encrypt(seal.to_json(), nip44.get_conversation_key(EPHEMERAL.secret, NODE.public_key)),
    )
    _expect_protocol_error_or_success(open_inbound, wrap.to_dict(), NODE, transport_version=1, now=NOW)


@FAST
@given(content=st.text(max_size=200))
def test_arbitrary_encrypted_plaintext_raises_only_protocol_errors(content: str) -> None:
    try:
        payload = nip44.encrypt(content, nip44.get_conversation_key(TRADE.secret, NODE.public_key))
    except ProtocolError:  # empty text or a lone surrogate
        return
    event = sign_event(TRADE, kind=14, content=payload, tags=[], created_at=NOW)
    _expect_protocol_error_or_success(open_inbound, event.to_dict(), NODE, transport_version=2, now=NOW)


# --- message parser ----------------------------------------------------------------------


@FAST
@given(value=json_values)
def test_message_parser_on_arbitrary_json(value) -> None:
    try:
        message = Message.from_value(value)
    except MessageParseError:
        return
    assert Message.from_json(message.to_json()) == message


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_message_parser_on_mutated_canonical_messages(data: st.DataObject) -> None:
    mutated = _mutate(json.loads(data.draw(st.sampled_from(CANONICAL))), data)
    try:
        message = Message.from_value(mutated)
    except MessageParseError:
        return
    text = message.to_json()
    assert Message.from_json(text).to_json() == text


@FAST
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_message_from_json_on_arbitrary_text(text: str) -> None:
    _expect_protocol_error_or_success(Message.from_json, text)
    _expect_protocol_error_or_success(Event.from_json, text)


i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
small_orders = st.builds(
    SmallOrder,
    id=st.none() | st.uuids(),
    kind=st.none() | st.sampled_from(Kind),
    status=st.none() | st.sampled_from(Status),
    amount=i64,
    fiat_code=st.text(max_size=5),
    min_amount=st.none() | i64,
    max_amount=st.none() | i64,
    fiat_amount=i64,
    payment_method=st.text(max_size=30),
    premium=i64,
    buyer_trade_pubkey=st.none() | st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    seller_trade_pubkey=st.none() | st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    buyer_invoice=st.none() | st.text(max_size=40),
    created_at=st.none() | i64,
    expires_at=st.none() | i64,
)


@settings(max_examples=300, deadline=None)
@given(order=small_orders)
def test_small_order_round_trip(order: SmallOrder) -> None:
    text = order.to_json()
    assert SmallOrder.from_value(json.loads(text)) == order
    decoded = json.loads(text)
    assert list(decoded) == [f.name for f in SmallOrder.FIELDS if not (f.omit_none and getattr(order, f.name) is None)]
    assert text == json.dumps(decoded, separators=(",", ":"), ensure_ascii=False)
