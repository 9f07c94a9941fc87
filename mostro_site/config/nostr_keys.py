"""Nostr key text as operators write it (nsec/npub or hex), readable from every layer.

The bottom of the project (node configuration) needs these too: the reputation trust list
validates its keys against the node's own key and the issuer key. `nostrbridge.node_identity`
re-exports them under the names the rest of the project imports.
"""

import re

import coincurve
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


def parse_pubkey_text(value: str) -> str:
    """An npub or 64 hex characters (any case) as lowercase hex of a point on the curve."""
    value = value.strip()
    try:
        pubkey = decode_npub(value) if value.startswith("npub1") else value.lower()
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a public key ({exc})") from exc
    if not _HEX64.match(pubkey):
        raise ValueError(f"{value!r} is not a public key (npub or 64 hex characters)")
    try:
        coincurve.PublicKeyXOnly(bytes.fromhex(pubkey))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid secp256k1 public key") from exc
    return pubkey
