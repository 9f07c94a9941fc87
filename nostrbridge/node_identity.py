"""The node's Nostr identity, loaded lazily from MOSTRO_NSEC_PRIVKEY (nsec or 64-char hex)."""

import functools
import re

import coincurve
from django.conf import settings
from pynostr.bech32 import Encoding, bech32_decode, bech32_encode, convertbits

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class InvalidSecretKey(ValueError):
    pass


def parse_secret_key(value: str) -> bytes:
    """Return the 32-byte secret from an nsec or hex string; raise InvalidSecretKey otherwise."""
    value = value.strip()
    if value.startswith("nsec1"):
        hrp, data = bech32_decode(value)[:2]
        if hrp != "nsec" or data is None:
            raise InvalidSecretKey("not a valid nsec (bad bech32 checksum or characters)")
        raw = bytes(convertbits(data, 5, 8, False) or b"")
    elif _HEX64.match(value):
        raw = bytes.fromhex(value)
    else:
        raise InvalidSecretKey("must be an nsec1… string or 64 hex characters")
    if len(raw) != 32:
        raise InvalidSecretKey("must decode to 32 bytes")
    try:
        coincurve.PrivateKey(raw)
    except ValueError as exc:
        raise InvalidSecretKey("is not a valid secp256k1 secret key") from exc
    return raw


def xonly_pubkey_hex(secret: bytes) -> str:
    return coincurve.PrivateKey(secret).public_key_xonly.format().hex()


def encode_npub(pubkey_hex: str) -> str:
    return bech32_encode("npub", convertbits(bytes.fromhex(pubkey_hex), 8, 5), Encoding.BECH32)


def encode_nsec(secret: bytes) -> str:
    return bech32_encode("nsec", convertbits(secret, 8, 5), Encoding.BECH32)


def decode_npub(npub: str) -> str:
    hrp, data = bech32_decode(npub.strip())[:2]
    if hrp != "npub" or data is None:
        raise ValueError("not a valid npub")
    raw = bytes(convertbits(data, 5, 8, False) or b"")
    if len(raw) != 32:
        raise ValueError("npub must decode to 32 bytes")
    return raw.hex()


@functools.lru_cache(maxsize=1)
def node_secret_key() -> bytes:
    return parse_secret_key(settings.MOSTRO_NSEC_PRIVKEY)


@functools.lru_cache(maxsize=1)
def node_pubkey() -> str:
    return xonly_pubkey_hex(node_secret_key())


def clear_key_cache() -> None:
    node_secret_key.cache_clear()
    node_pubkey.cache_clear()
