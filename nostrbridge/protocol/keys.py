"""Nostr key pairs: hex and NIP-19 bech32 (`nsec`/`npub`) forms, BIP-340 signing.

On the wire public keys are always 64 lowercase hex characters (docs/PROTOCOL.md §Conventions);
bech32 only appears in configuration and in the `admin-add-solver` payload.
"""

from __future__ import annotations

import os

from nostrbridge.protocol import secp
from nostrbridge.protocol.errors import InvalidKey

_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_BECH32_MAX_CHARS = 90


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


# --- bech32 (BIP-173, the checksum NIP-19 uses) ---------------------------------


def _polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            if (top >> i) & 1:
                checksum ^= _BECH32_GENERATOR[i]
    return checksum


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, *, pad: bool) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    max_value = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & max_value)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & max_value)
    elif bits >= from_bits or (acc << (to_bits - bits)) & max_value:
        raise InvalidKey("bech32 data has invalid padding")
    return out


def bech32_encode_key(hrp: str, key: bytes) -> str:
    data = _convert_bits(key, 8, 5, pad=True)
    checksum = _polymod([*_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ 1
    data += [(checksum >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32_CHARSET[d] for d in data)


def bech32_decode_key(value: str, expected_hrp: str) -> bytes:
    """Decode an `nsec`/`npub` string to its 32-byte payload, strictly (checksum, case, padding)."""
    if not isinstance(value, str) or len(value) > _BECH32_MAX_CHARS or not value.isascii():
        raise InvalidKey(f"not a valid {expected_hrp}")
    if value.lower() != value and value.upper() != value:
        raise InvalidKey("bech32 string mixes upper and lower case")
    value = value.lower()
    hrp, sep, body = value.rpartition("1")
    if not sep or hrp != expected_hrp or len(body) < 6:
        raise InvalidKey(f"not a valid {expected_hrp}")
    try:
        data = [_BECH32_CHARSET.index(c) for c in body]
    except ValueError as exc:
        raise InvalidKey("invalid bech32 character") from exc
    if _polymod(_hrp_expand(hrp) + data) != 1:
        raise InvalidKey("bech32 checksum mismatch")
    key = bytes(_convert_bits(data[:-6], 5, 8, pad=False))
    if len(key) != 32:
        raise InvalidKey(f"{expected_hrp} payload must be 32 bytes")
    return key
