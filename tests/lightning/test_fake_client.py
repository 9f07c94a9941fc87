"""FakeLightningClient: the in-memory LND the service tests run against."""

import hashlib

import pytest
from django.db import transaction

from lightning.base import LightningClient
from lightning.bolt11 import decode_invoice
from lightning.errors import (
    AlreadySettledOrCanceled,
    InvoiceNotFound,
    InvoiceStillOpen,
    LightningRejected,
    LightningUnavailable,
    PaymentAlreadyExists,
)
from lightning.types import InvoiceState, PaymentStatus
from tests.lightning.helpers import new_hold_invoice


def test_satisfies_the_protocol(fake_client):
    assert isinstance(fake_client, LightningClient)


def test_hold_invoice_lifecycle_and_call_log(fake_client):
    preimage, hold = new_hold_invoice(fake_client, 10_000, memo="Escrow", cltv_expiry=144)
    payment_hash = bytes.fromhex(hold.payment_hash_hex)

    accepted = fake_client.mark_accepted(payment_hash)
    fake_client.settle_invoice(preimage=preimage)

    decoded = decode_invoice(hold.payment_request)
    assert (decoded.amount_sats, decoded.network, decoded.min_final_cltv_expiry) == (10_000, "regtest", 144)
    assert decoded.payment_hash_hex == hashlib.sha256(preimage).hexdigest()
    assert (accepted.state, accepted.amount_paid_sats, accepted.htlc_expiry_heights) == (
        InvoiceState.ACCEPTED,
        10_000,
        (800 + 144,),
    )
    assert fake_client.lookup_invoice(payment_hash=payment_hash).state is InvoiceState.SETTLED
    assert [name for name, _ in fake_client.calls] == ["add_hold_invoice", "settle_invoice", "lookup_invoice"]
    assert fake_client.calls[1] == ("settle_invoice", {"payment_hash": hold.payment_hash_hex})


def test_lnd_refusals(fake_client):
    preimage, hold = new_hold_invoice(fake_client)
    payment_hash = bytes.fromhex(hold.payment_hash_hex)
    with pytest.raises(InvoiceStillOpen):
        fake_client.settle_invoice(preimage=preimage)
    fake_client.cancel_invoice(payment_hash=payment_hash)
    fake_client.cancel_invoice(payment_hash=payment_hash)
    with pytest.raises(AlreadySettledOrCanceled) as canceled:
        fake_client.settle_invoice(preimage=preimage)
    with pytest.raises(InvoiceNotFound):
        fake_client.lookup_invoice(payment_hash=b"\x00" * 32)
    assert canceled.value.details == "invoice already canceled"


def test_payment_controls(fake_client):
    first = fake_client.add_invoice(amount_sats=1_000, memo="a")
    second = fake_client.add_invoice(amount_sats=2_000, memo="b")
    fake_client.fail_next_payment("FAILURE_REASON_TIMEOUT")
    failed = fake_client.send_payment(payment_request=first.payment_request, max_fee_sats=10, timeout_seconds=60)
    retried = fake_client.send_payment(payment_request=first.payment_request, max_fee_sats=10, timeout_seconds=60)
    fake_client.leave_next_payment_in_flight()
    in_flight = fake_client.send_payment(payment_request=second.payment_request, max_fee_sats=10, timeout_seconds=60)
    with pytest.raises(PaymentAlreadyExists):
        fake_client.send_payment(payment_request=second.payment_request, max_fee_sats=10, timeout_seconds=60)
    fake_client.resolve_payment(second.payment_hash_hex, succeed=True)

    assert (failed.status, failed.failure_reason) == (PaymentStatus.FAILED, "FAILURE_REASON_TIMEOUT")
    assert retried.status is PaymentStatus.SUCCEEDED
    assert in_flight.status is PaymentStatus.IN_FLIGHT
    assert fake_client.track_payment(payment_hash=bytes.fromhex(second.payment_hash_hex)).status == "SUCCEEDED"
    assert fake_client.track_payment(payment_hash=b"\x09" * 32).status is PaymentStatus.UNKNOWN


def test_zero_amount_invoice_needs_amount(fake_client):
    invoice = fake_client.add_invoice(amount_sats=0)
    with pytest.raises(LightningRejected) as refused:
        fake_client.send_payment(payment_request=invoice.payment_request, max_fee_sats=10, timeout_seconds=60)
    assert refused.value.details == "amount must be specified when paying a zero amount invoice"


def test_unavailable_and_reset(fake_client):
    new_hold_invoice(fake_client)
    fake_client.set_unavailable()
    with pytest.raises(LightningUnavailable):
        fake_client.get_info()
    fake_client.reset()
    assert fake_client.get_info().block_height == 800
    assert (fake_client.invoices, fake_client.calls[-1][0]) == ({}, "get_info")


@pytest.mark.django_db(transaction=True)
def test_refuses_a_call_inside_a_transaction(fake_client):
    with transaction.atomic(), pytest.raises(AssertionError) as inside:
        fake_client.get_info()
    assert "inside a transaction" in str(inside.value)
    assert fake_client.get_info().alias == "fake-lnd"  # after commit: fine


@pytest.mark.django_db(transaction=True)
def test_the_guard_follows_its_setting_when_it_changes(fake_client, settings):
    settings.LIGHTNING_ASSERT_NO_TRANSACTION = False
    with transaction.atomic():
        assert fake_client.get_info().alias == "fake-lnd"  # switched off
    settings.LIGHTNING_ASSERT_NO_TRANSACTION = True
    with transaction.atomic(), pytest.raises(AssertionError):
        fake_client.get_info()


@pytest.mark.django_db
def test_test_case_transaction_is_not_counted(fake_client):
    assert fake_client.get_info().alias == "fake-lnd"
