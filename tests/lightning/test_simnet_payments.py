"""Buyer payouts (SendPaymentV2 / TrackPaymentV2) through the real LndClient."""

import time

import pytest

from lightning.bolt11_encode import InvoiceTerms, encode_invoice
from lightning.errors import LightningRejected, LightningUnavailable, PaymentAlreadyExists
from lightning.fees import routing_fee_cap_sats
from lightning.simnet.credentials import node_key
from lightning.types import PaymentStatus
from tests.lightning.helpers import pay_in_background


def _pay(client, payment_request, **kwargs):
    kwargs.setdefault("max_fee_sats", 100)
    kwargs.setdefault("timeout_seconds", 30)
    return client.send_payment(payment_request=payment_request, **kwargs)


def test_payout_succeeds_with_the_payee_preimage(nodes, simnet):
    mostro, _, bob = nodes
    bob_before = simnet.control.balance_msat("bob")
    invoice = bob.add_invoice(amount_sats=5_000, memo="payout", expiry_seconds=7_200)

    outcome = _pay(mostro, invoice.payment_request, max_fee_sats=routing_fee_cap_sats(5_000, max_routing_fee=0.002))

    assert outcome.status is PaymentStatus.SUCCEEDED
    assert (outcome.payment_hash_hex, outcome.amount_sats, outcome.fee_sats) == (invoice.payment_hash_hex, 5_000, 6)
    assert len(outcome.preimage_hex) == 64
    assert simnet.control.balance_msat("bob") - bob_before == 5_000_000
    assert mostro.track_payment(payment_hash=bytes.fromhex(invoice.payment_hash_hex)) == outcome


def test_amountless_invoice_needs_an_amount(nodes):
    mostro, _, bob = nodes
    invoice = bob.add_invoice(amount_sats=0, memo="any amount")
    with pytest.raises(LightningRejected) as refused:
        _pay(mostro, invoice.payment_request)
    outcome = _pay(mostro, invoice.payment_request, amount_sats=2_500)
    assert refused.value.details == "amount must be specified when paying a zero amount invoice"
    assert (outcome.status, outcome.amount_sats) == (PaymentStatus.SUCCEEDED, 2_500)


def test_paying_twice_is_refused_as_already_paid(nodes):
    mostro, _, bob = nodes
    invoice = bob.add_invoice(amount_sats=1_000)
    _pay(mostro, invoice.payment_request)
    with pytest.raises(PaymentAlreadyExists) as again:
        _pay(mostro, invoice.payment_request)
    assert (again.value.code, again.value.details) == ("ALREADY_EXISTS", "invoice is already paid")


def test_paid_invoice_paid_by_another_node_fails_with_incorrect_details(nodes):
    mostro, alice, bob = nodes
    invoice = bob.add_invoice(amount_sats=1_000)
    _pay(mostro, invoice.payment_request)
    outcome = _pay(alice, invoice.payment_request)
    assert (outcome.status, outcome.failure_reason) == (
        PaymentStatus.FAILED,
        "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS",
    )


def test_fee_limit_below_route_fee_is_no_route(nodes):
    mostro, _, bob = nodes
    invoice = bob.add_invoice(amount_sats=100_000)  # route fee 1 + 100 sats
    outcome = _pay(mostro, invoice.payment_request, max_fee_sats=100)
    assert (outcome.status, outcome.failure_reason, outcome.fee_sats) == (
        PaymentStatus.FAILED,
        "FAILURE_REASON_NO_ROUTE",
        0,
    )


def test_insufficient_balance(nodes, simnet):
    mostro, _, bob = nodes
    invoice = bob.add_invoice(amount_sats=50_000_000)
    outcome = _pay(mostro, invoice.payment_request, max_fee_sats=100_000)
    assert (outcome.status, outcome.failure_reason) == (PaymentStatus.FAILED, "FAILURE_REASON_INSUFFICIENT_BALANCE")


@pytest.mark.parametrize(
    "reason",
    [
        "FAILURE_REASON_TIMEOUT",
        "FAILURE_REASON_NO_ROUTE",
        "FAILURE_REASON_ERROR",
        "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS",
        "FAILURE_REASON_INSUFFICIENT_BALANCE",
        "FAILURE_REASON_CANCELED",
    ],
)
def test_injected_failure_reason_then_retry_succeeds(nodes, simnet, reason):
    mostro, _, bob = nodes
    invoice = bob.add_invoice(amount_sats=2_000)
    simnet.control.fail_next_payment("mostro", reason)

    failed = _pay(mostro, invoice.payment_request)
    retried = _pay(mostro, invoice.payment_request)  # LND allows a new attempt after FAILED

    assert (failed.status, failed.failure_reason) == (PaymentStatus.FAILED, reason)
    assert retried.status is PaymentStatus.SUCCEEDED


def test_payee_offline_is_no_route(nodes, simnet):
    mostro, _, bob = nodes
    invoice = bob.add_invoice(amount_sats=1_000)
    simnet.control.set_online("bob", False)
    outcome = _pay(mostro, invoice.payment_request)
    assert (outcome.status, outcome.failure_reason) == (PaymentStatus.FAILED, "FAILURE_REASON_NO_ROUTE")


def test_stuck_payment_times_out_as_in_flight_then_track_payment_resolves_it(nodes, simnet, monkeypatch):
    mostro, _, bob = nodes
    invoice = bob.add_invoice(amount_sats=3_000)
    payment_hash = bytes.fromhex(invoice.payment_hash_hex)
    simnet.control.stick_next_payment("mostro")
    monkeypatch.setattr("lightning.lnd.PAYMENT_DEADLINE_MARGIN_SECONDS", 0.5)  # the client gives up after 0.5 s

    stuck = mostro.send_payment(payment_request=invoice.payment_request, max_fee_sats=50, timeout_seconds=0)
    # never "failed" on a client timeout; a retry is refused while it is in flight
    with pytest.raises(PaymentAlreadyExists) as retry:
        _pay(mostro, invoice.payment_request)
    still = mostro.track_payment(payment_hash=payment_hash)
    simnet.control.resolve_payment("mostro", invoice.payment_hash_hex, outcome="deliver")
    final = mostro.track_payment(payment_hash=payment_hash, wait_seconds=5)

    assert stuck.status is PaymentStatus.IN_FLIGHT
    assert retry.value.details == "payment is in transition"
    assert still.status is PaymentStatus.IN_FLIGHT
    assert final.status is PaymentStatus.SUCCEEDED
    assert len(final.preimage_hex) == 64


def test_stuck_payment_resolved_as_failed(nodes, simnet):
    mostro, _, bob = nodes
    invoice = bob.add_invoice(amount_sats=3_000)
    simnet.control.stick_next_payment("mostro")
    payment = pay_in_background(mostro, invoice.payment_request)
    time.sleep(0.2)
    simnet.control.resolve_payment("mostro", invoice.payment_hash_hex, outcome="fail", reason="FAILURE_REASON_TIMEOUT")
    outcome = payment.result(timeout=5)
    assert (outcome.status, outcome.failure_reason) == (PaymentStatus.FAILED, "FAILURE_REASON_TIMEOUT")


def test_track_payment_of_unknown_hash_is_unknown(nodes):
    mostro, _, _ = nodes
    outcome = mostro.track_payment(payment_hash=b"\x07" * 32)
    assert outcome.status is PaymentStatus.UNKNOWN
    assert outcome.payment_hash_hex == "07" * 32


def _foreign_invoice(*, currency="bcrt", expiry=3600, timestamp=None, payee="bob", amount_msat=1_000_000):
    terms = InvoiceTerms(
        payment_hash=b"\x11" * 32,
        payment_secret=b"\x22" * 32,
        amount_msat=amount_msat,
        description="crafted",
        expiry_seconds=expiry,
        min_final_cltv_expiry=40,
        currency=currency,
        timestamp=timestamp or int(time.time()),
    )
    return encode_invoice(terms, node_key(payee))


def test_wrong_network_and_expired_invoices_are_refused_before_paying(nodes):
    mostro, _, _ = nodes
    with pytest.raises(LightningRejected) as wrong_network:
        _pay(mostro, _foreign_invoice(currency="bc"))
    with pytest.raises(LightningRejected) as expired:
        _pay(mostro, _foreign_invoice(expiry=60, timestamp=int(time.time()) - 3600))
    assert wrong_network.value.details == "invoice not for current active network 'regtest'"
    assert expired.value.details.startswith("invoice expired. Valid until ")


def test_unknown_invoice_of_a_known_node_fails_with_incorrect_details(nodes):
    mostro, _, _ = nodes
    outcome = _pay(mostro, _foreign_invoice())
    assert (outcome.status, outcome.failure_reason) == (
        PaymentStatus.FAILED,
        "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS",
    )


def test_decode_pay_req(nodes, simnet):
    mostro, _, bob = nodes
    invoice = bob.add_invoice(amount_sats=4_321, memo="decode me", expiry_seconds=900, cltv_expiry=40)
    decoded = mostro.decode_pay_req(payment_request=invoice.payment_request)
    assert (decoded.payment_hash_hex, decoded.amount_sats, decoded.description) == (
        invoice.payment_hash_hex,
        4_321,
        "decode me",
    )
    assert (decoded.expiry_seconds, decoded.min_final_cltv_expiry, decoded.network) == (900, 40, "regtest")
    assert decoded.payee_pubkey_hex == simnet.node("bob")["pubkey"]


def test_offline_node_is_unavailable(nodes, simnet):
    mostro, _, bob = nodes
    invoice = bob.add_invoice(amount_sats=1_000)
    simnet.control.set_online("mostro", False)
    with pytest.raises(LightningUnavailable) as info:
        mostro.get_info()
    with pytest.raises(LightningUnavailable):
        _pay(mostro, invoice.payment_request)  # nothing was sent: an error, not an outcome
    assert info.value.code == "UNAVAILABLE"
    assert "offline" in info.value.details
