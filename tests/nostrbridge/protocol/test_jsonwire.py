"""The C fast paths (orjson, HMAC on SHA-256 objects, unrolled struct codecs) against the
reference paths they replace: same values, same bytes, same errors."""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import random
from collections.abc import Iterator
from json.encoder import encode_basestring

import orjson
import pytest
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from hypothesis import given, settings
from hypothesis import strategies as st

from nostrbridge.protocol import jsonwire, nip44, secp, structs
from nostrbridge.protocol.errors import EventIdMismatch, MalformedEvent, MessageParseError
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.nip01 import Event, _serialize_for_id_json, serialize_for_id, sign_event
from nostrbridge.protocol.wirefields import read_struct, write_struct
from tests.nostrbridge.protocol.conftest import MOSTRO_VECTORS

PUBKEY = "ab" * 32
CANONICAL = list(MOSTRO_VECTORS["canonical_messages"].values())


def _same(a: object, b: object) -> bool:
    """Equal values of equal types all the way down (1 != 1.0 != True, -0.0 != 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return a == b


def _reference_strict(text: str) -> tuple[str, object]:
    try:
        return "ok", jsonwire._loads_strict_json(text)
    except (ValueError, RecursionError):
        return "error", None


def _strict(text: str) -> tuple[str, object]:
    try:
        return "ok", jsonwire.loads_strict(text, MessageParseError)
    except MessageParseError:
        return "error", None


def _assert_strict_matches_reference(text: str) -> None:
    ours, reference = _strict(text), _reference_strict(text)
    assert ours[0] == reference[0], text
    assert _same(ours[1], reference[1]), text


# --- loads_strict: the orjson fast path never changes the strict parser's answer ------------

STRICT_CASES = [
    '{"a":1,"a":1}',  # duplicate, even with the same value: json path, rejected
    '{"a":{"b":1,"b":2}}',
    '[{"a":1},{"a":1,"c":{"d":[],"d":[]}}]',
    '{"a":1,"\\u0061":2}',  # a duplicate only after unescaping
    "[18446744073709551615,-9223372036854775808]",  # orjson's integer limits: kept as ints
    "[18446744073709551616]",  # beyond them orjson would give a float: json path keeps the int
    "[-9223372036854775809]",
    "[123456789012345678901234567890]",
    "[1" + "0" * 400 + "]",
    "[1e400]",
    "[-1e400]",
    "[1e-400]",
    "[NaN]",
    "[Infinity]",
    "[-Infinity]",
    "[1.0,1,-0,-0.0,0.1,1e-7,1e16,1E2,1.5e+3,5e-324,1.7976931348623157e308]",
    "[1.0]",
    "[1]",
    "[true,false,null]",
    '"\\ud800"',
    '"\\udc00"',
    '"\\ud83d\\ude00"',
    '"\\u00e9 é \\n \\" \\\\ \\/ \u2028"',
    '"\x7f"',
    '"\x1f"',
    "\ufeff[]",
    "[] ",
    " {} ",
    '{"a" : 1}',
    "[1,]",
    "[01]",
    "[+1]",
    "[.5]",
    "[1.]",
    "{}x",
    "[" * 300 + "]" * 300,
    "[" * 2000 + "]" * 2000,
    "",
    *CANONICAL,
    *(f"[{message},null]" for message in CANONICAL),
]


@pytest.mark.parametrize("text", STRICT_CASES)
def test_loads_strict_matches_the_json_reference(text: str) -> None:
    _assert_strict_matches_reference(text)


def test_loads_strict_still_rejects_duplicates_nan_and_lone_surrogates() -> None:
    for text in ['{"a":1,"a":1}', "[NaN]", "[1e400]", '"\\ud800"']:
        with pytest.raises(MessageParseError):
            jsonwire.loads_strict(text, MessageParseError)
    assert jsonwire.loads_strict("[18446744073709551616]", MessageParseError) == [2**64]
    assert type(jsonwire.loads_strict("[1.0]", MessageParseError)[0]) is float


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_documents = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=16,
)


@settings(max_examples=400, deadline=None)
@given(value=json_documents, style=st.sampled_from(["orjson", "compact", "spaced", "ascii"]))
def test_loads_strict_matches_the_json_reference_on_generated_documents(value: object, style: str) -> None:
    try:
        if style == "orjson":
            text = orjson.dumps(value).decode("utf-8")
        else:
            separators = (", ", ": ") if style == "spaced" else (",", ":")
            text = json.dumps(value, separators=separators, ensure_ascii=style == "ascii")
    except (TypeError, UnicodeEncodeError):  # beyond orjson's integers; lone surrogates
        return
    _assert_strict_matches_reference(text)
    if text.startswith("{") and len(text) > 2:  # the same document with its first key repeated
        _assert_strict_matches_reference(text[:-1] + "," + text[1:])


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet='{}[]",:-+.0123456789eEtruefalsnu\\ \u00e9\ud800', max_size=30))
def test_loads_strict_matches_the_json_reference_on_arbitrary_text(text: str) -> None:
    _assert_strict_matches_reference(text)


# --- loads_envelope on orjson --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["[NaN]", "[Infinity]", "[1e400]", '"\\ud800"', "\ud800", b"\xef\xbb\xbf{}", b"\xff", "{} x", "", "[" * 2000],
)
def test_loads_envelope_rejects_what_serde_json_rejects(text: str | bytes) -> None:
    with pytest.raises(MalformedEvent):
        jsonwire.loads_envelope(text, MalformedEvent)


def test_loads_envelope_takes_str_bytes_and_bytearray_only() -> None:
    for text in ['{"a":[1,2.5]}', b'{"a":[1,2.5]}', bytearray(b'{"a":[1,2.5]}')]:
        assert jsonwire.loads_envelope(text, MalformedEvent) == {"a": [1, 2.5]}
    with pytest.raises(MalformedEvent):
        jsonwire.loads_envelope(memoryview(b"{}"), MalformedEvent)  # type: ignore[arg-type]


def test_envelope_integers_beyond_64_bits_are_still_rejected_fields() -> None:
    event = Event.from_json(_signed_event_json())
    for created_at in ("18446744073709551616", "123456789012345678901234567890", "-9223372036854775809"):
        text = event.to_json().replace(f'"created_at":{event.created_at}', f'"created_at":{created_at}')
        with pytest.raises(MalformedEvent, match="created_at"):
            Event.from_json(text)


# --- event id preimage: orjson writes the bytes `json` wrote ------------------------------


def _signed_event_json() -> str:
    keys = Keys(bytes(31) + b"\x07")
    return sign_event(keys, kind=1, content="hi", tags=[["p", PUBKEY]], created_at=1, aux_rand=bytes(32)).to_json()


def test_id_preimage_escapes_every_code_point_like_json() -> None:
    code_points = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    for start in range(0, len(code_points), 4096):
        content = "".join(map(chr, code_points[start : start + 4096]))
        tags = [["t", content[:64], content[-64:]]]
        fast = jsonwire.dumps_id_preimage(PUBKEY, 1, 1, tags, content)
        assert fast is not None
        assert fast == _serialize_for_id_json(PUBKEY, 1, 1, tags, content)
        assert json.loads(fast) == [0, PUBKEY, 1, 1, tags, content]
    escaped = "".join(map(chr, range(0x80)))
    assert orjson.dumps(escaped).decode() == encode_basestring(escaped)


@pytest.mark.parametrize(
    ("tags", "content", "created_at"),
    [
        ([], "", 0),
        ([["p", PUBKEY], ["expiration", "1"]], "x" * 3000, 2**64 - 1),
        ([["e"]], '"\\\n\t\x00\x1f\x7f', -(2**63)),
        ([["p", "\ud800"]], "c", 1),  # lone surrogate in a tag: json path, MalformedEvent
        ([], "\udfff", 1),
        ([["p", 1]], "c", 1),  # not a string: json path writes it
        ([["p", 1.5e-7]], "c", 1),
        ([("p", "x")], "c", 1),  # a tuple tag
        ((["p", "x"],), "c", 1),
        ([], "c", 2**64),  # beyond orjson's integers
        ([], "c", -(2**63) - 1),
    ],
)
def test_serialize_for_id_matches_the_json_reference(tags: object, content: str, created_at: int) -> None:
    def outcome(func):
        try:
            return func(PUBKEY, created_at, 1, tags, content)
        except MalformedEvent as exc:
            return f"MalformedEvent: {exc}"

    assert outcome(serialize_for_id) == outcome(_serialize_for_id_json)


def test_dumps_id_preimage_declines_what_orjson_could_write_differently() -> None:
    class Text(str):
        __slots__ = ()

    assert jsonwire.dumps_id_preimage(Text(PUBKEY), 1, 1, [], "c") is None
    assert jsonwire.dumps_id_preimage(PUBKEY, 1, 1, [[Text("p")]], "c") is None
    assert jsonwire.dumps_id_preimage(PUBKEY, 1, 1, None, "c") is None  # type: ignore[arg-type]
    assert jsonwire.dumps_id_preimage(PUBKEY, True, 1, [], "c") is None
    assert jsonwire.dumps_id_preimage(PUBKEY, 1, 1, [], "\ud800") is None


def test_event_to_json_tags_match_dumps_compact() -> None:
    for tags in ([], [["p", PUBKEY], ["t", "é\n\u2028"]], [["p", "\ud800"]], [["p", 5]]):
        assert jsonwire.dumps_string_lists(tags) == jsonwire.dumps_compact(tags)  # type: ignore[arg-type]


def test_id_mismatch_still_detected_through_the_fast_path() -> None:
    text = _signed_event_json()
    assert Event.from_json(text).verify()
    with pytest.raises(EventIdMismatch):
        Event.from_json(text.replace('"content":"hi"', '"content":"ho"'))


# --- NIP-44 HMAC / HKDF on SHA-256 objects --------------------------------------------------


def test_hmac_sha256_matches_hmac_digest() -> None:
    rng = random.Random(44)
    for size in [0, 1, 31, 32, 33, 55, 56, 63, 64, 65, 127, 128, 1000, 2849, 65603]:
        key, data = rng.randbytes(32), rng.randbytes(size)
        expected = hmac.digest(key, data, "sha256")
        assert nip44._hmac_sha256(key, data) == expected
        assert nip44._hmac_sha256(key, memoryview(b"\x00" + data)[1:]) == expected
    for key in (bytes(32), b"\xff" * 32, b"\x36" * 32, b"\x5c" * 32):
        assert nip44._hmac_sha256(key, b"m") == hmac.digest(key, b"m", "sha256")


def test_message_keys_match_hkdf_expand() -> None:
    for _ in range(200):
        prk, nonce = os.urandom(32), os.urandom(32)
        okm = HKDFExpand(SHA256(), 76, nonce).derive(prk)
        assert nip44.get_message_keys(prk, nonce) == (okm[0:32], okm[32:44], okm[44:76])


def test_conversation_key_matches_hkdf_extract() -> None:
    for _ in range(20):
        ours, theirs = Keys.generate(), Keys.generate()
        shared = secp.shared_x(ours.secret, theirs.public_key)
        expected = hmac.digest(b"nip44-v2", shared, "sha256")
        assert nip44.get_conversation_key(ours.secret, theirs.public_key) == expected
        assert nip44.get_conversation_key(theirs.secret, ours.public_key) == expected


# --- unrolled struct readers and writers --------------------------------------------------


@contextlib.contextmanager
def _generic_struct_codecs() -> Iterator[None]:
    """Make every `_Struct` use the generic `read_struct` / `write_struct` loops."""
    saved = (structs._READERS.copy(), structs._WRITERS.copy(), structs.compile_struct_reader)
    saved_writer = structs.compile_struct_writer
    structs._READERS.clear()
    structs._WRITERS.clear()
    structs.compile_struct_reader = lambda cls, fields, allowed=None: (  # type: ignore[assignment]
        lambda value, where: read_struct(cls, fields, value, where, allowed)
    )
    structs.compile_struct_writer = lambda fields: lambda obj: write_struct(obj, fields)  # type: ignore[assignment]
    try:
        yield
    finally:
        structs._READERS.clear()
        structs._WRITERS.clear()
        structs._READERS.update(saved[0])
        structs._WRITERS.update(saved[1])
        structs.compile_struct_reader = saved[2]  # type: ignore[assignment]
        structs.compile_struct_writer = saved_writer  # type: ignore[assignment]


def _parse(value: object) -> tuple[str, object]:
    try:
        message = Message.from_value(value)
    except MessageParseError as exc:
        return "error", str(exc)
    return message.to_json(), message


def _mutations(value: object, rng: random.Random) -> Iterator[object]:
    """The value with one node replaced by a value of another JSON type, one at a time."""
    replacements = [None, True, 0, -1, 2**64, 1.5, "", "x", [], {}, [1], {"x": 1}]
    if isinstance(value, dict):
        for key in list(value):
            for replacement in rng.sample(replacements, 4):
                yield {**value, key: replacement}
            for inner in _mutations(value[key], rng):
                yield {**value, key: inner}
            yield {k: v for k, v in value.items() if k != key}
        yield {**value, "unknown_field": 1}
    elif isinstance(value, list):
        for index, item in enumerate(value):
            for inner in _mutations(item, rng):
                yield [*value[:index], inner, *value[index + 1 :]]


def test_unrolled_struct_codecs_match_the_generic_loops() -> None:
    rng = random.Random(7)
    values = []
    for text in CANONICAL:
        value = json.loads(text)
        values.append(value)
        values.extend(_mutations(value, rng))
    ours = [_parse(value) for value in values]
    with _generic_struct_codecs():
        generic = [_parse(value) for value in values]
    assert ours == generic
    assert sum(result[0] != "error" for result in ours) > len(CANONICAL)
    assert sum(result[0] == "error" for result in ours) > len(CANONICAL)
