"""JSON as serde_json reads and writes it: a strict loader and Rust float formatting.

Python's `json` accepts things serde_json rejects (NaN, Infinity, duplicate keys,
numbers that overflow to infinity, UTF-16 input) and writes floats differently
(`1e-07` instead of `1e-7`). Messages are parsed with `loads_strict` so that what parses
here is what the Rust daemon parses; signed envelopes with the cheaper `loads_envelope`.
Both run orjson (C) first; `loads_strict` keeps its result only when it provably equals
what the strict `json` path would return, which otherwise decides.
"""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring
from typing import Any

import orjson

from nostrbridge.protocol.errors import ProtocolError

# Compact form with raw UTF-8: identical escaping to serde_json (docs/PROTOCOL.md §Messages rule 4).
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class _StrictJsonError(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _StrictJsonError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _StrictJsonError("number out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _StrictJsonError("duplicate key in object")
    return obj


_decode = json.JSONDecoder(
    object_pairs_hook=_unique_keys, parse_constant=_reject_constant, parse_float=_finite_float
).decode
_orjson_loads = orjson.loads
_orjson_dumps = orjson.dumps


def loads_strict(text: str | bytes, error: type[ProtocolError]) -> Any:
    """Parse JSON like serde_json; any failure raises `error` (a `ProtocolError` subclass).

    Fast path: orjson (in C) parses, and its value is taken only when orjson writes it back to
    exactly the input bytes. That equality proves the value is the one the `json` path below
    would build: no object had a duplicate key (a dict cannot write a key twice), no integer
    went beyond 64 bits (orjson would have turned it into a float, written differently), every
    float is the correctly rounded one (its shortest form reads back to it) and no escape hid a
    lone surrogate (orjson refuses them). Anything else (whitespace, other escapes or number
    spellings, and every error) takes the `json` path, whose result and errors are the rule.
    """
    try:
        if isinstance(text, bytes | bytearray):
            text = bytes(text).decode("utf-8")
        elif not isinstance(text, str):
            raise error("JSON input must be str or bytes")
        try:
            value = _orjson_loads(text)
            if _orjson_dumps(value) == text.encode("utf-8"):
                return value
        except (ValueError, TypeError):  # orjson's decode / encode errors (depth limits included)
            pass
        return _loads_strict_json(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, Unicode errors, int digit limit
        raise error(f"invalid JSON: {exc}") from exc


def _loads_strict_json(text: str) -> Any:
    """The reference strict parse on `json`; raises ValueError or RecursionError."""
    value = _decode(text)
    if "\\u" in text:
        # Only escapes can smuggle a lone surrogate ("\ud800"), which serde_json refuses
        # and UTF-8 cannot encode; re-encoding proves there is none.
        _dumps(value).encode("utf-8")
    return value


# Bytes that JSON must escape; everything else is copied verbatim by serde_json.
_JSON_SPECIAL_BYTES = b'"\\' + bytes(range(0x20))
# Below this length the C escaper is already faster than the check.
_FAST_STRING_MIN_CHARS = 128


def json_string(value: str) -> str:
    """A JSON string literal escaped like serde_json (quotes, backslash, control characters).

    Long ASCII strings without special characters, such as NIP-44 base64 payloads, skip the
    character-by-character escaper: one C-level `translate` proves nothing needs escaping.
    """
    if len(value) >= _FAST_STRING_MIN_CHARS and value.isascii():
        raw = value.encode("ascii")
        if len(raw.translate(None, _JSON_SPECIAL_BYTES)) == len(raw):
            return '"' + value + '"'
    return encode_basestring(value)


def loads_envelope(text: str | bytes, error: type[ProtocolError]) -> Any:
    """`loads_strict` for event envelopes (wrap, seal, rumor, kind 14), minus duplicate-key checks.

    Every field taken from an envelope is bound by its id and signature (or, for the rumor, by
    the seal signature over its encrypted bytes), so a duplicate key cannot change what the
    signer meant (the last one wins, as with `json`). That is the one rule orjson cannot keep,
    so envelopes are parsed by orjson (in C, 2.5-5× faster than `json`); it rejects everything
    else serde_json rejects: NaN/Infinity, numbers that overflow to infinity, invalid UTF-8, a
    byte-order mark, lone surrogates ("\ud800"), trailing data. Integers beyond 64 bits become
    floats instead of ints: a value no envelope field (u64 `created_at`, u16 `kind`) accepts.
    """
    if not isinstance(text, str | bytes | bytearray):
        raise error("JSON input must be str or bytes")
    try:
        return _orjson_loads(text)
    except ValueError as exc:  # orjson.JSONDecodeError, including "str is not valid UTF-8"
        raise error(f"invalid JSON: {exc}") from exc


def is_string_lists(value: object) -> bool:
    """True for a `list` of `list`s of `str` (exact types): the shape of event tags."""
    if type(value) is not list:
        return False
    for tag in value:
        if type(tag) is not list:
            return False
        for item in tag:
            if type(item) is not str:
                return False
    return True


def dumps_id_preimage(pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str) -> bytes | None:
    """UTF-8 of the compact JSON `[0,pubkey,created_at,kind,tags,content]` in one C call, or None.

    orjson escapes strings exactly like serde_json and `json` with `ensure_ascii=False` (the
    tests compare every code point), writes 64-bit integers as digits and emits compact UTF-8.
    None for anything it could write differently or refuses (another type or a subclass, a
    lone surrogate, an integer beyond 64 bits): the caller's `json` path then decides.
    """
    if type(pubkey) is not str or type(content) is not str or type(created_at) is not int or type(kind) is not int:
        return None
    if not is_string_lists(tags):
        return None
    try:
        return _orjson_dumps([0, pubkey, created_at, kind, tags, content])
    except orjson.JSONEncodeError:
        return None


def dumps_string_lists(value: list[list[str]]) -> str:
    """Compact JSON of a list of lists of strings (event tags); `dumps_compact` for anything else."""
    if is_string_lists(value):
        try:
            return _orjson_dumps(value).decode("utf-8")
        except orjson.JSONEncodeError:  # a lone surrogate: `json` writes it, as before
            pass
    return _dumps(value)


def dumps_compact(value: Any) -> str:
    """Compact JSON (no whitespace, raw UTF-8) for values without floats."""
    return _dumps(value)


def _digits_and_exponent(value: float) -> tuple[str, int]:
    """Shortest round-trip digits d1d2…dn and exponent e with value = 0.d1d2…dn × 10**e."""
    # Python's repr already yields the shortest round-trip digits (same digits as ryu).
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = (int_part + frac_part).lstrip("0")
    leading_zeros = len(int_part + frac_part) - len((int_part + frac_part).lstrip("0"))
    exponent = len(int_part) - leading_zeros + (int(exp_text) if exp_text else 0)
    return digits.rstrip("0") or "0", exponent


def serde_float(value: float) -> str:
    """f64 as serde_json writes it (ryu): `0.0`, `4.5`, `1e16`, `1e-7`, `0.00001`."""
    if not math.isfinite(value):
        return "null"  # serde_json writes non-finite floats as null
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0.0"
    digits, kk = _digits_and_exponent(value)  # 10**(kk-1) <= |value| < 10**kk
    length = len(digits)
    if length <= kk <= 16:
        text = digits + "0" * (kk - length) + ".0"
    elif 0 < kk <= 16:
        text = digits[:kk] + "." + digits[kk:]
    elif -5 < kk <= 0:
        text = "0." + "0" * -kk + digits
    elif length == 1:
        text = f"{digits}e{kk - 1}"
    else:
        text = f"{digits[0]}.{digits[1:]}e{kk - 1}"
    return sign + text


def rust_display_float(value: float) -> str:
    """f64 as Rust's `Display` writes it: shortest digits, never an exponent, no `.0` (`5`, `0.006`)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, kk = _digits_and_exponent(value)
    if kk <= 0:
        return sign + "0." + "0" * -kk + digits
    if kk >= len(digits):
        return sign + digits + "0" * (kk - len(digits))
    return sign + digits[:kk] + "." + digits[kk:]
