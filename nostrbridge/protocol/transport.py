"""Content tuples, inner signatures and the v2 kind-14 envelope (docs/PROTOCOL.md §Content-tuple, §Transport-v2).

The v1 gift wrap lives in `giftwrap.py`; both produce the same `Unwrapped` result so the
rest of the daemon does not care which transport a node speaks.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from nostrbridge.protocol import nip44, secp
from nostrbridge.protocol.errors import (
    BadSignature,
    DecryptionError,
    InvalidKey,
    MessageParseError,
    NotForUs,
    WrongKind,
)
from nostrbridge.protocol.jsonwire import loads_strict
from nostrbridge.protocol.keys import Keys, hex_to_bytes
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.nip01 import Event, mine_pow

V2_KIND = 14
V1_VERSION = 1
V2_VERSION = 2
IDENTITY_PROOF_PREFIX = "mostro-transport-v2-identity:"
DEFAULT_DM_DAYS = 30
SECONDS_PER_DAY = 86_400


@dataclass(slots=True)
class Unwrapped:
    """What the daemon extracts from one inbound event, whichever the transport."""

    event_id: str  # id of the published event (kind 14, or the kind-1059 wrap)
    sender: str  # trade pubkey hex: replies go here
    identity: str  # identity pubkey hex; equals `sender` in full-privacy mode
    created_at: int  # the timestamp the freshness check uses (kind-14 event or v1 rumor)
    message: Message
    message_json: str  # canonical re-serialization: what the signatures cover
    content: str  # the content tuple exactly as received (decrypted), for audit logs
    trade_signature: str | None  # hex, verified when present
    has_identity_proof: bool  # v2 element 3 present and verified
    transport_version: int  # 1 gift wrap, 2 kind 14
    rumor_id: str | None = None  # v1 only

    @property
    def has_trade_signature(self) -> bool:
        return self.trade_signature is not None

    @property
    def is_full_privacy(self) -> bool:
        return self.identity == self.sender


@dataclass(slots=True)
class ContentTuple:
    """A parsed content tuple, signatures not yet checked."""

    message: Message
    message_json: str
    message_bytes: bytes
    trade_signature: bytes | None
    identity_proof: tuple[bytes, bytes] | None  # (identity pubkey, signature)


def stamp_version(message: Message, transport_version: int) -> Message:
    """Outbound messages carry the transport's version: 1 on gift wrap, 2 on kind 14."""
    if transport_version not in (V1_VERSION, V2_VERSION):
        raise ValueError("transport version must be 1 or 2")
    return message.with_version(transport_version)


def sign_message(message: Message | str, trade_keys: Keys, aux_rand: bytes | None = None) -> str:
    """Trade signature (element 2): BIP-340 over sha256 of the canonical message JSON."""
    message_json = message if isinstance(message, str) else message.to_json()
    digest = hashlib.sha256(message_json.encode("utf-8")).digest()
    return trade_keys.sign(digest, aux_rand).hex()


def identity_proof_payload(trade_pubkey_hex: str, message_json: str) -> str:
    return IDENTITY_PROOF_PREFIX + trade_pubkey_hex + ":" + message_json


def sign_identity_proof(
    message_json: str, trade_pubkey_hex: str, identity_keys: Keys, aux_rand: bytes | None = None
) -> str:
    """Identity proof (element 3 signature), bound to the kind-14 author's trade key."""
    digest = hashlib.sha256(identity_proof_payload(trade_pubkey_hex, message_json).encode("utf-8")).digest()
    return identity_keys.sign(digest, aux_rand).hex()


def encode_content(message_json: str, trade_sig: str | None, identity: tuple[str, str] | None, *, arity: int) -> str:
    """`[message,sig|null]` (v1) or `[message,sig|null,[pk,sig]|null]` (v2), compact."""
    sig = "null" if trade_sig is None else f'"{trade_sig}"'
    if arity == 2:
        return f"[{message_json},{sig}]"
    proof = "null" if identity is None else f'["{identity[0]}","{identity[1]}"]'
    return f"[{message_json},{sig},{proof}]"


def decode_content(plaintext: str, arity: int) -> ContentTuple:
    """Parse a content tuple of exactly `arity` elements; raises `MessageParseError`/`BadSignature`."""
    value = loads_strict(plaintext, MessageParseError)
    if type(value) is not list or len(value) != arity:
        raise MessageParseError(f"content must be an array of exactly {arity} elements")
    message = Message.from_value(value[0])
    message_json = message.to_json()
    try:
        message_bytes = message_json.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogate escapes: serde_json rejects them too
        raise MessageParseError("message contains invalid Unicode") from exc
    trade_signature = _signature_or_none(value[1], "trade signature")
    identity_proof = _identity_proof_or_none(value[2]) if arity == 3 else None
    return ContentTuple(message, message_json, message_bytes, trade_signature, identity_proof)


def _signature_or_none(value: Any, what: str) -> bytes | None:
    if value is None:
        return None
    if type(value) is not str:
        raise MessageParseError(f"{what} must be a string or null")
    try:
        return hex_to_bytes(value, 64, what=what)
    except InvalidKey as exc:
        raise BadSignature(f"{what} is not 128 hex characters") from exc


def _identity_proof_or_none(value: Any) -> tuple[bytes, bytes] | None:
    if value is None:
        return None
    if type(value) is not list or len(value) != 2 or type(value[0]) is not str:
        raise MessageParseError("identity proof must be [pubkey, signature] or null")
    try:
        pubkey = hex_to_bytes(value[0], 32, what="identity pubkey")
        secp.parse_xonly(pubkey)
    except InvalidKey as exc:
        raise BadSignature("identity pubkey does not parse") from exc
    signature = _signature_or_none(value[1], "identity signature")
    if signature is None:
        raise MessageParseError("identity signature must be a string")
    return pubkey, signature


def verify_trade_signature(content: ContentTuple, sender: bytes) -> None:
    if content.trade_signature is not None:
        digest = hashlib.sha256(content.message_bytes).digest()
        if not secp.schnorr_verify(sender, digest, content.trade_signature):
            raise BadSignature("trade signature does not verify over the canonical message")


def _verify_identity_proof(content: ContentTuple, sender_hex: str) -> str:
    """Check element 3 against the event author; return the identity pubkey hex."""
    if content.identity_proof is None:
        return sender_hex
    pubkey, signature = content.identity_proof
    payload = identity_proof_payload(sender_hex, content.message_json).encode("utf-8")
    if not secp.schnorr_verify(pubkey, hashlib.sha256(payload).digest(), signature):
        raise BadSignature("identity proof does not verify")
    return pubkey.hex()


def wrap_v2(
    message: Message,
    sender_keys: Keys,
    recipient_pubkey: str,
    *,
    identity_keys: Keys | None = None,
    sign: bool = True,
    expiration_ts: int | None = None,
    created_at: int | None = None,
    nonce: bytes | None = None,
    pow_bits: int = 0,
    aux_rand: bytes | None = None,
) -> Event:
    """Build a signed kind-14 event carrying `message` (docs/PROTOCOL.md §Transport-v2).

    `sign` adds the trade signature; `identity_keys` different from `sender_keys` adds the
    identity proof (reputation mode). Tags are `p`, then `expiration` when given, then the
    NIP-13 `nonce` when `pow_bits` > 0. `nonce`/`created_at`/`aux_rand` are fixed only in tests.
    """
    message_json = stamp_version(message, V2_VERSION).to_json()
    trade_sig = sign_message(message_json, sender_keys, aux_rand) if sign else None
    proof = None
    if identity_keys is not None and identity_keys.public_key != sender_keys.public_key:
        proof_sig = sign_identity_proof(message_json, sender_keys.public_key_hex, identity_keys, aux_rand)
        proof = (identity_keys.public_key_hex, proof_sig)
    plaintext = encode_content(message_json, trade_sig, proof, arity=3)
    recipient = hex_to_bytes(recipient_pubkey, 32, what="recipient pubkey")
    conversation_key = nip44.cached_conversation_key(sender_keys.secret, recipient)
    tags = [["p", recipient.hex()]]
    if expiration_ts is not None:
        tags.append(["expiration", str(expiration_ts)])
    return mine_pow(
        sender_keys,
        kind=V2_KIND,
        content=nip44.encrypt(plaintext, conversation_key, nonce),
        tags=tags,
        created_at=int(time.time()) if created_at is None else created_at,
        difficulty=pow_bits,
        aux_rand=aux_rand,
    )


def reply_v2(
    message: Message,
    node_keys: Keys,
    recipient_pubkey: str,
    *,
    now: int | None = None,
    dm_days: int = DEFAULT_DM_DAYS,
    nonce: bytes | None = None,
    aux_rand: bytes | None = None,
) -> Event:
    """A node message on v2: `[msg,null,null]`, version 2, expiration now + `dm_days`, no PoW."""
    now = int(time.time()) if now is None else now
    return wrap_v2(
        message,
        node_keys,
        recipient_pubkey,
        sign=False,
        expiration_ts=now + dm_days * SECONDS_PER_DAY,
        created_at=now,
        nonce=nonce,
        aux_rand=aux_rand,
    )


def unwrap_v2(event: Event, our_keys: Keys, *, check_event_signature: bool = True) -> Unwrapped:
    """Receiving rules of docs/PROTOCOL.md §Transport-v2.

    `check_event_signature=False` only for callers that already verified it (the intake
    pipeline checks it earlier, as step 3). Raises a `ProtocolError` subclass on any failure.
    """
    if event.kind != V2_KIND:
        raise WrongKind(f"expected kind {V2_KIND}, got {event.kind}")
    if check_event_signature and not event.verify_signature():
        raise BadSignature("event signature does not verify")
    sender = bytes.fromhex(event.pubkey)
    try:
        plaintext = nip44.decrypt(event.content, nip44.cached_conversation_key(our_keys.secret, sender))
    except (DecryptionError, InvalidKey) as exc:
        raise NotForUs(f"cannot decrypt with our key: {exc}") from exc
    content = decode_content(plaintext, 3)
    verify_trade_signature(content, sender)
    identity = _verify_identity_proof(content, event.pubkey)
    return Unwrapped(
        event_id=event.id,
        sender=event.pubkey,
        identity=identity,
        created_at=event.created_at,
        message=content.message,
        message_json=content.message_json,
        content=plaintext,
        trade_signature=None if content.trade_signature is None else content.trade_signature.hex(),
        has_identity_proof=content.identity_proof is not None,
        transport_version=V2_VERSION,
    )
