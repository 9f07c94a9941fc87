"""Slow LND on simnet (`delay`): calls answer late, beyond the client's deadline they hang until
it, before or after taking effect; other methods and nodes answer as usual."""

import pytest

from lightning.errors import LightningUnavailable
from lightning.types import InvoiceState
from tests.lightning.helpers import new_hold_invoice, pay_in_background, wait_for_state

SLOW_S = 3.0
DEADLINE_S = 0.5


@pytest.fixture
def slow(simnet):
    yield simnet.control
    simnet.control.delay("mostro", 0)


def test_a_settle_past_the_deadline_takes_effect_but_its_answer_is_lost(nodes, simnet, slow):
    mostro, alice, _ = nodes
    hurried = simnet.client("mostro", call_timeout_seconds=DEADLINE_S)
    preimage, hold = new_hold_invoice(mostro, 2_000)
    payment = pay_in_background(alice, hold.payment_request)
    wait_for_state(mostro, hold.payment_hash_hex, InvoiceState.ACCEPTED)
    slow.delay("mostro", SLOW_S, methods=["SettleInvoice"], after_effect=True)

    with pytest.raises(LightningUnavailable):
        hurried.settle_invoice(preimage=preimage)

    # "Unknown, ask the node": the node did settle; the payer's payment succeeded.
    assert hurried.lookup_invoice(payment_hash=bytes.fromhex(hold.payment_hash_hex)).state is InvoiceState.SETTLED
    assert payment.result(timeout=5).status.value == "SUCCEEDED"
    assert slow.state()["nodes"]["mostro"]["call_delay_s"] == SLOW_S


def test_a_call_abandoned_before_it_took_effect_changes_nothing(nodes, simnet, slow):
    mostro, _, _ = nodes
    hurried = simnet.client("mostro", call_timeout_seconds=DEADLINE_S)
    _, hold = new_hold_invoice(mostro, 2_000)
    slow.delay("mostro", SLOW_S, methods=["CancelInvoice"])

    with pytest.raises(LightningUnavailable):
        hurried.cancel_invoice(payment_hash=bytes.fromhex(hold.payment_hash_hex))

    slow.delay("mostro", 0)
    # The server dropped the call with the client: past the delay the invoice is still open.
    wait_for_state(mostro, hold.payment_hash_hex, InvoiceState.CANCELED, timeout=SLOW_S + 0.5)
    assert mostro.lookup_invoice(payment_hash=bytes.fromhex(hold.payment_hash_hex)).state is InvoiceState.OPEN


def test_other_methods_and_nodes_answer_at_once(nodes, simnet, slow):
    _, alice, _ = nodes
    hurried = simnet.client("mostro", call_timeout_seconds=DEADLINE_S)
    slow.delay("mostro", SLOW_S, methods=["SettleInvoice"])
    assert hurried.get_info().block_height == slow.state()["height"]
    assert alice.get_info().block_height == slow.state()["height"]
    slow.delay("mostro", SLOW_S)  # every unary call now
    with pytest.raises(LightningUnavailable):
        hurried.get_info()
    assert alice.get_info().block_height == slow.state()["height"]
