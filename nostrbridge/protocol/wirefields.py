"""Field readers and writers that reproduce serde's parsing rules and serde_json's output.

Readers take an already-decoded JSON value and raise `MessageParseError` on anything serde
would refuse (docs/PROTOCOL.md §Messages): integers out of range, floats or booleans where an
integer is expected, unknown enum strings, malformed UUIDs. Writers emit compact JSON text.
Structs are described once by a tuple of `Field`s, which drives both directions, so field
order and the null-versus-omitted rules (docs/PROTOCOL.md §Messages) live in one place per struct.
"""

from __future__ import annotations

import keyword
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from json.encoder import encode_basestring  # escapes exactly like serde_json (ensure_ascii off)
from typing import Any, TypeVar

from nostrbridge.protocol.errors import MessageParseError
from nostrbridge.protocol.jsonwire import serde_float

Reader = Callable[[Any, str], Any]
Writer = Callable[[Any], str]
E = TypeVar("E", bound=StrEnum)

U8_MAX = 2**8 - 1
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1
_HEX = frozenset("0123456789abcdefABCDEF")
_UUID_HYPHENS = (8, 13, 18, 23)


def fail(where: str, problem: str) -> MessageParseError:
    return MessageParseError(f"{where}: {problem}")


def _int_reader(low: int, high: int, type_name: str) -> Reader:
    def read(value: Any, where: str) -> int:
        # `type(...) is int` rejects JSON booleans (a Python int subclass) and floats like 1.0.
        if type(value) is not int or not low <= value <= high:
            raise fail(where, f"expected {type_name}, got {value!r:.40}")
        return value

    return read


read_u8 = _int_reader(0, U8_MAX, "u8")
read_u32 = _int_reader(0, U32_MAX, "u32")
read_u64 = _int_reader(0, U64_MAX, "u64")
read_i64 = _int_reader(I64_MIN, I64_MAX, "i64")
# (low, high, type name) of each integer reader, for the unrolled struct readers below.
_INT_READERS: dict[Reader, tuple[int, int, str]] = {
    read_u8: (0, U8_MAX, "u8"),
    read_u32: (0, U32_MAX, "u32"),
    read_u64: (0, U64_MAX, "u64"),
    read_i64: (I64_MIN, I64_MAX, "i64"),
}


def read_str(value: Any, where: str) -> str:
    if type(value) is not str:
        raise fail(where, "expected a string")
    return value


def read_bool(value: Any, where: str) -> bool:
    if type(value) is not bool:
        raise fail(where, "expected a boolean")
    return value


def read_f64(value: Any, where: str) -> float:
    # serde_json accepts JSON integers for an f64 field; huge integers overflow like serde's.
    if type(value) is float:
        return value
    if type(value) is int:
        try:
            result = float(value)
        except OverflowError as exc:
            raise fail(where, "number out of range") from exc
        if math.isinf(result):
            raise fail(where, "number out of range")
        return result
    raise fail(where, "expected a number")


def parse_uuid(text: str) -> uuid.UUID | None:
    """The `uuid` crate's accepted forms: simple, hyphenated, `{braced}`, `urn:uuid:`; any case."""
    size = len(text)
    if size == 38 and text[0] == "{" and text[-1] == "}":
        text, size = text[1:-1], 36
    elif size == 45 and text.startswith("urn:uuid:"):
        text, size = text[9:], 36
    if size == 36:
        if any(text[i] != "-" for i in _UUID_HYPHENS):
            return None
        text = text[0:8] + text[9:13] + text[14:18] + text[19:23] + text[24:36]
    elif size != 32:
        return None
    if len(text) != 32 or not _HEX.issuperset(text):
        return None
    return uuid.UUID(hex=text)


def read_uuid(value: Any, where: str) -> uuid.UUID:
    parsed = parse_uuid(value) if type(value) is str else None
    if parsed is None:
        raise fail(where, "expected a UUID string")
    return parsed


def enum_reader(enum_cls: type[E]) -> Reader:
    members = enum_cls._value2member_map_

    def read(value: Any, where: str) -> E:
        member = members.get(value) if type(value) is str else None
        if member is None:
            raise fail(where, f"unknown {enum_cls.__name__} {value!r:.40}")
        return member  # type: ignore[return-value]

    return read


def list_reader(item: Reader) -> Reader:
    def read(value: Any, where: str) -> list[Any]:
        if type(value) is not list:
            raise fail(where, "expected an array")
        return [item(element, f"{where}[{i}]") for i, element in enumerate(value)]

    return read


def tuple_items(value: Any, arity: int, where: str) -> list[Any]:
    """A serde tuple: a JSON array of exactly `arity` elements (Option elements included)."""
    if type(value) is not list or len(value) != arity:
        raise fail(where, f"expected an array of exactly {arity} elements")
    return value


def write_int(value: int) -> str:
    if type(value) is not int:
        raise TypeError(f"expected int, got {type(value).__name__}")
    return str(value)


def write_bool(value: bool) -> str:
    return "true" if value else "false"


def write_uuid(value: uuid.UUID | str) -> str:
    # Callers holding a string id (from a form, a tag) still get the canonical lowercase form.
    return f'"{value if type(value) is uuid.UUID else uuid.UUID(str(value))}"'


write_str: Writer = encode_basestring
write_f64: Writer = serde_float


def list_writer(item: Writer) -> Writer:
    def write(values: list[Any]) -> str:
        return "[" + ",".join(item(v) for v in values) + "]"

    return write


@dataclass(frozen=True, slots=True)
class Field:
    """One struct field: JSON name, reader, writer and serde's presence rules.

    optional: Rust `Option<T>` (missing or null parses as None);
    omit_none: `skip_serializing_if = "Option::is_none"` (None is left out, not `null`).
    """

    name: str
    read: Reader
    write: Writer
    optional: bool = False
    omit_none: bool = False
    key: str = ""  # '"name":', precomputed for the serializer

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f'"{self.name}":')


def read_struct(
    cls: type, fields: tuple[Field, ...], value: Any, where: str, allowed: frozenset[str] | None = None
) -> Any:
    """Build `cls` from a JSON object; `allowed` set = serde's `deny_unknown_fields`."""
    if type(value) is not dict:
        raise fail(where, f"expected a {cls.__name__} object")
    if allowed is not None and not allowed.issuperset(value):
        raise fail(where, f"unknown field {sorted(value.keys() - allowed)[0]!r}")
    kwargs: dict[str, Any] = {}
    try:
        for f in fields:
            raw = value.get(f.name)
            if raw is not None:
                # The field name alone; the path is prefixed only if parsing fails.
                kwargs[f.name] = f.read(raw, f.name)
            elif f.optional:
                kwargs[f.name] = None
            else:
                raise fail(f.name, "missing or null")
    except MessageParseError as exc:
        raise fail(where, str(exc)) from None
    return cls(**kwargs)


def write_struct(obj: Any, fields: tuple[Field, ...]) -> str:
    parts = []
    for f in fields:
        value = getattr(obj, f.name)
        if value is not None:
            parts.append(f.key + f.write(value))
        elif not f.omit_none:
            parts.append(f.key + "null")
    return "{" + ",".join(parts) + "}"


# --- Specialised readers and writers ---------------------------------------------------
# `read_struct` and `write_struct` interpret the field table on every call: ~0.2 µs per
# field in attribute lookups and branches, and a struct like `SmallOrder` has 15 fields. The
# functions below are the same two loops unrolled once per struct from its `Field`s (the way
# `dataclasses` writes `__init__`): same reads in the same order, same errors, same bytes.


def _unrollable(fields: tuple[Field, ...]) -> bool:
    return all(f.name.isidentifier() and not keyword.iskeyword(f.name) for f in fields)


def _inline_check(read: Reader) -> tuple[str, str] | None:
    """(failure condition on `raw`, error text) for readers that only check and return `raw`."""
    if read is read_str:
        return "type(raw) is not str", "'expected a string'"
    bounds = _INT_READERS.get(read)
    if bounds is not None:
        low, high, type_name = bounds
        return f"type(raw) is not int or not {low} <= raw <= {high}", f"f'expected {type_name}, got {{raw!r:.40}}'"
    return None


def compile_struct_reader(
    cls: type, fields: tuple[Field, ...], allowed: frozenset[str] | None = None
) -> Callable[[Any, str], Any]:
    """`read_struct(cls, fields, value, where, allowed)` as one function of `(value, where)`."""
    if not _unrollable(fields):
        return lambda value, where: read_struct(cls, fields, value, where, allowed)
    namespace: dict[str, Any] = {
        "cls": cls,
        "allowed": allowed,
        "fail": fail,
        "MessageParseError": MessageParseError,
    }
    lines = [
        "def read(value, where):",
        "    if type(value) is not dict:",
        f"        raise fail(where, {f'expected a {cls.__name__} object'!r})",
    ]
    if allowed is not None:
        lines += [
            "    if not allowed.issuperset(value):",
            "        raise fail(where, f'unknown field {sorted(value.keys() - allowed)[0]!r}')",
        ]
    lines += ["    get = value.get", "    try:"]
    for i, f in enumerate(fields):
        name = repr(f.name)
        lines.append(f"        raw = get({name})")
        if not f.optional:
            lines += ["        if raw is None:", f"            raise fail({name}, 'missing or null')"]
        check = _inline_check(f.read)
        if check is not None:  # the reader's own test, then `raw` itself (as the reader returns it)
            condition, problem = check
            guard = f"({condition})" if not f.optional else f"raw is not None and ({condition})"
            lines += [f"        if {guard}:", f"            raise fail({name}, {problem})", f"        v_{i} = raw"]
        else:
            namespace[f"read_{i}"] = f.read
            call = f"read_{i}(raw, {name})"
            lines.append(
                f"        v_{i} = None if raw is None else {call}" if f.optional else f"        v_{i} = {call}"
            )
    lines += [
        "    except MessageParseError as exc:",
        "        raise fail(where, str(exc)) from None",
        "    return cls(" + ", ".join(f"{f.name}=v_{i}" for i, f in enumerate(fields)) + ")",
    ]
    exec("\n".join(lines), namespace)  # noqa: S102 - source built from this package's field tables only
    reader: Callable[[Any, str], Any] = namespace["read"]
    return reader


def compile_struct_writer(fields: tuple[Field, ...]) -> Callable[[Any], str]:
    """`write_struct(obj, fields)` as one function of `obj`."""
    if not _unrollable(fields):
        return lambda obj: write_struct(obj, fields)
    namespace: dict[str, Any] = {}
    lines = ["def write(obj):", "    parts = []", "    append = parts.append"]
    for i, f in enumerate(fields):
        namespace[f"write_{i}"] = f.write
        lines.append(f"    value = obj.{f.name}")
        # write_int is str() after its type check: inlined for exact ints, called otherwise.
        text = (
            f"(str(value) if type(value) is int else write_{i}(value))" if f.write is write_int else f"write_{i}(value)"
        )
        if f.omit_none:
            lines += ["    if value is not None:", f"        append({f.key!r} + {text})"]
        else:
            lines.append(f"    append({f.key!r} + ('null' if value is None else {text}))")
    lines.append("    return '{' + ','.join(parts) + '}'")
    exec("\n".join(lines), namespace)  # noqa: S102 - source built from this package's field tables only
    writer: Callable[[Any], str] = namespace["write"]
    return writer
