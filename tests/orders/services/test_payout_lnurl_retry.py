"""A Lightning-address payout is retried (a fresh invoice, a new hash) only once LND reported
the earlier attempt failed, or once the earlier invoice expired (issue 13, part 5): a late first
send could otherwise pay the buyer twice. A BOLT11 payout keeps retrying the same hash."""

import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from lightning.bolt11 import decode_invoice
from nostrbridge.protocol.enums import Action
from orders.models import Order
from orders.services.payout_sweeps import UNKNOWN_EXPIRY_SECONDS, payout_reconcile
from tests.orders.services.support import mint_invoice
from tests.orders.trade_states import active_sell_trade

pytestmark = pytest.mark.django_db

EXPIRY = 3600
LATER = timedelta(seconds=61)  # past the reconcile grace


@pytest.fixture
def in_flight_to_an_address(node, fake_ln, lnurl_server, django_capture_on_commit_callbacks):
    lnurl_server.pay_request("bob")
    lnurl_server.set_json("/lnurlp/bob/callback", {"pr": mint_invoice(amount_sats=7827, expiry_seconds=EXPIRY)})
    trade = active_sell_trade(fake_ln, buyer_invoice=lnurl_server.address("bob"))
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    fake_ln.leave_next_payment_in_flight()
    with django_capture_on_commit_callbacks(execute=True):
        trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)
    order = trade.refresh()
    assert order.payout_payment_hash is not None
    return trade


@pytest.fixture
def host_in_tokyo():
    """The process's local time zone is not UTC (the node's database times are UTC)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def _sent_invoice(fake_ln):
    [request] = [args["payment_request"] for name, args in fake_ln.calls if name == "send_payment"]
    return decode_invoice(request)


def _unknown_to_lnd(fake_ln, order) -> None:
    del fake_ln.payments[order.payout_payment_hash]


def _callbacks(lnurl_server) -> int:
    return len([r for r in lnurl_server.requests if "callback" in r])


def test_unknown_to_lnd_before_the_invoice_expires_keeps_the_claim(in_flight_to_an_address, fake_ln, lnurl_server):
    trade = in_flight_to_an_address
    order = trade.refresh()
    claim = order.payout_payment_hash
    del fake_ln.payments[claim]  # LND has no record of the send (yet)
    fetched = _callbacks(lnurl_server)

    assert payout_reconcile(order_id=order.id, now=timezone.now() + LATER) == "pending"

    order = trade.refresh()
    assert (order.payout_payment_hash, order.payment_attempts, order.failed_payment) == (claim, 0, False)
    assert _callbacks(lnurl_server) == fetched  # no new invoice asked for


def test_unknown_to_lnd_after_the_invoice_expired_is_a_failure_and_may_retry(
    in_flight_to_an_address, fake_ln, lnurl_server
):
    trade = in_flight_to_an_address
    order = trade.refresh()
    del fake_ln.payments[order.payout_payment_hash]
    expired = order.payout_invoice_expires_at + timedelta(seconds=1)
    assert order.payout_invoice_expires_at <= order.payout_claimed_at + timedelta(seconds=EXPIRY)

    assert payout_reconcile(order_id=order.id, now=expired) == "failed"

    order = trade.refresh()
    assert (order.payout_payment_hash, order.payment_attempts, order.failed_payment) == (None, 1, True)


def test_lnd_reporting_the_attempt_failed_allows_the_retry_at_once(in_flight_to_an_address, fake_ln):
    trade = in_flight_to_an_address
    order = trade.refresh()
    fake_ln.resolve_payment(order.payout_payment_hash, succeed=False)

    assert payout_reconcile(order_id=order.id, now=timezone.now() + LATER) == "failed"
    order = trade.refresh()
    assert (order.payout_payment_hash, order.payout_claimed_at, order.payout_invoice_expires_at) == (None, None, None)


def test_claim_stores_the_claimed_invoices_expiry_in_utc(host_in_tokyo, in_flight_to_an_address, fake_ln):
    invoice = _sent_invoice(fake_ln)
    order = in_flight_to_an_address.refresh()

    assert order.payout_payment_hash == invoice.payment_hash_hex
    assert order.payout_invoice_expires_at == datetime.fromtimestamp(invoice.timestamp + EXPIRY, tz=UTC)


def test_unknown_to_lnd_is_a_failure_from_the_exact_expiry(in_flight_to_an_address, fake_ln):
    trade = in_flight_to_an_address
    order = trade.refresh()
    _unknown_to_lnd(fake_ln, order)
    expires_at = order.payout_invoice_expires_at

    assert payout_reconcile(order_id=order.id, now=expires_at - timedelta(microseconds=1)) == "pending"
    assert payout_reconcile(order_id=order.id, now=expires_at) == "failed"


def test_claim_without_a_stored_expiry_waits_a_day(in_flight_to_an_address, fake_ln):
    # A claim made before the expiry was stored (an imported row): the longest invoice a wallet
    # would issue, 24 h from the claim.
    trade = in_flight_to_an_address
    order = trade.refresh()
    _unknown_to_lnd(fake_ln, order)
    Order.objects.filter(pk=order.id).update(payout_invoice_expires_at=None)
    day_after = order.payout_claimed_at + timedelta(hours=24)

    assert UNKNOWN_EXPIRY_SECONDS == 86400
    assert payout_reconcile(order_id=order.id, now=day_after - timedelta(microseconds=1)) == "pending"
    assert payout_reconcile(order_id=order.id, now=day_after) == "failed"


def test_reconcile_without_a_clock_reads_the_current_time(in_flight_to_an_address, fake_ln):
    trade = in_flight_to_an_address
    order = trade.refresh()
    _unknown_to_lnd(fake_ln, order)
    Order.objects.filter(pk=order.id).update(payout_claimed_at=timezone.now() - LATER)

    assert payout_reconcile(order_id=order.id) == "pending"  # past the grace, the invoice still valid
    assert trade.refresh().payout_payment_hash == order.payout_payment_hash
