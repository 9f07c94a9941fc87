"""BIP-340 Schnorr and unhashed ECDH on libsecp256k1, through coincurve's cffi binding.

coincurve's high-level `PrivateKey.sign_schnorr` rebuilds the keypair and re-verifies
the signature on every call (three scalar multiplications instead of one), and its
`ecdh` returns a SHA-256 of the shared point while NIP-44 needs the *unhashed* x
coordinate. Signing and verifying dominate the cost of every inbound and outbound
message, so these helpers call the same library directly, with keypairs built once
per key and parsed public keys cached.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from nostrbridge.protocol.errors import InvalidKey

_CTX = GLOBAL_CONTEXT.ctx
_COMPRESSED_PUBKEY_BYTES = 33

# Parsed x-only keys are tiny; 4096 covers the node key, every active trade and
# identity key of a busy node, and keeps one-shot ephemeral keys from growing memory.
_PARSED_PUBKEY_CACHE_SIZE = 4096


@lru_cache(maxsize=_PARSED_PUBKEY_CACHE_SIZE)
def parse_xonly(pubkey: bytes) -> Any:
    """Parse a 32-byte BIP-340 public key; raise `InvalidKey` if it is not on the curve."""
    if not isinstance(pubkey, bytes) or len(pubkey) != 32:
        raise InvalidKey("x-only public key must be 32 bytes")
    parsed = ffi.new("secp256k1_xonly_pubkey *")
    if not lib.secp256k1_xonly_pubkey_parse(_CTX, parsed, pubkey):
        raise InvalidKey("public key is not a valid x coordinate on secp256k1")
    return parsed


def schnorr_verify(pubkey: bytes, message: bytes, signature: bytes) -> bool:
    """BIP-340 verification of a 64-byte signature over a 32-byte message."""
    if len(signature) != 64 or len(message) != 32:
        return False
    try:
        parsed = parse_xonly(pubkey)
    except InvalidKey:
        return False
    return bool(lib.secp256k1_schnorrsig_verify(_CTX, signature, message, 32, parsed))


def keypair_create(secret: bytes) -> Any:
    """Build the libsecp256k1 keypair (one base-point multiplication) for a 32-byte secret."""
    if not isinstance(secret, bytes) or len(secret) != 32:
        raise InvalidKey("secret key must be 32 bytes")
    keypair = ffi.new("secp256k1_keypair *")
    if not lib.secp256k1_keypair_create(_CTX, keypair, secret):
        raise InvalidKey("secret key is zero or not below the curve order")
    return keypair


def keypair_xonly(keypair: Any) -> bytes:
    """The 32-byte x-only public key of a keypair."""
    xonly = ffi.new("secp256k1_xonly_pubkey *")
    lib.secp256k1_keypair_xonly_pub(_CTX, xonly, ffi.NULL, keypair)
    out = ffi.new("unsigned char[32]")
    lib.secp256k1_xonly_pubkey_serialize(_CTX, out, xonly)
    return bytes(ffi.buffer(out, 32))


def schnorr_sign(keypair: Any, message: bytes, aux_rand: bytes | None = None) -> bytes:
    """BIP-340 signature; `aux_rand` None draws 32 fresh random bytes (the safe default)."""
    if len(message) != 32:
        raise ValueError("BIP-340 message must be 32 bytes")
    if aux_rand is None:
        aux_rand = os.urandom(32)
    elif len(aux_rand) != 32:
        raise ValueError("aux_rand must be 32 bytes")
    signature = ffi.new("unsigned char[64]")
    if not lib.secp256k1_schnorrsig_sign32(_CTX, signature, message, keypair, aux_rand):
        raise ValueError("schnorr signing failed")
    return bytes(ffi.buffer(signature, 64))


def shared_x(secret: bytes, pubkey: bytes) -> bytes:
    """Unhashed x coordinate of secret * lift_x(pubkey), the NIP-44 shared secret."""
    if not isinstance(secret, bytes) or len(secret) != 32:
        raise InvalidKey("secret key must be 32 bytes")
    # libsecp256k1 stores an x-only key exactly like the full key with even y (its
    # xonly_pubkey_load is a cast of pubkey_load), so the cached parse from signature
    # verification is reused instead of a second square root.
    point = ffi.new("secp256k1_pubkey *")
    ffi.memmove(point, parse_xonly(pubkey), ffi.sizeof("secp256k1_pubkey"))
    if not lib.secp256k1_ec_pubkey_tweak_mul(_CTX, point, secret):
        raise InvalidKey("secret key is zero or not below the curve order")
    out = ffi.new("unsigned char[33]")
    out_len = ffi.new("size_t *", _COMPRESSED_PUBKEY_BYTES)
    lib.secp256k1_ec_pubkey_serialize(_CTX, out, out_len, point, lib.SECP256K1_EC_COMPRESSED)
    return bytes(ffi.buffer(out, _COMPRESSED_PUBKEY_BYTES))[1:]
