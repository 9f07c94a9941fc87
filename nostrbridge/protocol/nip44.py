"""NIP-44 version 2 encryption (docs/PROTOCOL.md §Transports), on libsecp256k1 and `cryptography`.

Only the 2-byte length prefix is implemented: plaintexts are 1..65535 bytes, as in the
nostr-sdk versions Mostro clients use; Mostro messages are far smaller.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from nostrbridge.protocol import secp
from nostrbridge.protocol.errors import DecryptionError, InvalidPlaintextLength

VERSION = 2
_SALT = b"nip44-v2"
_MIN_PLAINTEXT_BYTES = 1
_MAX_PLAINTEXT_BYTES = 65535
# Payload bounds from the NIP: base64 of version(1) + nonce(32) + padded(2+32..65536) + mac(32).
_MIN_PAYLOAD_CHARS = 132
_MAX_PAYLOAD_CHARS = 87472
_MIN_DECODED_BYTES = 99
_MAX_DECODED_BYTES = 65603
_NONCE_BYTES = 32
_MAC_BYTES = 32
_ZERO_BLOCK_COUNTER = b"\x00\x00\x00\x00"
_KEY_BYTES = 32

try:
    # What `Cipher(...).encryptor()` calls after its Python-level ABC type checks, which
    # cost ~1 µs per call (a fifth of the whole ChaCha20 step), twice per gift wrap. The
    # public path stays as the fallback if a future `cryptography` moves this binding.
    from cryptography.hazmat.bindings._rust import openssl as _rust_openssl

    _create_encryption_ctx: Callable[..., Any] | None = _rust_openssl.ciphers.create_encryption_ctx
except (ImportError, AttributeError):  # pragma: no cover - depends on the installed version
    _create_encryption_ctx = None

# One entry per (our secret, their public key); 8192 entries cover every open trade
# of a busy node. Only long-lived peers belong here, never one-shot ephemeral keys.
_CONVERSATION_KEY_CACHE_SIZE = 8192


# HMAC-SHA256 (RFC 2104) written on hashlib's SHA-256 objects. OpenSSL 3's one-shot HMAC
# (`hmac.digest`, and `HKDFExpand`, which runs it three times) fetches the digest from its
# provider and builds a MAC context on every call: ~2 µs for a 33-byte `hmac.digest` and
# 3.3 µs for `HKDFExpand` when hot, 2-3× that inside the unwrap pipeline, where that code is
# evicted from the CPU caches between messages. SHA-256 objects stay hot (event ids need
# them) and make the key derivation of a gift-wrap layer 10 → 6 µs in the pipeline, its MAC
# 5.6 → 4.3 µs. NIP-44's HMAC keys are always 32 bytes: zero-padded to the 64-byte block,
# then XORed with the pads. Checked against the official vectors and `hmac` in the tests.
_sha256 = hashlib.sha256
_BLOCK_PAD_BYTES = 64 - _KEY_BYTES
_IPAD_INT = int.from_bytes(b"\x36" * _KEY_BYTES, "big")
_OPAD_INT = int.from_bytes(b"\x5c" * _KEY_BYTES, "big")
_IPAD_TAIL = b"\x36" * _BLOCK_PAD_BYTES
_OPAD_TAIL = b"\x5c" * _BLOCK_PAD_BYTES
# The NIP-44 salt is the HMAC key of HKDF-Extract: its two padded blocks are hashed once.
_SALT_BLOCK = _SALT.ljust(64, b"\x00")
_SALT_INNER = _sha256(bytes(byte ^ 0x36 for byte in _SALT_BLOCK))
_SALT_OUTER = _sha256(bytes(byte ^ 0x5C for byte in _SALT_BLOCK))


def _hmac_pads(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 states after the inner and outer padded key blocks of a 32-byte HMAC key."""
    number = int.from_bytes(key, "big")  # integer XOR: no key-indexed table lookups
    inner = _sha256((number ^ _IPAD_INT).to_bytes(_KEY_BYTES, "big") + _IPAD_TAIL)
    outer = _sha256((number ^ _OPAD_INT).to_bytes(_KEY_BYTES, "big") + _OPAD_TAIL)
    return inner, outer


def _hmac_sha256(key: bytes, data: bytes | memoryview) -> bytes:
    """HMAC-SHA256 with a 32-byte key (`hmac.digest(key, data, "sha256")`, same bytes)."""
    inner, outer = _hmac_pads(key)
    inner.update(data)
    outer.update(inner.digest())
    return outer.digest()


def get_conversation_key(secret: bytes, xonly_pub: bytes) -> bytes:
    """HKDF-Extract(salt="nip44-v2", IKM=unhashed shared x); symmetric in the two parties.

    Raises `InvalidKey` for a secret outside 1..n-1 or a public key that is not on the curve.
    """
    inner = _SALT_INNER.copy()
    inner.update(secp.shared_x(secret, xonly_pub))
    outer = _SALT_OUTER.copy()
    outer.update(inner.digest())
    return outer.digest()


@lru_cache(maxsize=_CONVERSATION_KEY_CACHE_SIZE)
def cached_conversation_key(secret: bytes, xonly_pub: bytes) -> bytes:
    """`get_conversation_key` memoised for peers that talk to us repeatedly (trade/identity keys)."""
    return get_conversation_key(secret, xonly_pub)


def get_message_keys(conversation_key: bytes, nonce: bytes) -> tuple[bytes, bytes, bytes]:
    """HKDF-Expand(PRK=conversation_key, info=nonce, L=76) → (chacha_key, chacha_nonce, hmac_key)."""
    if len(conversation_key) != _KEY_BYTES:
        raise DecryptionError("conversation key must be 32 bytes")
    if len(nonce) != _NONCE_BYTES:
        raise DecryptionError("nonce must be 32 bytes")
    # T(i) = HMAC(PRK, T(i-1) || info || i); 76 bytes = T(1) || T(2) || T(3)[:12].
    inner, outer = _hmac_pads(conversation_key)
    step = inner.copy()
    step.update(nonce + b"\x01")
    mac = outer.copy()
    mac.update(step.digest())
    t1 = mac.digest()
    step = inner.copy()
    step.update(t1 + nonce + b"\x02")
    mac = outer.copy()
    mac.update(step.digest())
    t2 = mac.digest()
    inner.update(t2 + nonce + b"\x03")
    outer.update(inner.digest())
    return t1, t2[:12], t2[12:] + outer.digest()[:12]


def calc_padded_len(unpadded_len: int) -> int:
    """Padded length for a plaintext of `unpadded_len` bytes (power-of-two chunks, min 32)."""
    if unpadded_len <= 0:
        raise InvalidPlaintextLength("plaintext must not be empty")
    if unpadded_len <= 32:
        return 32
    next_power = 1 << (unpadded_len - 1).bit_length()
    chunk = 32 if next_power <= 256 else next_power // 8
    return chunk * ((unpadded_len - 1) // chunk + 1)


def _chacha20(key: bytes, nonce12: bytes, data: bytes | memoryview) -> bytes:
    # `cryptography` takes the 4-byte little-endian block counter in front of the nonce.
    algorithm = algorithms.ChaCha20(key, _ZERO_BLOCK_COUNTER + nonce12)
    if _create_encryption_ctx is not None:
        out: bytes = _create_encryption_ctx(algorithm, None).update(data)
        return out
    return Cipher(algorithm, mode=None).encryptor().update(data)


def _pad(plaintext: bytes) -> bytes:
    size = len(plaintext)
    if not _MIN_PLAINTEXT_BYTES <= size <= _MAX_PLAINTEXT_BYTES:
        raise InvalidPlaintextLength(f"plaintext must be 1..65535 bytes, got {size}")
    return size.to_bytes(2, "big") + plaintext + bytes(calc_padded_len(size) - size)


def _unpad(padded: bytes) -> bytes:
    size = int.from_bytes(padded[0:2], "big")
    plaintext = padded[2 : 2 + size]
    if size == 0 or len(plaintext) != size or len(padded) != 2 + calc_padded_len(size):
        raise DecryptionError("invalid padding")
    return plaintext


def encrypt(plaintext: str, conversation_key: bytes, nonce: bytes | None = None) -> str:
    """Encrypt to a base64 payload; `nonce` is only fixed by tests (fresh CSPRNG bytes otherwise)."""
    if nonce is None:
        nonce = os.urandom(_NONCE_BYTES)
    try:
        raw = plaintext.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidPlaintextLength("plaintext is not encodable as UTF-8") from exc
    chacha_key, chacha_nonce, hmac_key = get_message_keys(conversation_key, nonce)
    ciphertext = _chacha20(chacha_key, chacha_nonce, _pad(raw))
    mac = _hmac_sha256(hmac_key, nonce + ciphertext)
    return base64.b64encode(b"\x02" + nonce + ciphertext + mac).decode("ascii")


_B64_VALUES = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _decode_payload(payload: str) -> bytes:
    if not isinstance(payload, str):
        raise DecryptionError("payload must be a string")
    size = len(payload)
    if size == 0 or payload[0] == "#":
        raise DecryptionError("unknown encryption version")
    if not _MIN_PAYLOAD_CHARS <= size <= _MAX_PAYLOAD_CHARS:
        raise DecryptionError(f"invalid payload length: {size}")
    try:
        data = binascii.a2b_base64(payload, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise DecryptionError("invalid base64") from exc
    _require_canonical_base64(payload, len(data))
    if not _MIN_DECODED_BYTES <= len(data) <= _MAX_DECODED_BYTES:
        raise DecryptionError(f"invalid data length: {len(data)}")
    if data[0] != VERSION:
        raise DecryptionError(f"unknown encryption version {data[0]}")
    return data


def _require_canonical_base64(payload: str, decoded_len: int) -> None:
    # Python tolerates surplus "=" and non-zero unused bits in the last character; the
    # Rust base64 engine nostr-sdk uses does not, so neither do we.
    if len(payload) != (decoded_len + 2) // 3 * 4:
        raise DecryptionError("invalid base64 padding")
    tail = decoded_len % 3
    if tail and _B64_VALUES[payload[-3 if tail == 1 else -2]] & (0x0F if tail == 1 else 0x03):
        raise DecryptionError("non-canonical base64")


def decrypt(payload: str, conversation_key: bytes) -> str:
    """Decrypt a base64 payload; any failure raises `DecryptionError`."""
    data = _decode_payload(payload)
    chacha_key, chacha_nonce, hmac_key = get_message_keys(conversation_key, data[1:33])
    # The MAC covers nonce + ciphertext, i.e. the decoded bytes between version and MAC:
    # memoryview slices avoid copying them (twice) for the MAC and the cipher.
    view = memoryview(data)
    if not hmac.compare_digest(_hmac_sha256(hmac_key, view[1:-_MAC_BYTES]), view[-_MAC_BYTES:]):
        raise DecryptionError("invalid MAC")
    plaintext = _unpad(_chacha20(chacha_key, chacha_nonce, view[33:-_MAC_BYTES]))
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecryptionError("plaintext is not valid UTF-8") from exc
