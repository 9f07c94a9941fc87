"""Invoice validation (docs/PROTOCOL.md §Invoices): one test per refusal, invoices crafted with `bolt11`."""

import time

import bolt11
import coincurve
import pytest
from bolt11 import Bolt11, MilliSatoshi, TagChar, Tags

from lightning.bolt11 import (
    AMOUNT_BELOW_MINIMUM,
    AMOUNT_MISMATCH,
    BAD_SIGNATURE,
    CLTV_TOO_HIGH,
    EXPIRED,
    EXPIRES_TOO_SOON,
    UNDECODABLE,
    WRONG_NETWORK,
    InvoiceInvalid,
    decode_invoice,
    validate_buyer_invoice,
    validate_payout_invoice,
)
from lightning.bolt11_encode import InvoiceTerms, encode_invoice

NOW = 1_800_000_000
KEY = coincurve.PrivateKey(b"\x05" * 32)
OTHER_KEY = coincurve.PrivateKey(b"\x06" * 32)
LIMITS = {"min_payment_amount_sats": 100, "invoice_expiration_window_seconds": 3600, "max_final_cltv_expiry_delta": 432}


def craft(*, currency="bcrt", amount_sats=10_000, date=NOW, expiry=7200, cltv=144, payee=None, key=KEY):
    tags = Tags()
    tags.add(TagChar.payment_hash, "ab" * 32)
    tags.add(TagChar.payment_secret, "cd" * 32)
    tags.add(TagChar.description, "payout")
    tags.add(TagChar.expire_time, expiry)
    tags.add(TagChar.min_final_cltv_expiry, cltv)
    if payee:
        tags.add(TagChar.payee, payee)
    invoice = Bolt11(currency=currency, date=date, tags=tags, amount_msat=MilliSatoshi(amount_sats * 1000) or None)
    return bolt11.encode(invoice, key.secret.hex(), keep_payee=bool(payee))


def buyer(payment_request, expected=10_000, network="regtest", **kwargs):
    return validate_buyer_invoice(
        payment_request, expected_amount_sats=expected, network=network, now=NOW, **{**LIMITS, **kwargs}
    )


def refusal(payment_request, **kwargs) -> str:
    with pytest.raises(InvoiceInvalid) as refused:
        buyer(payment_request, **kwargs)
    return refused.value.code


def test_accepts_a_valid_invoice():
    decoded = buyer(craft())
    assert (decoded.amount_sats, decoded.network, decoded.currency) == (10_000, "regtest", "bcrt")
    assert (decoded.payment_hash_hex, decoded.expires_at, decoded.min_final_cltv_expiry) == ("ab" * 32, NOW + 7200, 144)
    assert decoded.payee_pubkey_hex == KEY.public_key.format().hex()


def test_accepts_an_amountless_invoice():
    assert buyer(craft(amount_sats=0)).amount_msat == 0


def test_refuses_undecodable():
    assert refusal("lnbcrt1notaninvoice") == UNDECODABLE
    assert refusal("hello") == UNDECODABLE


def test_refuses_bad_signature():
    assert refusal(craft(payee=OTHER_KEY.public_key.format().hex())) == BAD_SIGNATURE


def test_refuses_wrong_network():
    assert refusal(craft(currency="bc")) == WRONG_NETWORK
    assert refusal(craft(currency="tb")) == WRONG_NETWORK


def test_network_mapping():
    assert buyer(craft(currency="bc"), network="mainnet").network == "mainnet"
    assert buyer(craft(currency="tb"), network="testnet").network == "testnet"
    assert buyer(craft(currency="tb"), network="signet").network == "testnet"  # LND signet uses lntb


def test_refuses_expired():
    assert refusal(craft(date=NOW - 7200, expiry=3600)) == EXPIRED


def test_refuses_expiring_within_the_window():
    assert refusal(craft(expiry=3599)) == EXPIRES_TOO_SOON
    assert buyer(craft(expiry=3600)).expiry_seconds == 3600


def test_refuses_cltv_above_maximum():
    assert refusal(craft(cltv=433)) == CLTV_TOO_HIGH
    assert buyer(craft(cltv=432)).min_final_cltv_expiry == 432


def test_refuses_amount_mismatch():
    assert refusal(craft(amount_sats=10_001)) == AMOUNT_MISMATCH


def test_refuses_amount_below_minimum():
    assert refusal(craft(amount_sats=99), expected=99) == AMOUNT_BELOW_MINIMUM


def test_payout_flavour_skips_the_window_rule_but_keeps_the_others():
    soon = craft(expiry=60)
    decoded = validate_payout_invoice(soon, expected_amount_sats=10_000, network="regtest", now=NOW)
    with pytest.raises(InvoiceInvalid) as expired:
        validate_payout_invoice(soon, expected_amount_sats=10_000, network="regtest", now=NOW + 61)
    with pytest.raises(InvoiceInvalid) as mismatch:
        validate_payout_invoice(soon, expected_amount_sats=9_000, network="regtest", now=NOW)
    assert decoded.expiry_seconds == 60
    assert (expired.value.code, mismatch.value.code) == (EXPIRED, AMOUNT_MISMATCH)


def test_limits_default_to_settings(settings):
    settings.MOSTRO_MIN_PAYMENT_AMOUNT = 20_000
    with pytest.raises(InvoiceInvalid) as refused:
        validate_buyer_invoice(craft(), expected_amount_sats=10_000, network="regtest", now=NOW)
    assert refused.value.code == AMOUNT_BELOW_MINIMUM


def test_lightning_prefix_and_case_are_ignored():
    invoice = craft()
    assert buyer("lightning:" + invoice.upper()).payment_request == invoice


def test_fast_encoder_round_trips_through_bolt11():
    terms = InvoiceTerms(
        payment_hash=b"\x01" * 32,
        payment_secret=b"\x02" * 32,
        amount_msat=1_234_000,
        description="memo ✓",
        expiry_seconds=900,
        min_final_cltv_expiry=144,
        currency="bcrt",
        timestamp=int(time.time()),
    )
    raw = bolt11.decode(encode_invoice(terms, KEY))
    assert (raw.payment_hash, raw.payment_secret, raw.amount_msat) == ("01" * 32, "02" * 32, 1_234_000)
    assert (raw.description, raw.expiry, raw.min_final_cltv_expiry, raw.currency) == ("memo ✓", 900, 144, "bcrt")
    assert raw.payee == KEY.public_key.format().hex()
    assert raw.features.readable == {
        "var_onion_optin": "required",
        "payment_secret": "required",
        "basic_mpp": "supported",
    }


def test_decodes_are_cached():
    invoice = craft(amount_sats=4_242)
    assert decode_invoice(invoice) is decode_invoice(invoice)


def test_default_max_final_cltv_is_upstreams_144(settings):
    """mostrod 0.18.7 lowered the default from 432 to 144 (docs/PROTOCOL.md §Invoices)."""
    del settings.LND_MAX_FINAL_CLTV_EXPIRY_DELTA  # the module's own fallback
    defaults = {"min_payment_amount_sats": 100, "invoice_expiration_window_seconds": 3600}
    for check in (validate_buyer_invoice, validate_payout_invoice):
        limits = defaults if check is validate_buyer_invoice else {}
        assert check(craft(cltv=144), expected_amount_sats=10_000, network="regtest", now=NOW, **limits)
        with pytest.raises(InvoiceInvalid) as refused:
            check(craft(cltv=145), expected_amount_sats=10_000, network="regtest", now=NOW, **limits)
        assert refused.value.code == CLTV_TOO_HIGH


def test_settings_default_max_final_cltv_is_144():
    from mostro_site.settings import base

    assert base.LND_MAX_FINAL_CLTV_EXPIRY_DELTA == 144
