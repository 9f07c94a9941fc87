"""Protocol v1: NIP-59 gift wrap → seal → rumor (docs/PROTOCOL.md §Transport-v1, deprecated transport).

Unlike stock NIP-59 (and nostr-sdk's `UnwrappedGift`), the seal signer (identity key) may
differ from the rumor author (trade key): that is how Mostro clients in reputation mode
send, and the daemon accepts it (docs/PROTOCOL.md §Transport-v1).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from nostrbridge.protocol import nip44, secp
from nostrbridge.protocol.errors import (
    BadSignature,
    DecryptionError,
    InvalidKey,
    MalformedEnvelope,
    MalformedEvent,
    NotForUs,
    ProtocolError,
    WrongKind,
)
from nostrbridge.protocol.jsonwire import dumps_compact, loads_envelope
from nostrbridge.protocol.keys import Keys, hex_to_bytes
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.nip01 import Event, event_id, mine_pow, parse_unsigned_fields, sign_event
from nostrbridge.protocol.transport import (
    V1_VERSION,
    Unwrapped,
    decode_content,
    encode_content,
    sign_message,
    stamp_version,
    verify_trade_signature,
)

GIFT_WRAP_KIND = 1059
SEAL_KIND = 13
RUMOR_KIND = 1
# NIP-59 "timestamp tweak": seal and wrap are dated up to two days in the past.
MAX_TIMESTAMP_TWEAK_SECONDS = 2 * 86_400


@dataclass(slots=True)
class Rumor:
    """The unsigned kind-1 event inside the seal."""

    id: str
    pubkey: str
    created_at: int
    kind: int
    tags: list[list[str]]
    content: str

    def to_json(self) -> str:
        return dumps_compact(
            {
                "id": self.id,
                "pubkey": self.pubkey,
                "created_at": self.created_at,
                "kind": self.kind,
                "tags": self.tags,
                "content": self.content,
            }
        )


def make_rumor(author: Keys, content: str, created_at: int) -> Rumor:
    rumor_id = event_id(author.public_key_hex, created_at, RUMOR_KIND, [], content)
    return Rumor(rumor_id, author.public_key_hex, created_at, RUMOR_KIND, [], content)


def parse_rumor(text: str) -> Rumor:
    """Parse the rumor JSON (docs/PROTOCOL.md §Transport-v1).

    `id` is optional. Like the daemon, a present id is only checked for form, not recomputed:
    nothing depends on it (the seal signature covers the rumor bytes, the trade signature the
    message), and older clients are known to differ in how they fill it.
    """
    obj = loads_envelope(text, MalformedEnvelope)
    try:
        pubkey, created_at, kind, tags, content = parse_unsigned_fields(obj)
        claimed = obj.get("id")
        if claimed is None:
            rumor_id = event_id(pubkey, created_at, kind, tags, content)
        else:
            rumor_id = hex_to_bytes(claimed, 32, what="rumor id").hex()
    except (MalformedEvent, InvalidKey) as exc:
        raise MalformedEnvelope(f"invalid rumor: {exc}") from exc
    return Rumor(rumor_id, pubkey, created_at, kind, tags, content)


def _random_past(now: int) -> int:
    return now - secrets.randbelow(MAX_TIMESTAMP_TWEAK_SECONDS + 1)


def wrap_v1(
    message: Message,
    trade_keys: Keys,
    recipient_pubkey: str,
    *,
    identity_keys: Keys | None = None,
    sign: bool = True,
    created_at: int | None = None,
    seal_created_at: int | None = None,
    wrap_created_at: int | None = None,
    seal_nonce: bytes | None = None,
    wrap_nonce: bytes | None = None,
    ephemeral_keys: Keys | None = None,
    expiration_ts: int | None = None,
    pow_bits: int = 0,
    aux_rand: bytes | None = None,
) -> Event:
    """Gift-wrap `message` (version stamped 1) for `recipient_pubkey` (docs/PROTOCOL.md §Transport-v1).

    The rumor is authored by `trade_keys` at the real time; the seal is signed by
    `identity_keys` (the trade key in full-privacy mode); the wrap by a fresh ephemeral key.
    Timestamps, nonces and the ephemeral key are fixed only in tests.
    """
    now = int(time.time())
    recipient = hex_to_bytes(recipient_pubkey, 32, what="recipient pubkey")
    message_json = stamp_version(message, V1_VERSION).to_json()
    trade_sig = sign_message(message_json, trade_keys, aux_rand) if sign else None
    rumor_time = now if created_at is None else created_at
    rumor = make_rumor(trade_keys, encode_content(message_json, trade_sig, None, arity=2), rumor_time)
    seal_keys = identity_keys or trade_keys
    seal = sign_event(
        seal_keys,
        kind=SEAL_KIND,
        content=nip44.encrypt(rumor.to_json(), nip44.cached_conversation_key(seal_keys.secret, recipient), seal_nonce),
        tags=[],
        created_at=_random_past(now) if seal_created_at is None else seal_created_at,
        aux_rand=aux_rand,
    )
    ephemeral = ephemeral_keys or Keys.generate()
    # The ephemeral key is used once: its conversation key is never worth caching.
    wrap_key = nip44.get_conversation_key(ephemeral.secret, recipient)
    tags = [["expiration", str(expiration_ts)]] if expiration_ts is not None else []
    tags.append(["p", recipient.hex()])
    return mine_pow(
        ephemeral,
        kind=GIFT_WRAP_KIND,
        content=nip44.encrypt(seal.to_json(), wrap_key, wrap_nonce),
        tags=tags,
        created_at=_random_past(now) if wrap_created_at is None else wrap_created_at,
        difficulty=pow_bits,
        aux_rand=aux_rand,
    )


def reply_v1(message: Message, node_keys: Keys, recipient_pubkey: str, *, now: int | None = None) -> Event:
    """A node message on v1: node key authors the rumor and signs the seal, `[msg,null]`, no expiration."""
    return wrap_v1(message, node_keys, recipient_pubkey, sign=False, created_at=now)


def unwrap_v1(event: Event, our_keys: Keys, *, check_event_signature: bool = True) -> Unwrapped:
    """Receiving rules of docs/PROTOCOL.md §Transport-v1; raises a `ProtocolError` subclass on any failure."""
    if event.kind != GIFT_WRAP_KIND:
        raise WrongKind(f"expected kind {GIFT_WRAP_KIND}, got {event.kind}")
    if check_event_signature and not event.verify_signature():
        raise BadSignature("gift wrap signature does not verify")
    seal = _open_seal(event, our_keys)
    try:
        rumor_json = nip44.decrypt(
            seal.content, nip44.cached_conversation_key(our_keys.secret, bytes.fromhex(seal.pubkey))
        )
    except (DecryptionError, InvalidKey) as exc:
        raise NotForUs(f"cannot decrypt the seal: {exc}") from exc
    rumor = parse_rumor(rumor_json)
    if rumor.kind != RUMOR_KIND:
        raise MalformedEnvelope(f"rumor must be kind {RUMOR_KIND}, got {rumor.kind}")
    sender = bytes.fromhex(rumor.pubkey)
    try:
        secp.parse_xonly(sender)  # replies are encrypted to this key: it must be a real point
    except InvalidKey as exc:
        raise MalformedEnvelope("rumor pubkey is not a valid key") from exc
    content = decode_content(rumor.content, 2)
    verify_trade_signature(content, sender)
    return Unwrapped(
        event_id=event.id,
        sender=rumor.pubkey,
        identity=seal.pubkey,
        created_at=rumor.created_at,
        message=content.message,
        message_json=content.message_json,
        content=rumor.content,
        trade_signature=None if content.trade_signature is None else content.trade_signature.hex(),
        has_identity_proof=False,
        transport_version=V1_VERSION,
        rumor_id=rumor.id,
    )


def _open_seal(wrap: Event, our_keys: Keys) -> Event:
    try:
        wrap_key = nip44.get_conversation_key(our_keys.secret, bytes.fromhex(wrap.pubkey))
        seal_json = nip44.decrypt(wrap.content, wrap_key)
    except (DecryptionError, InvalidKey) as exc:
        raise NotForUs(f"cannot decrypt the gift wrap: {exc}") from exc
    try:
        seal = Event.from_json(seal_json)
    except ProtocolError as exc:
        raise MalformedEnvelope(f"invalid seal: {exc}") from exc
    if seal.kind != SEAL_KIND:
        raise MalformedEnvelope(f"seal must be kind {SEAL_KIND}, got {seal.kind}")
    if not seal.verify_signature():
        raise BadSignature("seal signature does not verify")
    return seal
