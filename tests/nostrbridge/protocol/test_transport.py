"""Content tuples, inner signatures and both envelopes against mostro.vectors.json (docs/PROTOCOL.md §Transports)."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from nostrbridge.protocol import nip44
from nostrbridge.protocol.errors import (
    BadSignature,
    MalformedEnvelope,
    MessageParseError,
    NotForUs,
    WrongKind,
)
from nostrbridge.protocol.giftwrap import make_rumor, parse_rumor, reply_v1, unwrap_v1, wrap_v1
from nostrbridge.protocol.keys import Keys, verify_signature
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.nip01 import Event, sign_event
from nostrbridge.protocol.transport import (
    decode_content,
    identity_proof_payload,
    reply_v2,
    sign_identity_proof,
    sign_message,
    stamp_version,
    unwrap_v2,
    wrap_v2,
)
from tests.nostrbridge.protocol.conftest import MOSTRO_VECTORS, ZERO_AUX
from tests.nostrbridge.protocol.test_messages import with_counterparty

TUPLES = MOSTRO_VECTORS["content_tuples_v2"]
V2 = MOSTRO_VECTORS["v2_client_event"]
REPLY = MOSTRO_VECTORS["v2_mostro_reply_event"]
V1 = MOSTRO_VECTORS["v1_giftwrap"]


def _sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@pytest.mark.parametrize("label", TUPLES)
def test_content_tuple_v2_signatures_verify(label: str, keys: dict[str, Keys]) -> None:
    message, trade_sig, proof = json.loads(TUPLES[label])
    message_json = Message.from_value(message).to_json()
    expected = MOSTRO_VECTORS["canonical_messages"][label]
    if label == "F05_restore_resp":  # written by mostro-core 0.15 with the new null field
        expected = with_counterparty(expected, None, None)
    assert message_json == expected
    if trade_sig is None:  # node messages: [msg, null, null]
        assert proof is None
        return
    identity_pk, identity_sig = proof
    identity = next(k for k in keys.values() if k.public_key_hex == identity_pk)
    # The trade key is the one whose signature verifies; the proof must bind exactly that key.
    trade = [k for k in keys.values() if verify_signature(k.public_key, _sha(message_json), bytes.fromhex(trade_sig))]
    assert len(trade) == 1
    payload = identity_proof_payload(trade[0].public_key_hex, message_json)
    assert verify_signature(identity.public_key, _sha(payload), bytes.fromhex(identity_sig))
    other = next(k for k in keys.values() if k not in (trade[0], identity))
    assert not verify_signature(
        identity.public_key,
        _sha(identity_proof_payload(other.public_key_hex, message_json)),
        bytes.fromhex(identity_sig),
    )


def test_v2_client_event_step_by_step(keys: dict[str, Keys]) -> None:
    trade, identity, node = keys["alice-trade-1"], keys["alice-identity"], keys["mostro-node"]
    assert hashlib.sha256(V2["message_json"].encode()).hexdigest() == V2["message_sha256"]
    assert sign_message(V2["message_json"], trade, ZERO_AUX) == V2["trade_sig"]
    assert identity_proof_payload(trade.public_key_hex, V2["message_json"]) == V2["identity_payload"]
    assert hashlib.sha256(V2["identity_payload"].encode()).hexdigest() == V2["identity_payload_sha256"]
    assert sign_identity_proof(V2["message_json"], trade.public_key_hex, identity, ZERO_AUX) == V2["identity_sig"]
    event = Event.from_dict(V2["event"])
    assert event.verify()
    key = nip44.get_conversation_key(node.secret, trade.public_key)
    assert key.hex() == V2["conversation_key"]
    assert nip44.decrypt(event.content, key) == V2["plaintext"]
    assert nip44.encrypt(V2["plaintext"], key, bytes.fromhex(V2["nonce"])) == event.content


def test_wrap_v2_reproduces_client_event(keys: dict[str, Keys]) -> None:
    event = wrap_v2(
        Message.from_json(V2["message_json"]),
        keys["alice-trade-1"],
        keys["mostro-node"].public_key_hex,
        identity_keys=keys["alice-identity"],
        expiration_ts=1702592000,
        created_at=1700000000,
        nonce=bytes.fromhex(V2["nonce"]),
        aux_rand=ZERO_AUX,
    )
    assert event.to_dict() == V2["event"]


def test_unwrap_v2_client_event(keys: dict[str, Keys]) -> None:
    unwrapped = unwrap_v2(Event.from_dict(V2["event"]), keys["mostro-node"])
    assert unwrapped.event_id == V2["event"]["id"]
    assert unwrapped.sender == keys["alice-trade-1"].public_key_hex
    assert unwrapped.identity == keys["alice-identity"].public_key_hex
    assert unwrapped.created_at == 1700000000
    assert unwrapped.message_json == V2["message_json"]
    assert unwrapped.content == V2["plaintext"]
    assert unwrapped.trade_signature == V2["trade_sig"]
    assert unwrapped.has_identity_proof
    assert unwrapped.has_trade_signature
    assert not unwrapped.is_full_privacy
    assert unwrapped.transport_version == 2
    assert unwrapped.rumor_id is None


def test_reply_v2_reproduces_node_reply(keys: dict[str, Keys]) -> None:
    message = Message.from_value(json.loads(REPLY["plaintext"])[0])
    event = reply_v2(
        message,
        keys["mostro-node"],
        keys["alice-trade-1"].public_key_hex,
        now=1700000001,
        nonce=bytes.fromhex(REPLY["nonce"]),
        aux_rand=ZERO_AUX,
    )
    assert event.to_dict() == REPLY["event"]
    # dm_days = 30: expiration = now + 30 days.
    assert event.tag_value("expiration") == str(1700000001 + 30 * 86400)


def test_client_unwraps_node_reply(keys: dict[str, Keys]) -> None:
    unwrapped = unwrap_v2(Event.from_dict(REPLY["event"]), keys["alice-trade-1"])
    assert unwrapped.sender == unwrapped.identity == keys["mostro-node"].public_key_hex
    assert unwrapped.trade_signature is None
    assert not unwrapped.has_identity_proof
    assert json.loads(REPLY["plaintext"])[0] == json.loads(unwrapped.message_json)


def test_reply_v2_stamps_version_2(keys: dict[str, Keys]) -> None:
    message = Message.from_json(V1["message_json"])  # version 1
    event = reply_v2(message, keys["mostro-node"], keys["bob-trade-1"].public_key_hex)
    plaintext = nip44.decrypt(
        event.content, nip44.get_conversation_key(keys["bob-trade-1"].secret, keys["mostro-node"].public_key)
    )
    assert plaintext == "[" + V1["message_json"].replace('"version":1', '"version":2') + ",null,null]"


# --- v1 gift wrap ----------------------------------------------------------------


def test_unwrap_v1_vector_down_to_the_rumor(keys: dict[str, Keys]) -> None:
    node = keys["mostro-node"]
    wrap = Event.from_dict(V1["wrap"])
    seal_json = nip44.decrypt(wrap.content, nip44.get_conversation_key(node.secret, bytes.fromhex(wrap.pubkey)))
    seal = Event.from_json(seal_json)
    assert seal.to_dict() == V1["seal"]
    rumor_json = nip44.decrypt(seal.content, nip44.get_conversation_key(node.secret, bytes.fromhex(seal.pubkey)))
    assert rumor_json == V1["rumor_json"]
    rumor = parse_rumor(rumor_json)
    assert rumor.id == V1["rumor"]["id"]
    assert rumor.to_json() == V1["rumor_json"]
    unwrapped = unwrap_v1(wrap, node)
    assert unwrapped.event_id == V1["wrap"]["id"]
    assert unwrapped.rumor_id == V1["rumor"]["id"]
    assert unwrapped.sender == keys["alice-trade-1"].public_key_hex
    assert unwrapped.identity == keys["alice-identity"].public_key_hex  # seal signer != rumor author
    assert unwrapped.created_at == 1700000000  # the rumor's time, not the tweaked ones
    assert unwrapped.message_json == V1["message_json"]
    assert unwrapped.content == V1["rumor"]["content"]
    assert unwrapped.trade_signature == V1["trade_sig"]
    assert verify_signature(keys["alice-trade-1"].public_key, _sha(V1["message_json"]), bytes.fromhex(V1["trade_sig"]))


def test_wrap_v1_reproduces_vector(keys: dict[str, Keys]) -> None:
    wrap = wrap_v1(
        Message.from_json(V1["message_json"]),
        keys["alice-trade-1"],
        keys["mostro-node"].public_key_hex,
        identity_keys=keys["alice-identity"],
        created_at=1700000000,
        seal_created_at=1699912345,
        wrap_created_at=1699954321,
        seal_nonce=bytes.fromhex(V1["nonces"]["seal"]),
        wrap_nonce=bytes.fromhex(V1["nonces"]["wrap"]),
        ephemeral_keys=keys["ephemeral-1"],
        aux_rand=ZERO_AUX,
    )
    assert wrap.to_dict() == V1["wrap"]


def test_wrap_v1_randomises_seal_and_wrap_times(keys: dict[str, Keys]) -> None:
    before = int(time.time())
    message = Message.from_json(V1["message_json"])
    wrap = wrap_v1(message, keys["bob-trade-1"], keys["mostro-node"].public_key_hex, expiration_ts=before + 99)
    after = int(time.time())
    assert before - 2 * 86400 <= wrap.created_at <= after
    assert wrap.tags == [["expiration", str(before + 99)], ["p", keys["mostro-node"].public_key_hex]]
    unwrapped = unwrap_v1(wrap, keys["mostro-node"])
    assert before <= unwrapped.created_at <= after
    assert unwrapped.is_full_privacy
    assert unwrapped.has_trade_signature


def test_reply_v1_node_message_has_null_signature_and_no_expiration(keys: dict[str, Keys]) -> None:
    message = Message.from_json(MOSTRO_VECTORS["canonical_messages"]["A02_new_order_ack"])
    wrap = reply_v1(message, keys["mostro-node"], keys["alice-trade-1"].public_key_hex, now=1700000000)
    assert wrap.tags == [["p", keys["alice-trade-1"].public_key_hex]]
    unwrapped = unwrap_v1(wrap, keys["alice-trade-1"])
    assert unwrapped.sender == unwrapped.identity == keys["mostro-node"].public_key_hex
    assert unwrapped.trade_signature is None
    assert unwrapped.message.kind.version == 1
    assert unwrapped.created_at == 1700000000


def test_stamp_version() -> None:
    message = Message.from_json(V1["message_json"])
    assert stamp_version(message, 2).kind.version == 2
    assert stamp_version(message, 1) is message
    with pytest.raises(ValueError, match="1 or 2"):
        stamp_version(message, 3)


# --- rejection paths ------------------------------------------------------------------


def _client_v2(keys: dict[str, Keys], plaintext: str, *, author: str = "alice-trade-1") -> Event:
    trade, node = keys[author], keys["mostro-node"]
    content = nip44.encrypt(plaintext, nip44.get_conversation_key(trade.secret, node.public_key))
    return sign_event(trade, kind=14, content=content, tags=[["p", node.public_key_hex]], created_at=1700000000)


def test_unwrap_v2_rejects_wrong_kind_and_bad_signature(keys: dict[str, Keys]) -> None:
    raw = dict(V2["event"])
    with pytest.raises(WrongKind):
        unwrap_v2(Event.from_dict(MOSTRO_VECTORS["published_events"]["rating_38384"]), keys["mostro-node"])
    raw["sig"] = "0" * 128
    with pytest.raises(BadSignature):
        unwrap_v2(Event.from_dict(raw), keys["mostro-node"])


def test_unwrap_v2_event_for_someone_else_is_not_for_us(keys: dict[str, Keys]) -> None:
    with pytest.raises(NotForUs):
        unwrap_v2(Event.from_dict(V2["event"]), keys["solver-identity"])


@pytest.mark.parametrize(
    "plaintext",
    [
        "[" + V2["message_json"] + "," + json.dumps(V2["trade_sig"]) + "]",  # v1 arity on v2
        "[" + V2["message_json"] + ",null,null,null]",
        "{}",
        "[" + V2["message_json"] + ",5,null]",
        "[" + V2["message_json"] + ',null,["ab"]]',
        "[" + V2["message_json"] + ",null,5]",
        '[{"order":{"version":2}},null,null]',
    ],
)
def test_unwrap_v2_rejects_malformed_tuples(keys: dict[str, Keys], plaintext: str) -> None:
    with pytest.raises(MessageParseError):
        unwrap_v2(_client_v2(keys, plaintext), keys["mostro-node"])


def test_unwrap_v2_rejects_trade_signature_over_non_canonical_bytes(keys: dict[str, Keys]) -> None:
    reordered = json.dumps(json.loads(V2["message_json"]), sort_keys=True, separators=(",", ":"))
    signature = sign_message(reordered, keys["alice-trade-1"])
    with pytest.raises(BadSignature, match="trade signature"):
        unwrap_v2(_client_v2(keys, f'[{reordered},"{signature}",null]'), keys["mostro-node"])
    # The same bytes signed canonically pass, whatever order the client sent.
    signature = sign_message(V2["message_json"], keys["alice-trade-1"])
    assert unwrap_v2(_client_v2(keys, f'[{reordered},"{signature}",null]'), keys["mostro-node"]).has_trade_signature


def test_identity_proof_cannot_move_to_another_trade_key(keys: dict[str, Keys]) -> None:
    # Alice's proof, bound to alice-trade-1, replayed by bob-trade-1 inside his own event.
    plaintext = V2["plaintext"].replace(V2["trade_sig"], sign_message(V2["message_json"], keys["bob-trade-1"]))
    with pytest.raises(BadSignature, match="identity proof"):
        unwrap_v2(_client_v2(keys, plaintext, author="bob-trade-1"), keys["mostro-node"])


@pytest.mark.parametrize(
    "proof",
    [
        '["' + "zz" * 32 + '","' + "00" * 64 + '"]',
        '["' + "ff" * 32 + '","' + "00" * 64 + '"]',
        '["' + "ab" * 32 + '","00"]',
    ],
    ids=["non-hex-pubkey", "off-curve-pubkey", "short-signature"],
)
def test_unwrap_v2_rejects_unparseable_identity_proof(keys: dict[str, Keys], proof: str) -> None:
    with pytest.raises(BadSignature):
        unwrap_v2(_client_v2(keys, f"[{V2['message_json']},null,{proof}]"), keys["mostro-node"])


def _wrap_with_custom_seal(keys: dict[str, Keys], seal: Event) -> Event:
    node, ephemeral = keys["mostro-node"], keys["ephemeral-1"]
    content = nip44.encrypt(seal.to_json(), nip44.get_conversation_key(ephemeral.secret, node.public_key))
    return sign_event(ephemeral, kind=1059, content=content, tags=[["p", node.public_key_hex]], created_at=1)


def _seal(keys: dict[str, Keys], rumor_json: str, *, kind: int = 13) -> Event:
    identity, node = keys["alice-identity"], keys["mostro-node"]
    content = nip44.encrypt(rumor_json, nip44.get_conversation_key(identity.secret, node.public_key))
    return sign_event(identity, kind=kind, content=content, tags=[], created_at=1)


def test_unwrap_v1_rejects_seal_of_wrong_kind(keys: dict[str, Keys]) -> None:
    with pytest.raises(MalformedEnvelope, match="seal"):
        unwrap_v1(_wrap_with_custom_seal(keys, _seal(keys, V1["rumor_json"], kind=14)), keys["mostro-node"])


def test_unwrap_v1_rejects_badly_signed_seal(keys: dict[str, Keys]) -> None:
    seal = _seal(keys, V1["rumor_json"])
    seal.sig = "1" * 128
    with pytest.raises(BadSignature, match="seal"):
        unwrap_v1(_wrap_with_custom_seal(keys, seal), keys["mostro-node"])


@pytest.mark.parametrize(
    "rumor_json",
    [
        V1["rumor_json"].replace('"kind":1,', '"kind":14,'),
        V1["rumor_json"].replace(V1["rumor"]["id"], "0" * 63),
        json.dumps({k: v for k, v in V1["rumor"].items() if k != "pubkey"}),
        "not json",
    ],
    ids=["rumor-kind-14", "rumor-id-malformed", "rumor-without-pubkey", "rumor-not-json"],
)
def test_unwrap_v1_rejects_bad_rumor(keys: dict[str, Keys], rumor_json: str) -> None:
    with pytest.raises(MalformedEnvelope):
        unwrap_v1(_wrap_with_custom_seal(keys, _seal(keys, rumor_json)), keys["mostro-node"])


def test_unwrap_v1_does_not_recompute_a_present_rumor_id(keys: dict[str, Keys]) -> None:
    # The v1 receiving rules (docs/PROTOCOL.md §Transport-v1) never check the rumor id (the seal
    # signature covers the rumor bytes); only its form.
    rumor_json = V1["rumor_json"].replace(V1["rumor"]["id"], "AB" * 32)
    unwrapped = unwrap_v1(_wrap_with_custom_seal(keys, _seal(keys, rumor_json)), keys["mostro-node"])
    assert unwrapped.rumor_id == "ab" * 32
    assert unwrapped.message_json == V1["message_json"]


def test_unwrap_v1_accepts_rumor_without_id(keys: dict[str, Keys]) -> None:
    rumor = {k: v for k, v in V1["rumor"].items() if k != "id"}
    unwrapped = unwrap_v1(_wrap_with_custom_seal(keys, _seal(keys, json.dumps(rumor))), keys["mostro-node"])
    assert unwrapped.rumor_id == V1["rumor"]["id"]
    assert unwrapped.trade_signature == V1["trade_sig"]


def test_unwrap_v1_rejects_bad_trade_signature(keys: dict[str, Keys]) -> None:
    rumor = make_rumor(keys["alice-trade-1"], f'[{V1["message_json"]},"{"0" * 128}"]', 1700000000)
    with pytest.raises(BadSignature, match="trade signature"):
        unwrap_v1(_wrap_with_custom_seal(keys, _seal(keys, rumor.to_json())), keys["mostro-node"])


def test_unwrap_v1_gift_wrap_for_someone_else(keys: dict[str, Keys]) -> None:
    with pytest.raises(NotForUs):
        unwrap_v1(Event.from_dict(V1["wrap"]), keys["bob-identity"])
    with pytest.raises(WrongKind):
        unwrap_v1(Event.from_dict(V2["event"]), keys["mostro-node"])


def test_decode_content_checks_arity() -> None:
    with pytest.raises(MessageParseError, match="exactly 2"):
        decode_content("[" + V1["message_json"] + ",null,null]", 2)
