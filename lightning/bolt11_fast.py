"""A BOLT11 decode of the common invoice shape straight from bech32's 5-bit words.

`bolt11.decode` (the `bolt11` package) reads every field through `bitstring` objects: even with
the shims in `lightning.bolt11` it costs ~0.2 ms an invoice, paid at every take and add-invoice
in mostrod and again at every payout in a job worker, whose decode cache is cold. Every BOLT11
field starts on a 5-bit boundary, so the fields can be read from the word list itself.

`decode_common` handles the shape wallets and LND issue: the payment hash, the payment secret,
a description or its hash, the expiry, the final CLTV delta, the features, and fields the
package skips (unknown types, or a known type of the wrong length, or repeated); the payee is
recovered from the signature as the package does. It returns None, and the caller decodes with
the package, for anything else: an explicit payee (`n`), route hints, fallback addresses or
metadata (whose parsers can refuse), a field running past the data, an empty expiry or CLTV
field, a description that is not UTF-8, no description (nor its hash), no hash or secret, or a
signature the recovery refuses. An empty description is a description, as for the package: LND
writes one when the invoice has no memo. So every refusal, and every invoice outside the
shape, is the package's own; an accepted invoice of the shape decodes to the same values
(tests compare both on generated and damaged invoices).
"""

from __future__ import annotations

from bolt11.utils import verify_hrp
from coincurve import PublicKey

from lightning.types import DecodedInvoice

SIGNATURE_WORDS = 104  # 65 bytes: r, s and the recovery id
TIMESTAMP_WORDS = 7  # 35 bits
HASH_WORDS = 52  # 32 bytes (p, s, h), as the package requires
CURRENCY_NETWORK = {"bc": "mainnet", "tb": "testnet", "tbs": "signet", "bcrt": "regtest"}
_FALL_BACK = frozenset("nrfm")  # fields only the package reads (or verifies, for `n`)


_WORD_BITS = tuple(format(word, "05b") for word in range(32))
_SHORT_WORDS = 16  # up to here the shift loop is faster than building the text


def _uint(words: list[int]) -> int:
    """The words' bits as one integer. A long run (the signed data, ~330 words; the signature)
    is parsed from its text of bits: shifting a growing integer word by word was a third slower."""
    if len(words) > _SHORT_WORDS:
        return int("".join([_WORD_BITS[word] for word in words]), 2)
    value = 0
    for word in words:
        value = (value << 5) | word
    return value


def _bytes(words: list[int]) -> bytes:
    """The whole bytes of the words' bits (`bolt11.bit_utils.trim_to_bytes`: a partial byte dropped)."""
    bits = 5 * len(words)
    return (_uint(words) >> (bits % 8)).to_bytes(bits // 8, "big")


def _padded_bytes(words: list[int]) -> bytes:
    """The words' bits zero-padded to whole bytes (bitstring's `tobytes`: the signed data)."""
    bits = 5 * len(words)
    pad = -bits % 8
    return (_uint(words) << pad).to_bytes((bits + pad) // 8, "big")


def decode_common(payment_request: str, hrp: str, words: list[int], charset: str) -> DecodedInvoice | None:
    """`hrp` and `words` are bech32's decode of `payment_request` (checksum dropped, already
    verified); `charset` its 32 characters. None: let the package decode it."""
    if len(words) < TIMESTAMP_WORDS + SIGNATURE_WORDS:
        return None
    try:
        currency, amount_msat = verify_hrp(hrp)
    except Exception:  # noqa: BLE001 - any refusal is the package's to make
        return None
    data = words[:-SIGNATURE_WORDS]
    found: dict[str, list[int]] = {}
    position = TIMESTAMP_WORDS
    while position < len(data):
        if position + 3 > len(data):
            return None
        tag = charset[data[position]]
        length = data[position + 1] * 32 + data[position + 2]
        field = data[position + 3 : position + 3 + length]
        position += 3 + length
        if len(field) != length or tag in _FALL_BACK:
            return None
        if tag in "psh" and length != HASH_WORDS:
            continue  # the package skips a hash of the wrong length
        if tag in found or (tag in "dh" and ("d" in found or "h" in found)):
            continue  # the first one counts; a description and a hash: the package keeps the first
        found[tag] = field
    if "p" not in found or "s" not in found or ("d" not in found and "h" not in found):
        return None
    if any(tag in found and not found[tag] for tag in "xc"):
        return None  # an empty number: the package's refusal
    try:
        description = _bytes(found["d"]).decode() if "d" in found else ""
        payee = PublicKey.from_signature_and_message(
            _uint(words[-SIGNATURE_WORDS:]).to_bytes(65, "big"), hrp.encode() + _padded_bytes(data)
        )
    except Exception:  # noqa: BLE001 - a bad description or signature: the package's refusal
        return None
    return DecodedInvoice(
        payment_request=payment_request,
        payment_hash_hex=_bytes(found["p"]).hex(),
        amount_msat=int(amount_msat or 0),
        network=CURRENCY_NETWORK.get(currency, currency),
        timestamp=_uint(data[:TIMESTAMP_WORDS]),
        expiry_seconds=_uint(found["x"]) if "x" in found else 3600,
        min_final_cltv_expiry=_uint(found["c"]) if "c" in found else 18,
        description=description,
        description_hash_hex=_bytes(found["h"]).hex() if "h" in found else "",
        payee_pubkey_hex=payee.format(compressed=True).hex(),
        payment_secret_hex=_bytes(found["s"]).hex(),
        currency=currency,
    )
