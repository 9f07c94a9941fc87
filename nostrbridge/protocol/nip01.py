"""NIP-01 events: canonical id, BIP-340 signature, strict parsing, NIP-13 proof of work."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from nostrbridge.protocol import secp
from nostrbridge.protocol.errors import EventIdMismatch, MalformedEvent
from nostrbridge.protocol.jsonwire import (
    dumps_compact,
    dumps_id_preimage,
    dumps_string_lists,
    json_string,
    loads_envelope,
)
from nostrbridge.protocol.keys import Keys

_MAX_U64 = 2**64 - 1
_MAX_KIND = 65535  # nostr kinds are u16


@dataclass(slots=True)
class Event:
    """A signed Nostr event; hex fields are lowercase, `tags` is a list of string lists."""

    id: str
    pubkey: str
    created_at: int
    kind: int
    tags: list[list[str]] = field(default_factory=list)
    content: str = ""
    sig: str = ""

    def compute_id(self) -> str:
        return event_id(self.pubkey, self.created_at, self.kind, self.tags, self.content)

    def verify_signature(self) -> bool:
        """BIP-340 check of `sig` over `id` with `pubkey` (the id itself is checked by `from_dict`)."""
        try:
            return secp.schnorr_verify(bytes.fromhex(self.pubkey), bytes.fromhex(self.id), bytes.fromhex(self.sig))
        except ValueError:
            return False

    def verify(self) -> bool:
        """Full NIP-01 check: the id matches the fields and the signature verifies."""
        try:
            return self.compute_id() == self.id and self.verify_signature()
        except MalformedEvent:
            return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pubkey": self.pubkey,
            "created_at": self.created_at,
            "kind": self.kind,
            "tags": self.tags,
            "content": self.content,
            "sig": self.sig,
        }

    def to_json(self) -> str:
        # Same bytes as dumps_compact(to_dict()), with the fast paths for tags and long contents.
        return (
            f'{{"id":"{self.id}","pubkey":"{self.pubkey}","created_at":{self.created_at},"kind":{self.kind},'
            f'"tags":{dumps_string_lists(self.tags)},"content":{json_string(self.content)},"sig":"{self.sig}"}}'
        )

    def tag_value(self, name: str) -> str | None:
        """First value of the first tag called `name`, if any."""
        for tag in self.tags:
            if tag and tag[0] == name and len(tag) > 1:
                return tag[1]
        return None

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        return cls.from_dict(loads_envelope(text, MalformedEvent))

    @classmethod
    def from_dict(cls, obj: object) -> Event:
        """Strictly validate types, lengths and hex, then recompute and compare the id.

        Raises `MalformedEvent` (or `EventIdMismatch`); the signature is checked separately
        so that the intake pipeline can run the PoW and kind checks first (docs/PROTOCOL.md §Intake).
        """
        pubkey, created_at, kind, tags, content = parse_unsigned_fields(obj)
        assert isinstance(obj, dict)  # parse_unsigned_fields refused anything else
        try:
            event = cls(
                _lower_hex(obj["id"], 32, "id"),
                pubkey,
                created_at,
                kind,
                tags,
                content,
                _lower_hex(obj["sig"], 64, "sig"),
            )
        except KeyError as exc:
            raise MalformedEvent(f"event field {exc.args[0]!r} is missing") from exc
        if event.compute_id() != event.id:
            raise EventIdMismatch("event id does not match its fields")
        return event


def parse_unsigned_fields(obj: object) -> tuple[str, int, int, list[list[str]], str]:
    """Validate `(pubkey, created_at, kind, tags, content)` of an event or rumor object."""
    if not isinstance(obj, dict):
        raise MalformedEvent("event must be a JSON object")
    try:
        return (
            _lower_hex(obj["pubkey"], 32, "pubkey"),
            _int_in(obj["created_at"], 0, _MAX_U64, "created_at"),
            _int_in(obj["kind"], 0, _MAX_KIND, "kind"),
            parse_tags(obj["tags"]),
            _str(obj["content"], "content"),
        )
    except KeyError as exc:
        raise MalformedEvent(f"event field {exc.args[0]!r} is missing") from exc


def event_id(pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str) -> str:
    """NIP-01 id: sha256 of the compact JSON `[0,pubkey,created_at,kind,tags,content]`."""
    return hashlib.sha256(serialize_for_id(pubkey, created_at, kind, tags, content)).hexdigest()


def serialize_for_id(pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str) -> bytes:
    if type(created_at) is not int or type(kind) is not int:
        raise MalformedEvent("created_at and kind must be integers")
    preimage = dumps_id_preimage(pubkey, created_at, kind, tags, content)
    if preimage is not None:
        return preimage
    return _serialize_for_id_json(pubkey, created_at, kind, tags, content)


def _serialize_for_id_json(pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str) -> bytes:
    """The reference serialization on `json` (same bytes as orjson's where orjson applies)."""
    try:
        tags_json = dumps_compact(tags) if tags else "[]"  # seals and rumors have no tags
        text = f"[0,{json_string(pubkey)},{created_at},{kind},{tags_json},{json_string(content)}]"
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate from a "\udXXX" escape
        raise MalformedEvent("event text is not valid Unicode") from exc


def sign_event(
    keys: Keys,
    *,
    kind: int,
    content: str,
    tags: list[list[str]],
    created_at: int,
    aux_rand: bytes | None = None,
) -> Event:
    """Build and sign an event with `keys`; `aux_rand=bytes(32)` makes the signature reproducible."""
    eid = event_id(keys.public_key_hex, created_at, kind, tags, content)
    sig = keys.sign(bytes.fromhex(eid), aux_rand)
    return Event(eid, keys.public_key_hex, created_at, kind, tags, content, sig.hex())


def parse_tags(value: object) -> list[list[str]]:
    if not isinstance(value, list):
        raise MalformedEvent("tags must be an array")
    for tag in value:
        # nostr-sdk refuses empty tags; every element is a string.
        if not isinstance(tag, list) or not tag or not all(isinstance(item, str) for item in tag):
            raise MalformedEvent("each tag must be a non-empty array of strings")
    return value


def leading_zero_bits(id_hex: str) -> int:
    """NIP-13 difficulty: number of leading zero bits of the 256-bit id."""
    value = int(id_hex, 16)
    return 256 - value.bit_length()


def mine_pow(
    keys: Keys,
    *,
    kind: int,
    content: str,
    tags: list[list[str]],
    created_at: int,
    difficulty: int,
    aux_rand: bytes | None = None,
) -> Event:
    """Sign an event whose id has >= `difficulty` leading zero bits.

    Any existing `nonce` tag is replaced by `["nonce", counter, target]` appended after
    the other tags (NIP-13). Cost doubles per bit: keep `difficulty` small outside tests.
    """
    base_tags = [tag for tag in tags if tag[0] != "nonce"]
    if difficulty <= 0:
        return sign_event(keys, kind=kind, content=content, tags=base_tags, created_at=created_at, aux_rand=aux_rand)
    marker = uuid.uuid4().hex  # stands for the counter inside the serialized template
    template = serialize_for_id(
        keys.public_key_hex, created_at, kind, [*base_tags, ["nonce", marker, str(difficulty)]], content
    )
    prefix, _, suffix = template.partition(marker.encode())
    counter = 0
    while True:
        digest = hashlib.sha256(prefix + str(counter).encode() + suffix).digest()
        if 256 - int.from_bytes(digest, "big").bit_length() >= difficulty:
            break
        counter += 1
    final_tags = [*base_tags, ["nonce", str(counter), str(difficulty)]]
    return sign_event(keys, kind=kind, content=content, tags=final_tags, created_at=created_at, aux_rand=aux_rand)


def _lower_hex(value: object, size: int, name: str) -> str:
    if isinstance(value, str) and len(value) == 2 * size:
        try:
            if bytes.fromhex(value).hex() == value:
                return value
        except ValueError:
            pass
    raise MalformedEvent(f"{name} must be {2 * size} lowercase hex characters")


def _int_in(value: object, low: int, high: int, name: str) -> int:
    if type(value) is not int or not low <= value <= high:
        raise MalformedEvent(f"{name} must be an integer in {low}..{high}")
    return value


def _str(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise MalformedEvent(f"{name} must be a string")
    return value
