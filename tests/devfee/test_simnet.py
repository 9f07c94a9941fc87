"""The dev fee paid by the real LndClient over the simulated network, after a whole trade run
there: the fund's LNURL service hands out invoices of bob's node; a failed first payment is
retried with a fresh invoice."""

from datetime import timedelta

import pytest
from django.utils import timezone

from devfee import services
from devfee.models import DevFeePayment
from lightning import get_lightning_client
from lightning.types import InvoiceState, PaymentStatus
from mostro_site.config import clear_node_config_cache
from nostrbridge.event_settings import clear_network_cache, lnd_network_fetch
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.nip01 import Event
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.jobs import pay_pending_dev_fees
from orders.models import Order
from orders.services.escrow import escrow_on_accepted
from tests.devfee.lnurl_server import DevFundServer
from tests.lightning.helpers import pay_in_background, wait_for_state
from tests.lightning.simnet_fixture import simnet  # noqa: F401 - session fixture
from tests.orders.services.support import make_order, set_price
from tests.orders.trade_states import vector_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def simnet_fund(node, settings, simnet):  # noqa: F811
    bob = simnet.client("bob")
    with DevFundServer(lambda sats: bob.add_invoice(amount_sats=sats, memo="dev fund").payment_request) as server:
        for name, value in simnet.lnd_settings("mostro").items():
            setattr(settings, name, value)
        settings.MOSTRO_DEV_FEE_LIGHTNING_ADDRESS = server.address
        clear_node_config_cache()
        clear_network_cache()
        lnd_network_fetch()  # the process start, against the simulated LND
        yield server
    clear_network_cache()
    clear_node_config_cache()


def _successful_trade(simnet, capture) -> Order:  # noqa: F811
    """The whole trade on simnet: alice's node locks the escrow, bob's node receives the payout."""
    mostro, alice_node, bob_node = get_lightning_client(), simnet.client("alice"), simnet.client("bob")
    seller, buyer = vector_client("alice"), vector_client("bob")
    set_price()
    order = make_order(seller, index=1, kind="sell")
    invoice = bob_node.add_invoice(amount_sats=0, memo="payout").payment_request
    buyer.send(Action.TAKE_SELL, index=1, order_id=order.id, payload=PaymentRequestPayload(None, invoice, None))
    order.refresh_from_db()
    escrow = pay_in_background(alice_node, order.hold_invoice_payment_request, timeout_seconds=60)
    wait_for_state(mostro, order.hold_invoice_hash, InvoiceState.ACCEPTED)
    escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash)
    buyer.send(Action.FIAT_SENT, index=1, order_id=order.id)
    with capture(execute=True):
        seller.send(Action.RELEASE, index=1, order_id=order.id)
    assert escrow.result(timeout=10).status is PaymentStatus.SUCCEEDED
    order.refresh_from_db()
    assert (order.status, order.dev_fee_sats) == ("success", 14)
    return order


def test_dev_fee_reaches_the_fund_node_once(simnet_fund, simnet, django_capture_on_commit_callbacks):  # noqa: F811
    order = _successful_trade(simnet, django_capture_on_commit_callbacks)
    before = simnet.control.balance_msat("bob")
    now = timezone.now()
    simnet.control.fail_next_payment("mostro")

    first = pay_pending_dev_fees(now=now)
    second = pay_pending_dev_fees(now=now + timedelta(seconds=services.RETRY_FAILED_SECONDS))
    third = pay_pending_dev_fees(now=now + timedelta(seconds=services.RETRY_FAILED_SECONDS * 2))

    assert (first["failed"], second["paid"], third["paid"]) == (1, 1, 0)
    row = DevFeePayment.objects.get(order=order)
    assert (row.status, row.attempts, row.last_error) == ("paid", 2, "")
    assert simnet.control.balance_msat("bob") - before == 14_000
    assert len(simnet_fund.invoices) == 2
    event = Event.from_json(OutboundMessage.objects.get(kind=8383).event_json)
    assert (event.tag_value("hash"), event.tag_value("network")) == (row.payment_hash, "regtest")
    outcome = get_lightning_client().track_payment(payment_hash=bytes.fromhex(row.payment_hash))
    assert (outcome.status, outcome.amount_sats) == (PaymentStatus.SUCCEEDED, 14)
