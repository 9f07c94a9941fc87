"""BOLT11 decoding and the invoice rules Mostro applies (pure; docs/PROTOCOL.md §Invoices, §Payout).

Every refusal raises `InvoiceInvalid` with a distinct `code`. The protocol edge maps all of
them to the cant-do reason `invalid_invoice`; the codes exist for logs, tests and the API.
Decoding with the `bolt11` package costs several milliseconds, so decodes are cached by
payment request (an invoice string is immutable, so the cache can never go stale).
"""

from __future__ import annotations

import functools
import importlib
import re
import time
from datetime import datetime
from functools import lru_cache

import bolt11 as bolt11_lib
from bitstring import BitArray, Bits, ConstBitStream
from bolt11.exceptions import Bolt11Exception, Bolt11SignatureVerifyException
from bolt11.models.features import Feature, FeatureExtra, Features, FeatureState

from lightning.bolt11_fast import CURRENCY_NETWORK, decode_common
from lightning.types import DecodedInvoice
from nostrbridge.protocol.bech32 import CHARSET

UNDECODABLE = "undecodable"
BAD_SIGNATURE = "bad_signature"
WRONG_NETWORK = "wrong_network"
EXPIRED = "expired"
EXPIRES_TOO_SOON = "expires_too_soon"
CLTV_TOO_HIGH = "cltv_too_high"
AMOUNT_MISMATCH = "amount_mismatch"
AMOUNT_BELOW_MINIMUM = "amount_below_minimum"

# LND's signet invoices use the testnet prefix "lntb" (its HRP follows the segwit HRP "tb").
_ACCEPTED_CURRENCIES = {
    "mainnet": {"bc"},
    "testnet": {"tb"},
    "testnet4": {"tb"},
    "signet": {"tb", "tbs"},
    "regtest": {"bcrt"},
}
DECODE_CACHE_SIZE = 4096


class InvoiceInvalid(ValueError):  # noqa: N818 - the name reads as the condition it reports
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def u5_to_bitarray(values: list[int]) -> BitArray:
    """The bits of bech32's 5-bit groups, as `bolt11.bit_utils.u5_to_bitarray` builds them.

    That shim appends each group as its own `bitstring.pack` call: ~85 % of a `bolt11.decode`
    (~2.5 of 2.9 ms here), paid again in every process that decodes the invoice (the bridge
    at take time, the job cluster at payout time). One integer of the same bits gives an equal
    BitArray (tests compare both on every length and on real invoices).
    """
    bits = 0
    for value in values:
        if not 0 <= value < 32:  # bech32 yields 0..31 only; bitstring's pack would refuse it too
            raise ValueError(f"not a 5-bit value: {value}")
        bits = (bits << 5) | value
    return BitArray(uint=bits, length=5 * len(values)) if values else BitArray()


_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
# What the five top bits of the checksum XOR in, for each of their 32 values (BIP-173's loop
# over the generator, done once).
_POLYMOD_TABLE = tuple(
    functools.reduce(lambda chk, i: chk ^ (_GENERATOR[i] if (top >> i) & 1 else 0), range(5), 0) for top in range(32)
)
_CHARSET_INDEX = {char: index for index, char in enumerate(CHARSET)}
_VISIBLE_ASCII = re.compile(r"[!-~]*")  # ord 33..126


def bech32_decode(bech: str) -> tuple[str, list[int]] | tuple[None, None]:
    """`bech32.bech32_decode` (the package `bolt11.decode` calls), with the same checks and
    answers: the checksum over a table instead of five branches per character, the character
    checks in one pass each (40 % of a decode: the bridge decodes the buyer's invoice at the take,
    the job cluster again at the payout). Tests compare both on valid, corrupted and malformed input."""
    if not _VISIBLE_ASCII.fullmatch(bech) or (bech.lower() != bech and bech.upper() != bech):
        return (None, None)
    bech = bech.lower()
    pos = bech.rfind("1")
    if pos < 1 or pos > 83 or pos + 7 > len(bech):  # the package drops BIP-173's 90-character limit
        return (None, None)
    try:
        data = [_CHARSET_INDEX[char] for char in bech[pos + 1 :]]
    except KeyError:
        return (None, None)
    hrp = bech[:pos]
    chk = 1
    for value in [ord(char) >> 5 for char in hrp] + [0] + [ord(char) & 31 for char in hrp] + data:
        chk = ((chk & 0x1FFFFFF) << 5) ^ value ^ _POLYMOD_TABLE[chk >> 25]
    if chk != 1:
        return (None, None)
    return (hrp, data[:-6])


def pull_tagged(stream: ConstBitStream) -> tuple[str, ConstBitStream, ConstBitStream]:
    """`bolt11.decode._pull_tagged`: a field's type (5 bits) and length (10 bits) in one read of
    15 bits instead of three (each a bitstring object; the fields' reads were a third of a
    decode). Past the end it raises bitstring's ReadError (an IndexError) as the three reads do."""
    head = stream.read(15).uint
    return (CHARSET[head >> 10], stream.read((head & 0x3FF) * 5), stream)


class PackageFeatures:
    """What `bolt11.decode` calls as `Features`: `from_bitstring` returns the package's own
    `Features`, equal to the one its loop builds (a bitstring slice and comparison per bit, a
    fifth of a decode), from one integer of the field's bits."""

    @staticmethod
    def from_bitstring(data: Bits) -> Features:
        if data.len == 0 or data.len % 5:  # never from a decode (whole 5-bit groups): the package's way
            return Features.from_bitstring(data)
        bits, feature_list = data.uint, {}
        while bits:  # from the last bit (feature 0, required) up, as the package's loop
            index = (bits & -bits).bit_length() - 1
            bits &= bits - 1
            feature = Feature(index // 2) if index // 2 < len(Feature) else FeatureExtra(index // 2)
            feature_list[feature] = FeatureState.supported if index % 2 else FeatureState.required
        return Features(data, feature_list)


# bolt11 2.2.0 (pinned) looks these names up in its decode module at call time.
_decode_module = importlib.import_module("bolt11.decode")
setattr(_decode_module, "u5_to_bitarray", u5_to_bitarray)  # noqa: B010
setattr(_decode_module, "bech32_decode", bech32_decode)  # noqa: B010
setattr(_decode_module, "_pull_tagged", pull_tagged)  # noqa: B010
setattr(_decode_module, "Features", PackageFeatures)  # noqa: B010


def normalize_payment_request(payment_request: str) -> str:
    text = payment_request.strip()
    if text.lower().startswith("lightning:"):
        text = text[len("lightning:") :]
    return text.lower()


def decode_invoice(payment_request: str) -> DecodedInvoice:
    """Decode and check the signature; raises InvoiceInvalid(undecodable|bad_signature)."""
    return _decode_cached(normalize_payment_request(payment_request))


@lru_cache(maxsize=DECODE_CACHE_SIZE)
def _decode_cached(payment_request: str) -> DecodedInvoice:
    hrp, words = bech32_decode(payment_request)
    if hrp is not None and words is not None:
        decoded = decode_common(payment_request, hrp, words, CHARSET)
        if decoded is not None:
            return decoded  # the common shape, read from the words (`lightning.bolt11_fast`)
    return _decode_package(payment_request)


def _decode_package(payment_request: str) -> DecodedInvoice:
    """The `bolt11` package's decode: every invoice outside the common shape, every refusal."""
    try:
        raw = bolt11_lib.decode(payment_request)
    except Bolt11SignatureVerifyException as exc:
        raise InvoiceInvalid(BAD_SIGNATURE, "invoice signature does not match its payee") from exc
    except (Bolt11Exception, ValueError, TypeError, KeyError, IndexError) as exc:
        # Recovery failures from coincurve surface as ValueError as well.
        code = BAD_SIGNATURE if "signature" in str(exc).lower() else UNDECODABLE
        raise InvoiceInvalid(code, f"invoice cannot be decoded: {exc}") from exc
    return DecodedInvoice(
        payment_request=payment_request,
        payment_hash_hex=raw.payment_hash,
        amount_msat=int(raw.amount_msat or 0),
        network=CURRENCY_NETWORK.get(raw.currency, raw.currency),
        timestamp=raw.date,
        expiry_seconds=raw.expiry,
        min_final_cltv_expiry=raw.min_final_cltv_expiry,
        description=raw.description or "",
        description_hash_hex=raw.description_hash or "",
        payee_pubkey_hex=raw.payee or "",
        payment_secret_hex=raw.payment_secret or "",
        currency=raw.currency,
    )


def _epoch(now: float | datetime | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        return now.timestamp()
    return float(now)


def _setting(name: str, default: int) -> int:
    from django.conf import settings

    return int(getattr(settings, name, default))


def _check_common(invoice: DecodedInvoice, *, network: str, now: float, max_final_cltv_expiry_delta: int) -> None:
    if invoice.currency not in _ACCEPTED_CURRENCIES.get(network, {network}):
        raise InvoiceInvalid(WRONG_NETWORK, f"invoice is for {invoice.network}, the node is on {network}")
    if invoice.min_final_cltv_expiry > max_final_cltv_expiry_delta:
        raise InvoiceInvalid(
            CLTV_TOO_HIGH,
            f"min_final_cltv_expiry {invoice.min_final_cltv_expiry} exceeds {max_final_cltv_expiry_delta}",
        )
    if invoice.expires_at <= now:
        raise InvoiceInvalid(EXPIRED, "invoice has expired")


def _check_amount(invoice: DecodedInvoice, expected_amount_sats: int | None) -> None:
    if expected_amount_sats is None or invoice.amount_msat == 0:
        return
    if invoice.amount_msat != expected_amount_sats * 1000:
        raise InvoiceInvalid(
            AMOUNT_MISMATCH, f"invoice amount {invoice.amount_msat} msat, expected {expected_amount_sats} sats"
        )


def validate_buyer_invoice(
    payment_request: str,
    *,
    expected_amount_sats: int | None,
    network: str,
    now: float | datetime | None = None,
    min_payment_amount_sats: int | None = None,
    invoice_expiration_window_seconds: int | None = None,
    max_final_cltv_expiry_delta: int | None = None,
) -> DecodedInvoice:
    """The buyer's payout invoice as received in take-sell / add-invoice (docs/PROTOCOL.md §Invoices).

    `expected_amount_sats` is amount − fee (None when the order amount is not known yet);
    amountless invoices pass. Unset limits come from the MOSTRO_/LND_ settings.
    """
    if min_payment_amount_sats is None:
        min_payment_amount_sats = _setting("MOSTRO_MIN_PAYMENT_AMOUNT", 100)
    if invoice_expiration_window_seconds is None:
        invoice_expiration_window_seconds = _setting("LND_INVOICE_EXPIRATION_WINDOW", 3600)
    if max_final_cltv_expiry_delta is None:
        max_final_cltv_expiry_delta = _setting("LND_MAX_FINAL_CLTV_EXPIRY_DELTA", 144)
    invoice = decode_invoice(payment_request)
    now_s = _epoch(now)
    _check_common(invoice, network=network, now=now_s, max_final_cltv_expiry_delta=max_final_cltv_expiry_delta)
    _check_amount(invoice, expected_amount_sats)
    if invoice.amount_msat and invoice.amount_sats < min_payment_amount_sats:
        raise InvoiceInvalid(
            AMOUNT_BELOW_MINIMUM, f"invoice amount {invoice.amount_sats} below minimum {min_payment_amount_sats}"
        )
    if invoice.expires_at < now_s + invoice_expiration_window_seconds:
        raise InvoiceInvalid(
            EXPIRES_TOO_SOON, f"invoice must stay valid for {invoice_expiration_window_seconds} s more"
        )
    return invoice


def validate_payout_invoice(
    payment_request: str,
    *,
    expected_amount_sats: int | None,
    network: str,
    now: float | datetime | None = None,
    max_final_cltv_expiry_delta: int | None = None,
) -> DecodedInvoice:
    """An invoice about to be paid (fetched from an LN address or stored earlier, docs/PROTOCOL.md §Payout):
    chain, CLTV and expiry rules plus the exact amount, but not the expiration window."""
    return check_payout_invoice(
        decode_invoice(payment_request),
        expected_amount_sats=expected_amount_sats,
        network=network,
        now=now,
        max_final_cltv_expiry_delta=max_final_cltv_expiry_delta,
    )


def check_payout_invoice(
    invoice: DecodedInvoice,
    *,
    expected_amount_sats: int | None,
    network: str,
    now: float | datetime | None = None,
    max_final_cltv_expiry_delta: int | None = None,
) -> DecodedInvoice:
    """`validate_payout_invoice`'s rules on a decode already made (`lightning.bolt11_facts`)."""
    if max_final_cltv_expiry_delta is None:
        max_final_cltv_expiry_delta = _setting("LND_MAX_FINAL_CLTV_EXPIRY_DELTA", 144)
    _check_common(invoice, network=network, now=_epoch(now), max_final_cltv_expiry_delta=max_final_cltv_expiry_delta)
    _check_amount(invoice, expected_amount_sats)
    return invoice
