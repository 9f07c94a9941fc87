"""What the payout needs of the buyer's BOLT11, carried from the node's decode to the job worker.

The node decodes and validates the buyer's invoice when it accepts it (take-sell, add-invoice:
signature, network, amount, expiry window, CLTV; `lightning.bolt11`), and its lanes keep that
decode cached. The payout runs in a worker of the job cluster, whose cache is cold: it decoded
the same string again (the bech32 checksum, the fields, the signature's public-key recovery:
~0.12 ms a payout). The release now puts the decode's facts into the payout task's arguments
(`orders.services.payout.payout_schedule`), which django-q2 signs with the node's secret (its
pusher drops a package whose signature fails). The worker uses them only for the very string
it is about to pay (their SHA-256 of the normalized invoice must match), and applies the pay-time
rules to them exactly as to a fresh decode (`check_payout_invoice`: network, CLTV, expiry now,
the exact amount). No facts, facts of another string (the buyer replaced the invoice after a
failed payout), or facts of the wrong shape (a task queued by another version): a full decode,
as before. A Lightning address has no facts: its invoice is fetched and decoded at pay time.
"""

from __future__ import annotations

import hashlib

from lightning.bolt11 import InvoiceInvalid, decode_invoice, normalize_payment_request
from lightning.bolt11_fast import CURRENCY_NETWORK
from lightning.types import DecodedInvoice

# (SHA-256 of the normalized invoice, payment hash hex, amount msat, currency, timestamp,
# expiry seconds, min final CLTV delta): a tuple pickles smaller than a dict in the task package.
InvoiceFacts = tuple[bytes, str, int, str, int, int, int]
_FACT_TYPES = (bytes, str, int, str, int, int, int)


def _digest(normalized: str) -> bytes:
    return hashlib.sha256(normalized.encode()).digest()


def invoice_facts(payment_request: str) -> InvoiceFacts | None:
    """The facts of a BOLT11 (a cache hit where the node accepted it); None if it does not decode."""
    try:
        decoded = decode_invoice(payment_request)
    except InvoiceInvalid:
        return None  # the worker's own decode refuses it, as before
    return (
        _digest(decoded.payment_request),
        decoded.payment_hash_hex,
        decoded.amount_msat,
        decoded.currency,
        decoded.timestamp,
        decoded.expiry_seconds,
        decoded.min_final_cltv_expiry,
    )


def invoice_from_facts(payment_request: str, facts: object) -> DecodedInvoice | None:
    """The decode `facts` stand for, if they are `payment_request`'s; else None (decode it).

    Only the fields the payout reads are set (hash, amount, chain, expiry, CLTV): the payee, the
    secret and the description stay empty."""
    if not isinstance(facts, tuple) or len(facts) != len(_FACT_TYPES):
        return None
    if any(type(value) is not kind for value, kind in zip(facts, _FACT_TYPES, strict=True)):
        return None
    digest, payment_hash_hex, amount_msat, currency, timestamp, expiry_seconds, min_final_cltv = facts
    currency = str(currency)  # checked above; for the type checker
    normalized = normalize_payment_request(payment_request)
    if digest != _digest(normalized):
        return None
    return DecodedInvoice(
        payment_request=normalized,
        payment_hash_hex=payment_hash_hex,
        amount_msat=amount_msat,
        network=CURRENCY_NETWORK.get(currency, currency),
        timestamp=timestamp,
        expiry_seconds=expiry_seconds,
        min_final_cltv_expiry=min_final_cltv,
        currency=currency,
    )
