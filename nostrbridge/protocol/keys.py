"""Nostr key pairs: hex and NIP-19 bech32 (`nsec`/`npub`) forms, BIP-340 signing.

On the wire public keys are always 64 lowercase hex characters (docs/PROTOCOL.md §Conventions);
bech32 only appears in configuration, the operator's pages and the `admin-add-solver` payload
(the codec: `nostrbridge.protocol.bech32`, the project's one bech32 implementation).
"""

from __future__ import annotations

import os

from nostrbridge.protocol import secp
from nostrbridge.protocol.bech32 import bech32_decode, bech32_encode
from nostrbridge.protocol.errors import InvalidKey

_BECH32_MAX_CHARS = 90  # BIP-173's limit; an npub or nsec is 63


class Keys:
    """A secp256k1 key pair; the libsecp256k1 keypair is built once and reused for signing."""

    __slots__ = ("_keypair", "public_key", "public_key_hex", "secret")

    def __init__(self, secret: bytes) -> None:
        self._keypair = secp.keypair_create(secret)
        self.secret = bytes(secret)
        self.public_key = secp.keypair_xonly(self._keypair)
        self.public_key_hex = self.public_key.hex()

    @classmethod
    def generate(cls) -> Keys:
        while True:
            try:
                return cls(os.urandom(32))
            except InvalidKey:  # probability ~2**-128: the draw was 0 or >= the curve order
                continue

    @classmethod
    def from_hex(cls, secret_hex: str) -> Keys:
        return cls(hex_to_bytes(secret_hex, 32, what="secret key"))

    @classmethod
    def from_nsec(cls, nsec: str) -> Keys:
        return cls(bech32_decode_key(nsec, "nsec"))

    @classmethod
    def parse(cls, value: str) -> Keys:
        """Accept a 64-char hex secret or an `nsec1…` string (configuration input)."""
        if not isinstance(value, str):
            raise InvalidKey("secret key must be a string")
        value = value.strip()
        if value[:5].lower() == "nsec1":
            return cls.from_nsec(value)
        return cls.from_hex(value)

    @property
    def secret_hex(self) -> str:
        return self.secret.hex()

    @property
    def nsec(self) -> str:
        return bech32_encode_key("nsec", self.secret)

    @property
    def npub(self) -> str:
        return bech32_encode_key("npub", self.public_key)

    def sign(self, message32: bytes, aux_rand: bytes | None = None) -> bytes:
        """BIP-340 signature over a 32-byte digest; `aux_rand=bytes(32)` reproduces the vectors."""
        return secp.schnorr_sign(self._keypair, message32, aux_rand)

    def __repr__(self) -> str:  # never print the secret
        return f"Keys(public_key_hex={self.public_key_hex!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Keys) and other.secret == self.secret

    def __hash__(self) -> int:
        return hash(self.public_key)


def verify_signature(pubkey: bytes, message32: bytes, signature: bytes) -> bool:
    """BIP-340 verification; False for malformed keys or signatures, never an exception."""
    return secp.schnorr_verify(pubkey, message32, signature)


def hex_to_bytes(value: object, size: int, *, what: str, lowercase_only: bool = False) -> bytes:
    """Decode exactly `size` bytes of hex (either case unless `lowercase_only`); else `InvalidKey`."""
    if isinstance(value, str) and len(value) == 2 * size:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = b""
        # fromhex skips whitespace, which would leave fewer than `size` bytes.
        if len(raw) == size and (not lowercase_only or value.islower() or value.isdigit()):
            return raw
    raise InvalidKey(f"{what} must be {2 * size} hex characters")


def parse_public_key(value: object) -> str:
    """Normalise a public key given as hex (any case) or `npub1…` to lowercase hex; check the curve."""
    if isinstance(value, str) and value[:5].lower() == "npub1":
        raw = bech32_decode_key(value, "npub")
    else:
        raw = hex_to_bytes(value, 32, what="public key")
    secp.parse_xonly(raw)
    return raw.hex()


# --- NIP-19 keys ------------------------------------------------------------------------------


def bech32_encode_key(hrp: str, key: bytes) -> str:
    """`npub`/`nsec` of a 32-byte key."""
    return bech32_encode(hrp, key)


def bech32_decode_key(value: str, expected_hrp: str) -> bytes:
    """Decode an `nsec`/`npub` string to its 32-byte payload, strictly (checksum, case, padding)."""
    if not isinstance(value, str) or len(value) > _BECH32_MAX_CHARS or not value.isascii():
        raise InvalidKey(f"not a valid {expected_hrp}")
    decoded = bech32_decode(value)
    if decoded is None or decoded[0] != expected_hrp:
        raise InvalidKey(f"not a valid {expected_hrp} (prefix, case, characters or checksum)")
    if len(decoded[1]) != 32:
        raise InvalidKey(f"{expected_hrp} payload must be 32 bytes")
    return decoded[1]
