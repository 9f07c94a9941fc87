"""Bech32 (BIP-173), the project's one implementation: NIP-19 keys and entities, BOLT11, LNURL.

pynostr's copy of the reference code does the work. No length limit here: BOLT11 invoices,
LNURLs and `nevent` entities exceed BIP-173's 90 characters; callers that know a shorter
form (`npub`, `nsec`) check its length themselves. Only the original checksum is accepted
on decode (bech32m is for segwit v1+ addresses, which nothing here reads).
"""

from pynostr.bech32 import CHARSET, Encoding, convertbits
from pynostr.bech32 import bech32_decode as _reference_decode
from pynostr.bech32 import bech32_encode as _reference_encode

__all__ = ["CHARSET", "bech32_decode", "bech32_encode", "bech32_encode_words", "from_words", "to_words"]


def to_words(data: bytes) -> list[int]:
    """8-bit bytes → 5-bit words, zero-padded."""
    words: list[int] = convertbits(data, 8, 5, True)
    return words


def from_words(words: list[int], *, pad: bool = False) -> bytes | None:
    """5-bit words → bytes; None when the padding is not zero bits (strict unless `pad`)."""
    data: list[int] | None = convertbits(words, 5, 8, pad)
    return None if data is None else bytes(data)


def bech32_encode_words(hrp: str, words: list[int]) -> str:
    text: str = _reference_encode(hrp, words, Encoding.BECH32)
    return text


def bech32_encode(hrp: str, payload: bytes) -> str:
    return bech32_encode_words(hrp, to_words(payload))


def bech32_decode(text: str) -> tuple[str, bytes] | None:
    """(hrp, payload) of a valid bech32 string (checksum, one case, zero padding), else None."""
    hrp, words, encoding = _reference_decode(text)
    if hrp is None or words is None or encoding is not Encoding.BECH32:
        return None
    payload = from_words(words)
    return None if payload is None else (hrp, payload)
