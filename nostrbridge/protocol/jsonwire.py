"""JSON as serde_json reads and writes it: a strict loader and Rust float formatting.

Python's `json` accepts things serde_json rejects (NaN, Infinity, duplicate keys,
numbers that overflow to infinity, UTF-16 input) and writes floats differently
(`1e-07` instead of `1e-7`). Messages are parsed with `loads_strict` so that what parses
here is what the Rust daemon parses; signed envelopes with the cheaper `loads_envelope`.
"""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring
from typing import Any

from nostrbridge.protocol.errors import ProtocolError

# Compact form with raw UTF-8: identical escaping to serde_json (02-messages.md §3 rule 4).
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
_decode_envelope = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float).decode


def loads_strict(text: str | bytes, error: type[ProtocolError]) -> Any:
    """Parse JSON like serde_json; any failure raises `error` (a `ProtocolError` subclass)."""
    try:
        if isinstance(text, bytes | bytearray):
            text = bytes(text).decode("utf-8")
        elif not isinstance(text, str):
            raise error("JSON input must be str or bytes")
        value = _decode(text)
        if "\\u" in text:
            # Only escapes can smuggle a lone surrogate ("\ud800"), which serde_json refuses
            # and UTF-8 cannot encode; re-encoding proves there is none.
            _dumps(value).encode("utf-8")
        return value
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, Unicode errors, int digit limit
        raise error(f"invalid JSON: {exc}") from exc


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
    signer meant; skipping the per-object hook saves a tenth of a gift-wrap unwrap. Lone
    surrogates are caught when the id is computed (the text must encode as UTF-8).
    """
    try:
        if isinstance(text, bytes | bytearray):
            text = bytes(text).decode("utf-8")
        elif not isinstance(text, str):
            raise error("JSON input must be str or bytes")
        return _decode_envelope(text)
    except (ValueError, RecursionError) as exc:
        raise error(f"invalid JSON: {exc}") from exc


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
