"""A Lightning-address payout is retried (a fresh invoice, a new hash) only once LND reported
the earlier attempt failed, or once the earlier invoice expired (issue 13, part 5): a late first
send could otherwise pay the buyer twice. A BOLT11 payout keeps retrying the same hash."""

from datetime import timedelta

import pytest
from django.utils import timezone

from nostrbridge.protocol.enums import Action
from orders.services.payout import payout_reconcile
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
    assert trade.refresh().payout_payment_hash is None
