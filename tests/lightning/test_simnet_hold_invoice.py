"""Hold-invoice lifecycle through the real LndClient against the simulated network."""

import hashlib
from types import SimpleNamespace

import grpc
import pytest

from lightning.bolt11 import decode_invoice
from lightning.errors import AlreadySettledOrCanceled, InvoiceNotFound, InvoiceStillOpen, LightningRejected
from lightning.lnd import LndClient
from lightning.types import InvoiceState, PaymentStatus
from tests.lightning.helpers import new_hold_invoice, pay_in_background, wait_for_state

FEE_SATS_10K = 11  # 1000 msat base + 1000 ppm of 10,000,000 msat


def test_created_hold_invoice_is_open_and_signed_by_the_node(nodes, simnet):
    mostro, _, _ = nodes
    preimage, hold = new_hold_invoice(mostro, 12_345, memo="Escrow amount Order #1", cltv_expiry=144)

    decoded = decode_invoice(hold.payment_request)
    update = mostro.lookup_invoice(payment_hash=bytes.fromhex(hold.payment_hash_hex))

    assert hold.payment_hash_hex == hashlib.sha256(preimage).hexdigest()
    assert hold.payment_request.startswith("lnbcrt123450n1")
    assert decoded.payee_pubkey_hex == simnet.node("mostro")["pubkey"]
    assert (decoded.amount_sats, decoded.min_final_cltv_expiry, decoded.expiry_seconds) == (12_345, 144, 86_400)
    assert decoded.description == "Escrow amount Order #1"
    assert (update.state, update.amount_sats, update.amount_paid_sats, update.cltv_expiry) == (
        InvoiceState.OPEN,
        12_345,
        0,
        144,
    )


def test_settle_path_pays_the_payer_preimage_and_moves_balances(nodes, simnet):
    mostro, alice, _ = nodes
    before = simnet.control.state()["nodes"]
    preimage, hold = new_hold_invoice(mostro, 10_000)

    # given: alice pays; the HTLC is held
    payment = pay_in_background(alice, hold.payment_request)
    accepted = wait_for_state(mostro, hold.payment_hash_hex, InvoiceState.ACCEPTED)
    in_flight = alice.track_payment(payment_hash=bytes.fromhex(hold.payment_hash_hex))
    # when: mostro settles
    mostro.settle_invoice(preimage=preimage)
    outcome = payment.result(timeout=5)

    # then
    after = simnet.control.state()["nodes"]
    assert accepted.state is InvoiceState.ACCEPTED
    assert accepted.amount_paid_sats == 10_000
    assert accepted.htlc_expiry_heights == (simnet.control.state()["height"] + 144 + 3,)
    assert in_flight.status is PaymentStatus.IN_FLIGHT
    assert outcome.status is PaymentStatus.SUCCEEDED
    assert outcome.preimage_hex == preimage.hex()
    assert (outcome.amount_sats, outcome.fee_sats) == (10_000, FEE_SATS_10K)
    assert mostro.lookup_invoice(payment_hash=bytes.fromhex(hold.payment_hash_hex)).state is InvoiceState.SETTLED
    assert after["mostro"]["balance_msat"] - before["mostro"]["balance_msat"] == 10_000_000
    assert before["alice"]["balance_msat"] - after["alice"]["balance_msat"] == 10_000_000 + FEE_SATS_10K * 1000


def test_cancel_path_fails_the_payment_and_refunds_the_payer(nodes, simnet):
    mostro, alice, _ = nodes
    before = simnet.control.balance_msat("alice")
    _, hold = new_hold_invoice(mostro, 20_000)
    payment = pay_in_background(alice, hold.payment_request)
    wait_for_state(mostro, hold.payment_hash_hex, InvoiceState.ACCEPTED)

    mostro.cancel_invoice(payment_hash=bytes.fromhex(hold.payment_hash_hex))
    outcome = payment.result(timeout=5)

    assert outcome.status is PaymentStatus.FAILED
    assert outcome.failure_reason == "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS"
    assert outcome.preimage_hex == ""
    assert mostro.lookup_invoice(payment_hash=bytes.fromhex(hold.payment_hash_hex)).state is InvoiceState.CANCELED
    assert simnet.control.balance_msat("alice") == before


def test_cancel_is_idempotent_and_refused_after_settle(nodes):
    mostro, alice, _ = nodes
    _, open_hold = new_hold_invoice(mostro, 1_000)
    payment_hash = bytes.fromhex(open_hold.payment_hash_hex)
    mostro.cancel_invoice(payment_hash=payment_hash)
    mostro.cancel_invoice(payment_hash=payment_hash)  # LND: no error the second time

    preimage, hold = new_hold_invoice(mostro, 1_000)
    payment = pay_in_background(alice, hold.payment_request)
    wait_for_state(mostro, hold.payment_hash_hex, InvoiceState.ACCEPTED)
    mostro.settle_invoice(preimage=preimage)
    payment.result(timeout=5)

    with pytest.raises(AlreadySettledOrCanceled) as cancel_settled:
        mostro.cancel_invoice(payment_hash=bytes.fromhex(hold.payment_hash_hex))
    with pytest.raises(AlreadySettledOrCanceled) as settle_twice:
        mostro.settle_invoice(preimage=preimage)
    assert cancel_settled.value.details == "invoice already settled"
    assert cancel_settled.value.settled is True
    assert settle_twice.value.details == "invoice already settled"


def test_settle_refusals_use_lnd_messages(nodes):
    mostro, _, _ = nodes
    preimage, _ = new_hold_invoice(mostro, 1_000)
    with pytest.raises(InvoiceStillOpen) as still_open:
        mostro.settle_invoice(preimage=preimage)
    with pytest.raises(InvoiceNotFound) as unknown:
        mostro.settle_invoice(preimage=b"\x01" * 32)
    with pytest.raises(InvoiceNotFound):
        mostro.lookup_invoice(payment_hash=b"\x02" * 32)
    canceled_preimage, canceled = new_hold_invoice(mostro, 1_000)
    mostro.cancel_invoice(payment_hash=bytes.fromhex(canceled.payment_hash_hex))
    with pytest.raises(AlreadySettledOrCanceled) as after_cancel:
        mostro.settle_invoice(preimage=canceled_preimage)

    assert (still_open.value.code, still_open.value.details) == ("UNKNOWN", "invoice still open")
    assert unknown.value.details == "unable to locate invoice"
    assert after_cancel.value.details == "invoice already canceled"
    assert after_cancel.value.settled is False


def test_duplicate_hash_is_refused(nodes):
    mostro, _, _ = nodes
    preimage, _ = new_hold_invoice(mostro, 1_000)
    with pytest.raises(LightningRejected) as duplicate:
        mostro.add_hold_invoice(amount_sats=1_000, preimage=preimage, memo="again", cltv_expiry=144)
    assert duplicate.value.details == "invoice with payment hash already exists"


def test_htlc_times_out_and_invoice_is_canceled_when_blocks_are_mined(nodes, simnet):
    mostro, alice, _ = nodes
    _, hold = new_hold_invoice(mostro, 5_000, cltv_expiry=40)
    payment = pay_in_background(alice, hold.payment_request)
    accepted = wait_for_state(mostro, hold.payment_hash_hex, InvoiceState.ACCEPTED)
    expiry_height = accepted.lowest_htlc_expiry_height

    # LND cancels 12 blocks before the HTLC expires (hold-invoice expiry delta)
    simnet.control.mine(expiry_height - 12 - simnet.control.state()["height"] - 1)
    still_held = mostro.lookup_invoice(payment_hash=bytes.fromhex(hold.payment_hash_hex))
    simnet.control.mine(1)
    outcome = payment.result(timeout=5)

    assert still_held.state is InvoiceState.ACCEPTED
    assert mostro.lookup_invoice(payment_hash=bytes.fromhex(hold.payment_hash_hex)).state is InvoiceState.CANCELED
    assert outcome.status is PaymentStatus.FAILED
    assert outcome.failure_reason == "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS"


def test_open_invoice_expires(nodes):
    mostro, _, _ = nodes
    _, hold = new_hold_invoice(mostro, 1_000, expiry_seconds=1)
    update = wait_for_state(mostro, hold.payment_hash_hex, InvoiceState.CANCELED, timeout=4)
    assert update.state is InvoiceState.CANCELED
    assert update.expiry_seconds == 1


def test_get_info_reports_network_and_height(nodes, simnet):
    mostro, _, _ = nodes
    info = mostro.get_info()
    assert (info.alias, info.network, info.chains) == ("mostro", "regtest", ("bitcoin",))
    assert info.pubkey == simnet.node("mostro")["pubkey"]
    assert info.block_height == simnet.control.state()["height"]
    assert info.version.startswith("0.20.0-beta")


def test_state_answers_log_at_info_and_a_refusal_at_warning(nodes, caplog):
    """A second settle (the payout racing the release's) is an answer its caller judges: INFO."""
    mostro, alice, _ = nodes
    preimage, hold = new_hold_invoice(mostro, 1_000)
    payment = pay_in_background(alice, hold.payment_request)
    wait_for_state(mostro, hold.payment_hash_hex, InvoiceState.ACCEPTED)
    mostro.settle_invoice(preimage=preimage)
    payment.result(timeout=5)
    caplog.clear()
    with caplog.at_level("INFO", logger="lightning.lnd"), pytest.raises(AlreadySettledOrCanceled):
        mostro.settle_invoice(preimage=preimage)
    with caplog.at_level("INFO", logger="lightning.lnd"), pytest.raises(InvoiceNotFound):
        mostro.lookup_invoice(payment_hash=b"\x03" * 32)
    failed = [(r.levelname, r.getMessage()) for r in caplog.records if r.getMessage().startswith("LND ")]
    assert failed == [
        ("INFO", "LND SettleInvoice failed: LND SettleInvoice: invoice already settled"),
        ("INFO", "LND LookupInvoice failed: LND LookupInvoice: unable to locate invoice"),
    ]


@pytest.mark.parametrize(
    ("code", "details", "level"),
    [
        (grpc.StatusCode.UNKNOWN, "invoice already settled", "INFO"),
        (grpc.StatusCode.UNKNOWN, "invoice still open", "INFO"),
        (grpc.StatusCode.ALREADY_EXISTS, "invoice is already paid", "INFO"),
        (grpc.StatusCode.UNKNOWN, "invoice expired", "WARNING"),
        (grpc.StatusCode.PERMISSION_DENIED, "verification failed: signature mismatch", "WARNING"),
        (grpc.StatusCode.UNAVAILABLE, "connection refused", "WARNING"),
    ],
)
def test_lnd_error_log_level(code, details, level, caplog):
    class Refused(grpc.RpcError):
        def code(self):
            return code

        def details(self):
            return details

    with caplog.at_level("INFO", logger="lightning.lnd"):
        LndClient._error(SimpleNamespace(_target=None), Refused(), "SettleInvoice")
    assert [r.levelname for r in caplog.records if r.name == "lightning.lnd"] == [level]
