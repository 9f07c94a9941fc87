"""The node's Nostr identity, loaded lazily from MOSTRO_NSEC_PRIVKEY (nsec or 64-char hex).

The bech32 forms (`npub`, `nsec`) come from the protocol package (`nostrbridge.protocol.keys`),
the project's one bech32 implementation.
"""

import functools
import re

from django.conf import settings

from nostrbridge.protocol.errors import InvalidKey
from nostrbridge.protocol.keys import Keys, bech32_decode_key, bech32_encode_key

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class InvalidSecretKey(ValueError):
    pass


def parse_secret_key(value: str) -> bytes:
    """Return the 32-byte secret from an nsec or hex string; raise InvalidSecretKey otherwise."""
    value = value.strip()
    if value.startswith("nsec1"):
        try:
            raw = bech32_decode_key(value, "nsec")
        except InvalidKey as exc:
            raise InvalidSecretKey("not a valid nsec (bad bech32 checksum or characters)") from exc
    elif _HEX64.match(value):
        raw = bytes.fromhex(value)
    else:
        raise InvalidSecretKey("must be an nsec1… string or 64 hex characters")
    try:
        Keys(raw)
    except InvalidKey as exc:
        raise InvalidSecretKey("is not a valid secp256k1 secret key") from exc
    return raw


def xonly_pubkey_hex(secret: bytes) -> str:
    return Keys(secret).public_key_hex


def encode_npub(pubkey_hex: str) -> str:
    return bech32_encode_key("npub", bytes.fromhex(pubkey_hex))


def encode_nsec(secret: bytes) -> str:
    return bech32_encode_key("nsec", secret)


def decode_npub(npub: str) -> str:
    """The hex public key of an `npub`; ValueError when it is not one."""
    try:
        return bech32_decode_key(npub.strip(), "npub").hex()
    except InvalidKey as exc:
        raise ValueError(f"not a valid npub: {exc}") from exc


@functools.lru_cache(maxsize=1)
def node_secret_key() -> bytes:
    return parse_secret_key(settings.MOSTRO_NSEC_PRIVKEY)


@functools.lru_cache(maxsize=1)
def node_pubkey() -> str:
    return xonly_pubkey_hex(node_secret_key())


# --- the reputation issuer (docs/PROTOCOL.md §Reputation) ---------------------------------------
@functools.lru_cache(maxsize=4)
def _issuer_keys(secret_text: str) -> Keys | None:
    if not secret_text:
        return None
    try:
        return Keys(parse_secret_key(secret_text))
    except InvalidSecretKey:
        return None


def reputation_issuer_keys() -> Keys | None:
    """The dedicated key attestations are signed with (never the node key); None when
    `MOSTRO_REPUTATION_ISSUER_SK` is unset or does not load (the system checks say which)."""
    return _issuer_keys(settings.MOSTRO_REPUTATION_ISSUER_SK.strip())


def export_issuer_keys() -> Keys | None:
    """The issuer key when export can sign: on, and its key loaded. Otherwise None."""
    return reputation_issuer_keys() if settings.MOSTRO_REPUTATION_EXPORT_ENABLED else None


def reputation_issuer_errors() -> list[str]:
    """The issuer key's rules: loadable when set, needed when export is on, never the node's key."""
    text = settings.MOSTRO_REPUTATION_ISSUER_SK.strip()
    keys = reputation_issuer_keys()
    if text and keys is None:
        return ["MOSTRO_REPUTATION_ISSUER_SK is invalid: use an nsec1… key or 64 hex characters."]
    if settings.MOSTRO_REPUTATION_EXPORT_ENABLED and keys is None:
        return ["MOSTRO_REPUTATION_EXPORT_ENABLED needs MOSTRO_REPUTATION_ISSUER_SK, a key of its own."]
    if keys is not None and keys.secret == _node_secret_or_none():
        return ["MOSTRO_REPUTATION_ISSUER_SK must not be the node's key (MOSTRO_NSEC_PRIVKEY)."]
    return []


def node_pubkey_or_none() -> str | None:
    """The node's key when MOSTRO_NSEC_PRIVKEY loads (its own system check reports when not)."""
    secret = _node_secret_or_none()
    return None if secret is None else xonly_pubkey_hex(secret)


def _node_secret_or_none() -> bytes | None:
    try:
        return parse_secret_key(settings.MOSTRO_NSEC_PRIVKEY)
    except InvalidSecretKey:
        return None
