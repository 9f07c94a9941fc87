"""The dispute-chat envelopes of docs/PROTOCOL.md §Chat, pure Python (no Django).

Design 1, `kind14` (what Mostro Mobile and mostrix send today): the 32-byte raw ECDH secret
S = x(solver_sk · party_pk) is split by HKDF-SHA256 (empty salt) into K_conv (info
"mostro:chat:conv:v1") and K_sign ("mostro:chat:sign:v1"). A message is a kind-1 event signed
by the sender's key, NIP-44 self-encrypted under K_conv, inside a kind-14 event signed by
K_sign with the single tag ["p", pub(K_conv)] and the inner event's created_at.

Design 2, `giftwrap` (mostro-core 0.14, still read by both clients): S itself is a key pair
whose public key is the address; the kind-1 event is NIP-44 encrypted from a fresh ephemeral
key to pub(S), inside a kind-1059 event signed by the ephemeral key, tag ["p", pub(S)],
created_at up to two days in the past.

`unwrap` runs the checks of the protocol book cheapest first; the caller owns rate limits and
the durable inner-id dedup (a unique column).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from nostrbridge.protocol import nip44, secp
from nostrbridge.protocol.errors import InvalidKey, MalformedEvent, Nip44Error
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.nip01 import Event, sign_event

KIND14 = "kind14"
GIFTWRAP = "giftwrap"
ENVELOPES = (KIND14, GIFTWRAP)
CHAT_KIND, GIFT_WRAP_KIND, TEXT_NOTE_KIND = 14, 1059, 1
CONV_INFO = b"mostro:chat:conv:v1"
SIGN_INFO = b"mostro:chat:sign:v1"
MAX_CLOCK_SKEW_S = 60  # inner vs outer created_at, and outer vs our clock (book default)
MAX_CONTENT_BYTES = 64 * 1024  # encrypted outer content, checked before any crypto
GIFT_WRAP_BACKDATE_S = 2 * 86_400


class ChatRejected(Exception):
    """An event that is not a valid message of this conversation; drop it."""


@dataclass(frozen=True)
class ChatKeys:
    """Everything one solver ↔ party conversation needs, derived once from the ECDH secret."""

    shared: bytes  # S: HKDF input, the legacy address secret and the attachments' ChaCha20 key
    conv: Keys
    sign: Keys

    @property
    def legacy(self) -> Keys:
        return Keys(self.shared)


@dataclass(frozen=True)
class ChatMessageIn:
    envelope: str
    sender: str  # the inner signer
    content: str
    created_at: int  # the inner event's
    inner_id: str
    outer_id: str


def _hkdf_expand_one(prk: bytes, info: bytes) -> bytes:
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def _derive(prk: bytes, info: bytes) -> Keys:
    # The book: if the output is not a valid secret key, append a counter byte 1, 2, … to info.
    for counter in range(256):
        labelled = info if counter == 0 else info + bytes([counter])
        try:
            return Keys(_hkdf_expand_one(prk, labelled))
        except InvalidKey:
            continue
    raise InvalidKey("HKDF produced no valid secret key")  # pragma: no cover - probability 2**-32768


def keys_from_shared(shared: bytes) -> ChatKeys:
    if len(shared) != 32:
        raise InvalidKey("the chat shared secret must be 32 bytes")
    prk = hmac.new(bytes(32), shared, hashlib.sha256).digest()  # HKDF-Extract, absent salt
    return ChatKeys(shared=shared, conv=_derive(prk, CONV_INFO), sign=_derive(prk, SIGN_INFO))


def chat_keys(own: Keys, peer_pubkey_hex: str) -> ChatKeys:
    """The conversation of `own` with `peer`; both sides derive the same keys."""
    return keys_from_shared(secp.shared_x(own.secret, bytes.fromhex(peer_pubkey_hex)))


def _inner(sender: Keys, text: str, created_at: int) -> Event:
    if not text:
        raise ValueError("a chat message needs some text")
    # The random `u` tag (as Mostro Mobile sends) keeps two identical texts in one second apart.
    return sign_event(
        sender, kind=TEXT_NOTE_KIND, content=text, tags=[["u", secrets.token_hex(8)]], created_at=created_at
    )


def wrap(sender: Keys, keys: ChatKeys, text: str, *, envelope: str = KIND14, now: int | None = None):
    """(outer, inner) events for one message from `sender` in this conversation."""
    now = int(time.time()) if now is None else now
    inner = _inner(sender, text, now)
    if envelope == KIND14:
        conversation = nip44.get_conversation_key(keys.conv.secret, keys.conv.public_key)
        content = nip44.encrypt(inner.to_json(), conversation)
        tags = [["p", keys.conv.public_key_hex]]
        return sign_event(keys.sign, kind=CHAT_KIND, content=content, tags=tags, created_at=now), inner
    if envelope == GIFTWRAP:
        ephemeral = Keys.generate()
        address = keys.legacy.public_key
        content = nip44.encrypt(inner.to_json(), nip44.get_conversation_key(ephemeral.secret, address))
        created_at = now - secrets.randbelow(GIFT_WRAP_BACKDATE_S)
        tags = [["p", address.hex()]]
        return sign_event(ephemeral, kind=GIFT_WRAP_KIND, content=content, tags=tags, created_at=created_at), inner
    raise ValueError(f"unknown chat envelope {envelope!r}")


def _p_tags(raw: dict) -> list[str]:
    tags = raw.get("tags")
    if not isinstance(tags, list):
        raise ChatRejected("tags are not a list")
    return [tag[1] if len(tag) > 1 else "" for tag in tags if isinstance(tag, list) and tag and tag[0] == "p"]


def _signed(parse, value, what: str) -> Event:
    """Parse an event (its id is checked) and verify its signature."""
    try:
        event = parse(value)
    except MalformedEvent as exc:
        raise ChatRejected(f"malformed {what} event: {exc}") from exc
    if not event.verify_signature():
        raise ChatRejected(f"bad {what} signature")
    return event


def _outer(raw: dict) -> Event:
    content = raw.get("content")
    if not isinstance(content, str) or not content:
        raise ChatRejected("empty content")
    if len(content.encode()) > MAX_CONTENT_BYTES:
        raise ChatRejected("encrypted content too large")
    return _signed(Event.from_dict, raw, "outer")


def _open_inner(plaintext: str, allowed: frozenset[str]) -> Event:
    inner = _signed(Event.from_json, plaintext, "inner")
    if inner.pubkey not in allowed:
        raise ChatRejected("inner signer is not a party to this conversation")
    if inner.kind != TEXT_NOTE_KIND:
        raise ChatRejected("inner event is not kind 1")
    return inner


def unwrap(raw: dict, keys: ChatKeys, allowed: frozenset[str], *, now: int | None = None) -> ChatMessageIn:
    """Validate and open one relay event of this conversation (either envelope)."""
    kind = raw.get("kind")
    if kind == CHAT_KIND:
        return _unwrap_kind14(raw, keys, allowed, int(time.time()) if now is None else now)
    if kind == GIFT_WRAP_KIND:
        return _unwrap_giftwrap(raw, keys, allowed)
    raise ChatRejected(f"kind {kind} is not a chat envelope")


def _unwrap_kind14(raw: dict, keys: ChatKeys, allowed: frozenset[str], now: int) -> ChatMessageIn:
    if raw.get("pubkey") != keys.sign.public_key_hex:
        raise ChatRejected("not authored by this conversation's signing key")
    if _p_tags(raw) != [keys.conv.public_key_hex]:
        raise ChatRejected("needs exactly one p tag, pub(K_conv)")
    created_at = raw.get("created_at")
    if not isinstance(created_at, int) or created_at > now + MAX_CLOCK_SKEW_S:
        raise ChatRejected("dated in the future")
    outer = _outer(raw)
    try:
        plaintext = nip44.decrypt(outer.content, nip44.get_conversation_key(keys.conv.secret, keys.conv.public_key))
    except Nip44Error as exc:
        raise ChatRejected(f"cannot decrypt: {exc}") from exc
    inner = _open_inner(plaintext, allowed)
    if abs(inner.created_at - outer.created_at) > MAX_CLOCK_SKEW_S:
        raise ChatRejected("inner and outer timestamps disagree (stale re-wrap)")
    return ChatMessageIn(KIND14, inner.pubkey, inner.content, inner.created_at, inner.id, outer.id)


def _unwrap_giftwrap(raw: dict, keys: ChatKeys, allowed: frozenset[str]) -> ChatMessageIn:
    address = keys.legacy
    if _p_tags(raw) != [address.public_key_hex]:
        raise ChatRejected("needs exactly one p tag, pub(S)")
    outer = _outer(raw)
    try:
        conversation = nip44.get_conversation_key(address.secret, bytes.fromhex(outer.pubkey))
        plaintext = nip44.decrypt(outer.content, conversation)
    except (Nip44Error, InvalidKey) as exc:
        raise ChatRejected(f"cannot decrypt: {exc}") from exc
    inner = _open_inner(plaintext, allowed)
    return ChatMessageIn(GIFTWRAP, inner.pubkey, inner.content, inner.created_at, inner.id, outer.id)
