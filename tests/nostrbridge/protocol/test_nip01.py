"""NIP-01 events: canonical id, strict parsing, signatures, NIP-13 proof of work."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest

from nostrbridge.protocol.errors import EventIdMismatch, MalformedEvent
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.nip01 import Event, event_id, leading_zero_bits, mine_pow, sign_event
from tests.nostrbridge.protocol.conftest import MOSTRO_VECTORS, ZERO_AUX

SIGNED_EVENTS = {
    "v2_client_event": MOSTRO_VECTORS["v2_client_event"]["event"],
    "v2_mostro_reply_event": MOSTRO_VECTORS["v2_mostro_reply_event"]["event"],
    "v1_seal": MOSTRO_VECTORS["v1_giftwrap"]["seal"],
    "v1_wrap": MOSTRO_VECTORS["v1_giftwrap"]["wrap"],
    **MOSTRO_VECTORS["published_events"],
}


@pytest.mark.parametrize("label", SIGNED_EVENTS)
def test_vector_events_parse_and_verify(label: str) -> None:
    raw = SIGNED_EVENTS[label]
    event = Event.from_dict(raw)
    assert event.compute_id() == raw["id"]
    assert event.verify()
    assert event.to_dict() == raw
    assert Event.from_json(event.to_json()) == event


def test_id_serialization_escapes_like_nip01() -> None:
    content = 'quote " backslash \\ nl \n tab \t cr \r bs \b ff \f nul \x00 us \x1f del \x7f é ✓ /'
    serialized = json.dumps([0, "ab" * 32, 1, 1, [["t", "é"]], content], separators=(",", ":"), ensure_ascii=False)
    assert "\\u0000" in serialized
    assert "\\b" in serialized
    assert "\x7f" in serialized
    assert "é" in serialized
    assert event_id("ab" * 32, 1, 1, [["t", "é"]], content) == hashlib.sha256(serialized.encode()).hexdigest()


def test_long_ascii_content_uses_same_bytes_as_json_dumps() -> None:
    for content in ("A" * 500, "A" * 499 + '"', "A" * 499 + "\\", "A" * 499 + "\x01", "A" * 499 + "é"):
        expected = json.dumps([0, "ab" * 32, 5, 14, [], content], separators=(",", ":"), ensure_ascii=False)
        assert event_id("ab" * 32, 5, 14, [], content) == hashlib.sha256(expected.encode()).hexdigest()


def test_sign_event_with_zero_aux_reproduces_vector(keys: dict[str, Keys]) -> None:
    raw = MOSTRO_VECTORS["published_events"]["rating_38384"]
    event = sign_event(
        keys["mostro-node"],
        kind=raw["kind"],
        content=raw["content"],
        tags=raw["tags"],
        created_at=raw["created_at"],
        aux_rand=ZERO_AUX,
    )
    assert event.to_dict() == raw


VALID = MOSTRO_VECTORS["v2_client_event"]["event"]


def _mutated(**changes: object) -> dict:
    raw = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is KeyError:
            del raw[key]
        else:
            raw[key] = value
    return raw


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_mutated(id=VALID["id"].upper()), id="uppercase-id"),
        pytest.param(_mutated(id=VALID["id"][:-1]), id="short-id"),
        pytest.param(_mutated(pubkey=KeyError), id="missing-pubkey"),
        pytest.param(_mutated(created_at="1700000000"), id="string-created-at"),
        pytest.param(_mutated(created_at=True), id="bool-created-at"),
        pytest.param(_mutated(created_at=1.7e9), id="float-created-at"),
        pytest.param(_mutated(created_at=-1), id="negative-created-at"),
        pytest.param(_mutated(kind=70000), id="kind-out-of-u16"),
        pytest.param(_mutated(tags=[["p"], []]), id="empty-tag"),
        pytest.param(_mutated(tags=[["p", 1]]), id="non-string-tag-value"),
        pytest.param(_mutated(tags={"p": "x"}), id="tags-not-array"),
        pytest.param(_mutated(content=None), id="null-content"),
        pytest.param(_mutated(sig=VALID["sig"][:-2]), id="short-sig"),
        pytest.param(_mutated(sig="g" * 128), id="non-hex-sig"),
        pytest.param([], id="not-an-object"),
    ],
)
def test_from_dict_rejects_malformed(raw: object) -> None:
    with pytest.raises(MalformedEvent):
        Event.from_dict(raw)


@pytest.mark.parametrize("field", ["content", "created_at", "tags", "kind"])
def test_from_dict_rejects_id_mismatch(field: str) -> None:
    changed = {"content": "x", "created_at": 1700000001, "tags": [["p", "x"]], "kind": 15}[field]
    with pytest.raises(EventIdMismatch):
        Event.from_dict(_mutated(**{field: changed}))


@pytest.mark.parametrize(
    "text",
    [
        '{"kind":NaN}',
        "[1e400]",
        '{"a":' * 100000,
        b"\xff\xfe{}",
        "\ud800",
    ],
    ids=["nan", "overflow", "deep-nesting", "bad-utf8", "lone-surrogate"],
)
def test_from_json_rejects_what_serde_json_rejects(text: str | bytes) -> None:
    with pytest.raises(MalformedEvent):
        Event.from_json(text)


def test_duplicate_envelope_keys_resolve_to_the_signed_value() -> None:
    # Envelope JSON skips duplicate-key detection: the last value wins and must match the id.
    text = json.dumps(VALID)[:-1] + ', "content": "forged"}'
    with pytest.raises(EventIdMismatch):
        Event.from_json(text)
    text = json.dumps(VALID)[:-1] + ', "content": ' + json.dumps(VALID["content"]) + "}"
    assert Event.from_json(text).verify()


def test_bad_signature_fails_verify_but_parses() -> None:
    raw = _mutated(sig="0" * 128)
    event = Event.from_dict(raw)
    assert not event.verify_signature()
    assert not event.verify()


@pytest.mark.parametrize(
    ("id_hex", "bits"),
    [("f" * 64, 0), ("7" + "f" * 63, 1), ("0" * 63 + "1", 255), ("0" * 64, 256), ("000" + "1" + "f" * 60, 15)],
)
def test_leading_zero_bits(id_hex: str, bits: int) -> None:
    assert leading_zero_bits(id_hex) == bits


def test_mine_pow_appends_nonce_tag_after_other_tags(keys: dict[str, Keys]) -> None:
    tags = [["p", "ab" * 32], ["nonce", "9", "99"], ["expiration", "1"]]
    event = mine_pow(keys["alice-trade-1"], kind=14, content="x", tags=tags, created_at=1700000000, difficulty=10)
    assert leading_zero_bits(event.id) >= 10
    assert event.tags[:2] == [["p", "ab" * 32], ["expiration", "1"]]
    assert event.tags[2][0] == "nonce"
    assert event.tags[2][2] == "10"
    assert len(event.tags) == 3
    assert event.verify()
