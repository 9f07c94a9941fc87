"""The escrow guardian with the real LndClient against the simulated Lightning network.

alice's node pays the hold invoice of a real take; blocks are mined until the tip is within
the 24-block margin of the HTLC's expiry, and the guardian cancels it: alice is refunded.
"""

from datetime import timedelta

import pytest

from disputes.jobs import enforce_escrow_deadline
from lightning import get_lightning_client
from lightning.types import InvoiceState, PaymentStatus
from nostrbridge.event_settings import clear_network_cache, lnd_network_fetch
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.services.escrow import escrow_on_accepted
from tests.lightning.helpers import pay_in_background, wait_for_state
from tests.lightning.simnet_fixture import simnet  # noqa: F401 - session fixture
from tests.orders.services.support import make_order, mint_invoice, set_price
from tests.orders.trade_states import vector_client

pytestmark = pytest.mark.django_db

MARGIN = 24


@pytest.fixture
def mostro_on_simnet(node, settings, simnet):  # noqa: F811
    for name, value in simnet.lnd_settings("mostro").items():
        setattr(settings, name, value)  # setting_changed drops the cached fake client
    clear_network_cache()
    lnd_network_fetch()  # the process start, against the simulated LND
    yield get_lightning_client()
    clear_network_cache()


def test_guardian_cancels_a_real_escrow_before_its_htlc_expires(mostro_on_simnet, simnet):  # noqa: F811
    mostro = mostro_on_simnet
    alice_node = simnet.client("alice")
    balance_before = simnet.control.balance_msat("alice")
    # given: a sell order taken with an invoice; alice pays the escrow from her node
    seller, buyer = vector_client("alice"), vector_client("bob")
    set_price()
    order = make_order(seller, index=1, kind="sell")
    payload = PaymentRequestPayload(None, mint_invoice(amount_sats=0), None)
    buyer.send(Action.TAKE_SELL, index=1, order_id=order.id, payload=payload, request_id=3)
    order.refresh_from_db()
    payment = pay_in_background(alice_node, order.hold_invoice_payment_request, timeout_seconds=60)
    accepted = wait_for_state(mostro, order.hold_invoice_hash, InvoiceState.ACCEPTED)
    assert escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash)
    order.refresh_from_db()
    assert order.status == "active"
    expiry = accepted.lowest_htlc_expiry_height
    now = order.invoice_held_at + timedelta(hours=10, seconds=1)

    # when: one block short of the margin, then at it
    simnet.control.mine(expiry - MARGIN - simnet.control.state()["height"] - 1)
    first = enforce_escrow_deadline(now=now)
    simnet.control.mine(1)
    second = enforce_escrow_deadline(now=now)

    # then
    assert first == {"candidates": 1, "safe": 1, "canceled": 0, "disputed": 0, "skipped": 0}
    assert second == {"candidates": 1, "safe": 0, "canceled": 1, "disputed": 0, "skipped": 0}
    order.refresh_from_db()
    assert order.status == "canceled"
    assert mostro.lookup_invoice(payment_hash=bytes.fromhex(order.hold_invoice_hash)).state is InvoiceState.CANCELED
    assert payment.result(timeout=10).status is PaymentStatus.FAILED
    assert simnet.control.balance_msat("alice") == balance_before
    assert [r.action for r in seller.replies()][-1] == "canceled"
    assert [r.action for r in buyer.replies()][-1] == "canceled"
