"""Fast BOLT11 encoder and signer (pure; coincurve + the project's bech32).

The `bolt11` package encodes through bitstring at ~3 ms per invoice, which alone would cap
the simulated network below its throughput target. This encoder works on 5-bit integer
lists instead (~0.2 ms). Its output is checked against `bolt11.decode` in the tests.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import coincurve
from bolt11.utils import msat_to_amount

from nostrbridge.protocol.bech32 import CHARSET, bech32_encode_words, from_words, to_words

# LND's invoice feature bits: var_onion_optin (8, required), payment_secret (14, required),
# basic_mpp (17, optional).
DEFAULT_FEATURE_BITS = (1 << 8) | (1 << 14) | (1 << 17)
NETWORK_CURRENCY = {"mainnet": "bc", "testnet": "tb", "testnet4": "tb", "signet": "tbs", "regtest": "bcrt"}


@dataclass(frozen=True, slots=True)
class InvoiceTerms:
    payment_hash: bytes
    payment_secret: bytes
    amount_msat: int = 0
    description: str = ""
    expiry_seconds: int = 3600
    min_final_cltv_expiry: int = 18
    currency: str = "bcrt"
    timestamp: int = 0
    description_hash: bytes = b""


def _int_u5(value: int) -> list[int]:
    """Big-endian 5-bit groups with no leading zero group (BOLT11 "minimal length")."""
    out = []
    while value:
        out.append(value & 31)
        value >>= 5
    return out[::-1] or [0]


def _bytes_u5(data: bytes) -> list[int]:
    return to_words(data)


def _tagged(char: str, u5: list[int]) -> list[int]:
    return [CHARSET.index(char), len(u5) >> 5, len(u5) & 31, *u5]


def _fields(terms: InvoiceTerms) -> list[int]:
    data = [((terms.timestamp or int(time.time())) >> (5 * i)) & 31 for i in range(6, -1, -1)]
    data += _tagged("p", _bytes_u5(terms.payment_hash))
    data += _tagged("s", _bytes_u5(terms.payment_secret))
    if terms.description_hash:
        data += _tagged("h", _bytes_u5(terms.description_hash))
    else:
        data += _tagged("d", _bytes_u5(terms.description.encode()))
    data += _tagged("x", _int_u5(terms.expiry_seconds))
    data += _tagged("c", _int_u5(terms.min_final_cltv_expiry))
    data += _tagged("9", _int_u5(DEFAULT_FEATURE_BITS))
    return data


def encode_invoice(terms: InvoiceTerms, private_key: coincurve.PrivateKey) -> str:
    """A signed BOLT11 string for `terms` (payee recoverable from the signature)."""
    hrp = "ln" + terms.currency + (msat_to_amount(terms.amount_msat) if terms.amount_msat else "")
    data = _fields(terms)
    signing_bytes = from_words(data, pad=True)
    assert signing_bytes is not None  # padding on: cannot fail
    signature = private_key.sign_recoverable(hrp.encode() + signing_bytes, hasher=_sha256)
    return bech32_encode_words(hrp, data + _bytes_u5(signature))


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
