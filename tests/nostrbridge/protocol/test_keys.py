"""Keys: hex and NIP-19 forms, BIP-340 signing with the vectors' deterministic aux."""

from __future__ import annotations

import hashlib

import pytest

from nostrbridge.protocol.errors import InvalidKey
from nostrbridge.protocol.keys import Keys, bech32_decode_key, parse_public_key, verify_signature

# NIP-19 reference values (the examples of the NIP-19 text).
NIP19_NPUB = (
    "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e",
    "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg",
)
NIP19_NSEC = (
    "67dea2ed018072d675f5415ecfaed7d2597555e202d85b3d65ea4e58d2d92ffa",
    "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5",
)


def test_vector_keys_derive_the_listed_public_keys(vectors: dict, keys: dict[str, Keys]) -> None:
    for label, pair in vectors["keys"].items():
        assert keys[label].public_key_hex == pair["pk"]
        assert pair["sk"] == hashlib.sha256(label.encode()).hexdigest()


def test_nip19_nsec_round_trip() -> None:
    secret_hex, nsec = NIP19_NSEC
    keys = Keys.from_nsec(nsec)
    assert keys.secret_hex == secret_hex
    assert keys.nsec == nsec
    assert Keys.parse(nsec) == Keys.parse(secret_hex) == keys


def test_nip19_npub_round_trip() -> None:
    pubkey_hex, npub = NIP19_NPUB
    assert parse_public_key(npub) == pubkey_hex
    assert parse_public_key(pubkey_hex.upper()) == pubkey_hex
    assert bech32_decode_key(npub.upper(), "npub").hex() == pubkey_hex


def test_generated_keys_npub_matches_public_key() -> None:
    keys = Keys.generate()
    assert parse_public_key(keys.npub) == keys.public_key_hex
    assert Keys.from_nsec(keys.nsec) == keys


@pytest.mark.parametrize(
    "value",
    [
        "",
        "00" * 32,  # zero is not a valid secret
        "ff" * 32,  # above the curve order
        "zz" * 32,
        "ab" * 31,
        NIP19_NSEC[1][:-1] + ("q" if NIP19_NSEC[1][-1] != "q" else "p"),  # checksum
        NIP19_NSEC[1][:10] + NIP19_NSEC[1][10:].upper(),  # mixed case
        NIP19_NPUB[1],  # wrong prefix for a secret
        "nsec1" + "b" * 58,
    ],
)
def test_bad_secret_keys_raise_invalid_key(value: str) -> None:
    with pytest.raises(InvalidKey):
        Keys.parse(value)


@pytest.mark.parametrize(
    "value",
    ["", "zz" * 32, "ab" * 33, "ff" * 32, NIP19_NSEC[1], None, 12],
)
def test_bad_public_keys_raise_invalid_key(value: object) -> None:
    with pytest.raises(InvalidKey):
        parse_public_key(value)


def test_secret_bytes_must_be_bytes() -> None:
    with pytest.raises(InvalidKey):
        Keys("a" * 32)  # type: ignore[arg-type]


def test_sign_with_zero_aux_is_deterministic_and_verifies(keys: dict[str, Keys]) -> None:
    trade = keys["alice-trade-1"]
    digest = hashlib.sha256(b"mostro").digest()
    first, second = trade.sign(digest, bytes(32)), trade.sign(digest, bytes(32))
    assert first == second
    assert trade.sign(digest) != first  # fresh aux by default
    assert verify_signature(trade.public_key, digest, first)
    assert not verify_signature(keys["alice-identity"].public_key, digest, first)
    assert not verify_signature(trade.public_key, digest, first[:-1] + bytes([first[-1] ^ 1]))
    assert not verify_signature(b"\xff" * 32, digest, first)


def test_repr_never_shows_the_secret(keys: dict[str, Keys]) -> None:
    assert keys["mostro-node"].secret_hex not in repr(keys["mostro-node"])
