"""NIP-44 v2 against every case of the official vector file (tests/vectors/README.md)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from nostrbridge.protocol import nip44
from nostrbridge.protocol.errors import DecryptionError, InvalidKey, InvalidPlaintextLength, ProtocolError
from nostrbridge.protocol.keys import Keys
from tests.nostrbridge.protocol.conftest import NIP44_VECTORS

VALID = NIP44_VECTORS["valid"]
INVALID = NIP44_VECTORS["invalid"]


@pytest.mark.parametrize("case", VALID["get_conversation_key"], ids=lambda c: c["conversation_key"][:12])
def test_conversation_key(case: dict) -> None:
    key = nip44.get_conversation_key(bytes.fromhex(case["sec1"]), bytes.fromhex(case["pub2"]))
    assert key.hex() == case["conversation_key"]


@pytest.mark.parametrize(
    ("conversation_key", "case"),
    [(group["conversation_key"], case) for group in [VALID["get_message_keys"]] for case in group["keys"]],
    ids=lambda v: v["nonce"][:12] if isinstance(v, dict) else "",
)
def test_message_keys(conversation_key: str, case: dict) -> None:
    chacha_key, chacha_nonce, hmac_key = nip44.get_message_keys(
        bytes.fromhex(conversation_key), bytes.fromhex(case["nonce"])
    )
    assert (chacha_key.hex(), chacha_nonce.hex(), hmac_key.hex()) == (
        case["chacha_key"],
        case["chacha_nonce"],
        case["hmac_key"],
    )


@pytest.mark.parametrize(("unpadded", "padded"), VALID["calc_padded_len"])
def test_calc_padded_len(unpadded: int, padded: int) -> None:
    assert nip44.calc_padded_len(unpadded) == padded


@pytest.mark.parametrize("case", VALID["encrypt_decrypt"], ids=lambda c: c["nonce"][:12])
def test_encrypt_decrypt(case: dict) -> None:
    sec1, sec2 = bytes.fromhex(case["sec1"]), bytes.fromhex(case["sec2"])
    pub1, pub2 = Keys(sec1).public_key, Keys(sec2).public_key
    key = nip44.get_conversation_key(sec1, pub2)
    assert key.hex() == case["conversation_key"]
    assert nip44.encrypt(case["plaintext"], key, bytes.fromhex(case["nonce"])) == case["payload"]
    # The receiver derives the same key from the other side.
    assert nip44.decrypt(case["payload"], nip44.get_conversation_key(sec2, pub1)) == case["plaintext"]


@pytest.mark.parametrize("case", VALID["encrypt_decrypt_long_msg"], ids=lambda c: str(c["repeat"]))
def test_encrypt_decrypt_long_message(case: dict) -> None:
    plaintext = case["pattern"] * case["repeat"]
    key = bytes.fromhex(case["conversation_key"])
    assert hashlib.sha256(plaintext.encode()).hexdigest() == case["plaintext_sha256"]
    payload = nip44.encrypt(plaintext, key, bytes.fromhex(case["nonce"]))
    assert hashlib.sha256(payload.encode()).hexdigest() == case["payload_sha256"]
    assert nip44.decrypt(payload, key) == plaintext


@pytest.mark.parametrize("length", INVALID["encrypt_msg_lengths"])
def test_encrypt_rejects_length(length: int) -> None:
    with pytest.raises(InvalidPlaintextLength):
        nip44.encrypt("a" * length, bytes(32))


@pytest.mark.parametrize("case", INVALID["get_conversation_key"], ids=lambda c: c["note"])
def test_conversation_key_rejects_invalid_keys(case: dict) -> None:
    with pytest.raises(InvalidKey):
        nip44.get_conversation_key(bytes.fromhex(case["sec1"]), bytes.fromhex(case["pub2"]))


@pytest.mark.parametrize("case", INVALID["decrypt"], ids=lambda c: c["note"])
def test_decrypt_rejects_invalid_payload(case: dict) -> None:
    with pytest.raises(DecryptionError):
        nip44.decrypt(case["payload"], bytes.fromhex(case["conversation_key"]))


def test_errors_are_protocol_errors() -> None:
    assert issubclass(DecryptionError, ProtocolError)
    assert issubclass(InvalidPlaintextLength, ProtocolError)
    assert issubclass(InvalidKey, ProtocolError)


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _set_unused_bits(payload: str) -> str:
    """Same decoded bytes for Python, but the last data character has non-zero unused bits."""
    assert payload.endswith("=")
    assert not payload.endswith("==")
    value = _B64.index(payload[-2])
    return payload[:-2] + _B64[value | 1] + "="


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda p: p + "====", id="surplus-padding"),
        pytest.param(_set_unused_bits, id="non-zero-unused-bits"),
        pytest.param(lambda p: p[:50] + "*" + p[51:], id="non-alphabet"),
        pytest.param(lambda p: "é" + p[1:], id="non-ascii"),
    ],
)
def test_decrypt_rejects_non_canonical_base64(mutate) -> None:
    key = bytes(range(32))
    payload = nip44.encrypt("x" * 33, key, bytes(32))  # 1+32+(2+64)+32 = 131 bytes: one "=" of padding
    assert nip44.decrypt(payload, key) == "x" * 33
    with pytest.raises(DecryptionError):
        nip44.decrypt(mutate(payload), key)


def test_decrypt_rejects_flipped_ciphertext_bit() -> None:
    key = bytes(range(32))
    raw = bytearray(base64.b64decode(nip44.encrypt("hello", key, bytes(32))))
    raw[40] ^= 1
    with pytest.raises(DecryptionError, match="MAC"):
        nip44.decrypt(base64.b64encode(bytes(raw)).decode(), key)


def test_random_nonce_changes_payload_but_round_trips() -> None:
    key = bytes(range(32))
    first, second = nip44.encrypt("ünïcødé ✓", key), nip44.encrypt("ünïcødé ✓", key)
    assert first != second
    assert nip44.decrypt(first, key) == nip44.decrypt(second, key) == "ünïcødé ✓"


def test_cached_conversation_key_matches_uncached() -> None:
    alice, bob = Keys.generate(), Keys.generate()
    nip44.cached_conversation_key.cache_clear()
    first = nip44.cached_conversation_key(alice.secret, bob.public_key)
    second = nip44.cached_conversation_key(alice.secret, bob.public_key)
    assert first == second == nip44.get_conversation_key(bob.secret, alice.public_key)
    assert nip44.cached_conversation_key.cache_info().hits == 1
