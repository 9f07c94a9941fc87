"""The operator dashboard on a known dataset: exact figures, in selectors and on the page."""

import datetime as dt

import pytest
from django.utils import timezone
from pynostr.bech32 import bech32_decode, convertbits

from devfee.models import DevFeePayment
from disputes.models import Dispute
from mostro_site.operator import dashboard
from mostro_site.operator.nostr_links import encode_nevent
from nostrbridge.models import RelayHealth
from nostrbridge.node_identity import node_pubkey
from tests.foundation.factories import make_order

pytestmark = pytest.mark.django_db
AUDIT_EVENT = "ab" * 32


@pytest.fixture
def dataset():
    now = timezone.now()
    yesterday = now - dt.timedelta(days=1)
    paid = make_order(status="success", amount_sats=10_000, fee_sats=30, fiat_amount=10, taken_at=now)
    make_order(status="success", amount_sats=20_000, fee_sats=60, fiat_amount=20, taken_at=yesterday)
    make_order(status="success", amount_sats=5_000, fee_sats=15, fiat_code="EUR", fiat_amount=4, taken_at=now)
    make_order(status="pending")
    make_order(status="pending")
    make_order(status="canceled", fee_sats=99)
    disputed = make_order(status="dispute")
    settled = make_order(status="settled-hold-invoice")
    open_dispute = Dispute.objects.create(
        order=disputed, initiator="buyer", initiator_pubkey="c" * 64, order_previous_status="active"
    )
    Dispute.objects.filter(pk=open_dispute.pk).update(created_at=now - dt.timedelta(hours=2, minutes=5))
    Dispute.objects.create(
        order=settled, status="settled", initiator="seller", initiator_pubkey="d" * 64, order_previous_status="active"
    )
    DevFeePayment.objects.create(
        order=paid, amount_sats=18, status="paid", destination="dev@example.com", payment_hash="ef" * 32,
        paid_at=now, audit_event_id=AUDIT_EVENT,
    )  # fmt: skip
    DevFeePayment.objects.create(order=settled, amount_sats=7, status="in-flight", destination="dev@example.com")
    RelayHealth.objects.create(relay_url="wss://relay.one", connected=True, events_received=12, ok_count=5)
    RelayHealth.objects.create(relay_url="wss://relay.two", connected=False, last_error="connection refused")
    return now


def test_selectors_give_exact_figures(dataset):
    assert dashboard.orders_by_status() == [
        ("pending", 2),
        ("dispute", 1),
        ("settled-hold-invoice", 1),
        ("success", 3),
        ("canceled", 1),
    ]
    assert dashboard.fees_earned_sats() == 2 * (30 + 60 + 15)
    assert [(c.fiat_code, c.orders, c.fiat_amount, c.sats) for c in dashboard.volume_by_currency()] == [
        ("USD", 2, 30, 30_000),
        ("EUR", 1, 4, 5_000),
    ]
    today = dataset.date()
    days = dashboard.volume_by_day(days=3, today=today)
    assert [(d.day, d.orders, d.sats) for d in days] == [
        (today - dt.timedelta(days=2), 0, 0),
        (today - dt.timedelta(days=1), 1, 20_000),
        (today, 2, 15_000),
    ]
    count, sats, recent = dashboard.dev_fees_paid()
    assert (count, sats, [p.audit_event_id for p in recent]) == (1, 18, [AUDIT_EVENT])
    [item] = dashboard.open_disputes(now=dataset)
    assert (item.dispute.status, item.age // dt.timedelta(minutes=1)) == ("initiated", 125)


def test_page_shows_figures_links_relays_and_lightning(operator_client, dataset):
    page = operator_client.get("/operator/").content.decode()
    assert '<strong id="fig-orders">8</strong>' in page
    assert '<strong id="fig-fees">210 sats</strong>' in page
    assert '<strong id="fig-devfee">18 sats</strong>' in page
    assert '<strong id="fig-disputes">1</strong>' in page
    nevent = encode_nevent(AUDIT_EVENT, author_hex=node_pubkey(), kind=8383)
    assert f'href="nostr:{nevent}"' in page
    assert AUDIT_EVENT in page
    assert "wss://relay.one" in page
    assert "connection refused" in page
    assert "<td>2 h 5 min</td>" in page  # the open dispute's waiting time
    assert "<svg" in page
    assert "<script" not in page.split("</header>", 1)[1]
    assert "<th>Alias</th><td>fake-lnd</td><th>Network</th><td>regtest</td>" in page
    assert "not reported" in page  # the fake has no channel balance; LndClient reports LND's


def test_lightning_unavailable_is_shown_not_raised(operator_client, settings):
    from lightning import get_lightning_client

    client = get_lightning_client()
    client.set_unavailable(True)
    try:
        page = operator_client.get("/operator/").content.decode()
    finally:
        client.set_unavailable(False)
    assert "Unavailable:" in page


def test_nevent_encodes_id_author_and_kind():
    nevent = encode_nevent(AUDIT_EVENT, author_hex="12" * 32, kind=8383)
    hrp, data, _ = bech32_decode(nevent)
    raw = bytes(convertbits(data, 5, 8, False))
    assert hrp == "nevent"
    assert raw == bytes([0, 32]) + bytes.fromhex(AUDIT_EVENT) + bytes([2, 32]) + bytes.fromhex("12" * 32) + bytes(
        [3, 4]
    ) + (8383).to_bytes(4, "big")
