import pytest
from django.db import IntegrityError, transaction

from devfee.models import DevFeePayment
from disputes.models import Dispute
from mostro_site.models import NodeSettings
from nostrbridge.models import AddressableClock, InboundEvent, OutboundDelivery, OutboundMessage
from orders.models import Order, Trader
from tests.foundation.factories import make_order

pytestmark = pytest.mark.django_db


def _refused(**kwargs) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        make_order(**kwargs)


@pytest.mark.parametrize(
    "field", ["amount_sats", "fee_sats", "dev_fee_sats", "routing_fee_sats", "fiat_amount", "min_fiat_amount"]
)
def test_negative_amount_refused(field):
    _refused(**{field: -1})
    assert Order.objects.count() == 0


def test_status_outside_vocabulary_refused():
    _refused(status="Pending")
    assert Order.objects.count() == 0


def test_kind_outside_vocabulary_refused():
    _refused(kind="swap")
    assert Order.objects.count() == 0


def test_duplicate_hold_invoice_hash_refused():
    make_order(hold_invoice_hash="f" * 64)
    _refused(hold_invoice_hash="f" * 64)
    assert Order.objects.filter(hold_invoice_hash="f" * 64).count() == 1


def test_duplicate_payout_hash_refused():
    make_order(payout_payment_hash="e" * 64)
    _refused(payout_payment_hash="e" * 64)
    assert Order.objects.count() == 1


def test_duplicate_inbound_event_id_refused():
    InboundEvent.objects.create(event_id="1" * 64, kind=14, pubkey="a" * 64, event_created_at=1, raw="{}")
    with pytest.raises(IntegrityError), transaction.atomic():
        InboundEvent.objects.create(event_id="1" * 64, kind=14, pubkey="c" * 64, event_created_at=2, raw="{}")
    assert InboundEvent.objects.get().pubkey == "a" * 64


def test_duplicate_outbound_event_id_refused():
    OutboundMessage.objects.create(event_id="2" * 64, kind=14, event_json="{}")
    with pytest.raises(IntegrityError), transaction.atomic():
        OutboundMessage.objects.create(event_id="2" * 64, kind=38383, event_json="{}")
    assert OutboundMessage.objects.get().kind == 14


def test_one_delivery_row_per_relay():
    message = OutboundMessage.objects.create(event_id="3" * 64, kind=14, event_json="{}")
    OutboundDelivery.objects.create(message=message, relay_url="ws://r1")
    with pytest.raises(IntegrityError), transaction.atomic():
        OutboundDelivery.objects.create(message=message, relay_url="ws://r1")
    assert message.deliveries.count() == 1


def test_second_dev_fee_row_for_an_order_refused():
    order = make_order()
    DevFeePayment.objects.create(order=order, amount_sats=30, destination="dev@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        DevFeePayment.objects.create(order=order, amount_sats=30, destination="dev@example.com")
    assert DevFeePayment.objects.filter(order=order).count() == 1


def test_dev_fee_payment_hash_unique_across_orders():
    DevFeePayment.objects.create(order=make_order(), amount_sats=30, destination="d", payment_hash="9" * 64)
    with pytest.raises(IntegrityError), transaction.atomic():
        DevFeePayment.objects.create(order=make_order(), amount_sats=30, destination="d", payment_hash="9" * 64)
    assert DevFeePayment.objects.count() == 1


def test_negative_dev_fee_refused():
    with pytest.raises(IntegrityError), transaction.atomic():
        DevFeePayment.objects.create(order=make_order(), amount_sats=-5, destination="d")
    assert DevFeePayment.objects.count() == 0


def test_second_dispute_for_an_order_refused():
    order = make_order(status="active")
    Dispute.objects.create(order=order, initiator="buyer", initiator_pubkey="a" * 64, order_previous_status="active")
    with pytest.raises(IntegrityError), transaction.atomic():
        Dispute.objects.create(
            order=order, initiator="seller", initiator_pubkey="b" * 64, order_previous_status="active"
        )
    assert Dispute.objects.get().initiator == "buyer"


def test_dispute_status_outside_vocabulary_refused():
    with pytest.raises(IntegrityError), transaction.atomic():
        Dispute.objects.create(
            order=make_order(), status="closed", initiator="buyer", initiator_pubkey="a", order_previous_status="x"
        )
    assert Dispute.objects.count() == 0


def test_trader_rating_above_five_refused():
    with pytest.raises(IntegrityError), transaction.atomic():
        Trader.objects.create(pubkey="d" * 64, total_rating=5.5)
    assert Trader.objects.count() == 0


def test_node_settings_is_a_single_row():
    NodeSettings.objects.create(id=1, fee=0.006)
    with pytest.raises(IntegrityError), transaction.atomic():
        NodeSettings.objects.create(id=2, fee=0.001)
    assert list(NodeSettings.objects.values_list("id", "fee")) == [(1, 0.006)]


def test_node_settings_dev_fee_range_enforced():
    with pytest.raises(IntegrityError), transaction.atomic():
        NodeSettings.objects.create(id=1, dev_fee_percentage=0.05)
    assert NodeSettings.objects.count() == 0


def test_addressable_clock_unique_per_kind_and_d():
    AddressableClock.objects.create(kind=38383, d_tag="x", last_created_at=10)
    with pytest.raises(IntegrityError), transaction.atomic():
        AddressableClock.objects.create(kind=38383, d_tag="x", last_created_at=11)
    assert AddressableClock.objects.get().last_created_at == 10
