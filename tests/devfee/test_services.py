"""The development fee (docs/PROTOCOL.md §Dev-fee, §Dev-fee-event) against the fake LND and a local
LNURL-pay dev fund. The trade: alice sells 100 VES (7851 sats), fee 24 per side at 0.6 %, so
dev_fee = round(2 × 24 × 0.30) = 14 sats. Time is frozen by passing `now`."""

from datetime import timedelta

import pytest
from django.utils import timezone

from devfee import services
from devfee.models import DevFeePayment
from lightning.bolt11 import decode_invoice
from mostro_site.config import clear_node_config_cache
from nostrbridge.models import OutboundMessage
from nostrbridge.node_identity import encode_npub, node_pubkey
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.nip01 import Event
from orders.jobs import pay_pending_dev_fees
from orders.selectors import dev_fee_billable_orders
from tests.orders.trade_states import active_sell_trade

pytestmark = pytest.mark.django_db

DEV_FEE = 14
RETRY = timedelta(seconds=services.RETRY_FAILED_SECONDS)
NOTHING = {
    "stale_claims_reset": 0,
    "rows_created": 0,
    "reconciled": 0,
    "attempted": 0,
    "paid": 0,
    "failed": 0,
    "pending": 0,
    "skipped": 0,
}


@pytest.fixture
def settled(node, fake_ln, django_capture_on_commit_callbacks):
    """A released trade; `payout="fail"` leaves it in settled-hold-invoice."""

    def run(payout: str = "succeed"):
        trade = active_sell_trade(fake_ln)
        trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
        if payout == "fail":
            fake_ln.fail_next_payment()
        with django_capture_on_commit_callbacks(execute=True):
            trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)
        order = trade.refresh()
        assert (order.status, order.dev_fee_sats) == (
            "success" if payout == "succeed" else "settled-hold-invoice",
            DEV_FEE,
        )
        return order

    return run


def _dev_sends(fake_ln, fund) -> list[dict]:
    return [args for name, args in fake_ln.calls if name == "send_payment" and args["payment_request"] in fund.invoices]


def _audit_events() -> list[Event]:
    return [Event.from_json(row.event_json) for row in OutboundMessage.objects.filter(kind=8383).order_by("pk")]


def _hash(invoice: str) -> str:
    return decode_invoice(invoice).payment_hash_hex


def _row(order) -> DevFeePayment:
    return DevFeePayment.objects.get(order=order)


# --- the happy path ---------------------------------------------------------------------------


def test_successful_trade_pays_the_dev_fund_once_and_publishes_the_audit_event(settled, fake_ln, fund):
    order = settled()
    now = timezone.now()

    assert pay_pending_dev_fees(now=now) == NOTHING | {"rows_created": 1, "attempted": 1, "paid": 1}
    assert pay_pending_dev_fees(now=now + RETRY) == NOTHING

    [invoice] = fund.invoices
    assert fund.requests == [(DEV_FEE * 1000, f"mostro-dev-fee order={order.id} node={encode_npub(node_pubkey())}")]
    assert _dev_sends(fake_ln, fund) == [
        {"payment_request": invoice, "max_fee_sats": 10, "timeout_seconds": 25, "amount_sats": None}
    ]
    row = _row(order)
    [event] = _audit_events()
    assert (row.status, row.amount_sats, row.attempts, row.payment_hash, row.destination, row.paid_at) == (
        "paid",
        DEV_FEE,
        1,
        _hash(invoice),
        fund.address,
        now,
    )
    assert (row.audit_event_id, row.claim_token, row.last_error) == (event.id, None, "")
    stamp = int(now.timestamp())
    assert (event.kind, event.pubkey, event.created_at, event.content) == (8383, node_pubkey(), stamp, "")
    assert event.tags == [
        ["order-id", str(order.id)],
        ["amount", "14"],
        ["hash", _hash(invoice)],
        ["destination", fund.address],
        ["network", "regtest"],
        ["y", "mostro", "Example Mostro"],
        ["z", "dev-fee-payment"],
        ["expiration", str(stamp + 365 * 86_400)],
    ]
    assert event.verify()


def test_fee_is_owed_from_settlement_even_if_the_buyer_payout_fails(settled, fake_ln, fund):
    order = settled(payout="fail")
    assert pay_pending_dev_fees()["paid"] == 1
    assert (_row(order).status, order.status) == ("paid", "settled-hold-invoice")


def test_orders_before_settlement_owe_nothing(node, fake_ln, fund):
    active_sell_trade(fake_ln)
    assert pay_pending_dev_fees() == NOTHING
    assert (DevFeePayment.objects.count(), fund.requests) == (0, [])


def test_trades_without_a_node_fee_owe_nothing(node, fake_ln, fund, settings, django_capture_on_commit_callbacks):
    settings.MOSTRO_FEE = 0.0
    clear_node_config_cache()
    trade = active_sell_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    with django_capture_on_commit_callbacks(execute=True):
        trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)
    assert (trade.refresh().status, trade.order.dev_fee_sats) == ("success", 0)

    assert pay_pending_dev_fees() == NOTHING
    assert (DevFeePayment.objects.count(), fund.requests) == (0, [])


@pytest.mark.parametrize(("_case", "comment_allowed"), [("too short", 20), ("not offered", None)])
def test_comment_is_dropped_when_the_service_does_not_take_it(_case, comment_allowed, settled, fund):
    fund.comment_allowed = comment_allowed
    settled()
    assert pay_pending_dev_fees()["paid"] == 1
    assert fund.requests == [(DEV_FEE * 1000, None)]


# --- failures: visible, retried, never blocking ---------------------------------------------


def test_invoice_for_another_amount_is_refused_and_retried_later(settled, fake_ln, fund):
    order = settled()
    now = timezone.now()
    fund.amount_override_sats = DEV_FEE + 1

    assert pay_pending_dev_fees(now=now) == NOTHING | {"rows_created": 1, "attempted": 1, "failed": 1}
    row = _row(order)
    assert (row.status, row.attempts, row.payment_hash, row.claim_token) == ("failed", 1, None, None)
    assert row.last_error == "amount_mismatch: invoice amount 15000 msat, expected 14 sats"
    assert _dev_sends(fake_ln, fund) == []

    fund.amount_override_sats = None
    assert pay_pending_dev_fees(now=now + RETRY - timedelta(seconds=1)) == NOTHING
    assert pay_pending_dev_fees(now=now + RETRY) == NOTHING | {"attempted": 1, "paid": 1}
    assert (_row(order).status, _row(order).attempts, len(_audit_events())) == ("paid", 2, 1)


def test_lnurl_error_is_recorded_on_the_row(settled, fund):
    order = settled()
    fund.error = "wallet offline"
    assert pay_pending_dev_fees()["failed"] == 1
    assert _row(order).last_error == "lnurl_error: LNURL service error: wallet offline"


def test_node_failure_releases_the_hash_and_a_fresh_invoice_is_paid(settled, fake_ln, fund):
    order = settled()
    now = timezone.now()
    fake_ln.fail_next_payment()

    assert pay_pending_dev_fees(now=now) == NOTHING | {"rows_created": 1, "attempted": 1, "failed": 1}
    row = _row(order)
    assert (row.status, row.payment_hash, row.last_error) == ("failed", None, "payment failed: FAILURE_REASON_NO_ROUTE")
    assert _audit_events() == []

    assert pay_pending_dev_fees(now=now + RETRY) == NOTHING | {"attempted": 1, "paid": 1}
    first, second = fund.invoices
    assert [send["payment_request"] for send in _dev_sends(fake_ln, fund)] == [first, second]
    assert (_row(order).payment_hash, _audit_events()[0].tag_value("hash")) == (_hash(second), _hash(second))


def test_timed_out_payment_is_asked_about_never_resent(settled, fake_ln, fund):
    order = settled()
    now = timezone.now()
    fake_ln.leave_next_payment_in_flight()

    assert pay_pending_dev_fees(now=now) == NOTHING | {"rows_created": 1, "attempted": 1, "pending": 1}
    [invoice] = fund.invoices
    assert (_row(order).status, _row(order).payment_hash) == ("in-flight", _hash(invoice))
    # Still in flight at the node, however long it takes: no new invoice, no second send.
    assert pay_pending_dev_fees(now=now + RETRY * 10) == NOTHING | {"reconciled": 1, "pending": 1}

    fake_ln.resolve_payment(_hash(invoice), succeed=True)
    assert pay_pending_dev_fees(now=now + RETRY * 11) == NOTHING | {"reconciled": 1, "paid": 1}
    assert (len(fund.requests), len(_dev_sends(fake_ln, fund)), len(_audit_events())) == (1, 1, 1)
    assert _row(order).status == "paid"


def test_timed_out_payment_that_then_fails_is_retried_with_a_fresh_invoice(settled, fake_ln, fund):
    order = settled()
    now = timezone.now()
    fake_ln.leave_next_payment_in_flight()
    pay_pending_dev_fees(now=now)
    fake_ln.resolve_payment(_hash(fund.invoices[0]), succeed=False)

    assert pay_pending_dev_fees(now=now + timedelta(seconds=60)) == NOTHING | {"reconciled": 1, "failed": 1}
    assert pay_pending_dev_fees(now=now + timedelta(seconds=60) + RETRY) == NOTHING | {"attempted": 1, "paid": 1}
    assert len(set(fund.invoices)) == 2
    assert (_row(order).payment_hash, len(_audit_events())) == (_hash(fund.invoices[1]), 1)


# --- a run stopped between phases ----------------------------------------------------------------


def test_claim_without_a_hash_is_given_back_after_the_stale_window(settled, fake_ln, fund):
    order = settled()
    now = timezone.now()
    services.dev_fee_rows_create(billable=dev_fee_billable_orders(limit=10))
    assert services.dev_fee_claim(payment_id=_row(order).pk, now=now) is not None  # ...and the worker dies
    assert services.dev_fee_claim(payment_id=_row(order).pk, now=now) is None  # the claim holds

    stale = timedelta(seconds=services.STALE_CLAIM_SECONDS)
    assert pay_pending_dev_fees(now=now + stale) == NOTHING
    assert pay_pending_dev_fees(now=now + stale + timedelta(seconds=1)) == NOTHING | {
        "stale_claims_reset": 1,
        "attempted": 1,
        "paid": 1,
    }
    assert (_row(order).attempts, len(fund.requests), len(_dev_sends(fake_ln, fund))) == (2, 1, 1)


def test_stored_hash_never_sent_is_paid_with_the_same_invoice(settled, fake_ln, fund):
    order = settled()
    now = timezone.now()
    services.dev_fee_rows_create(billable=dev_fee_billable_orders(limit=10))
    claim = services.dev_fee_claim(payment_id=_row(order).pk, now=now)
    invoice, decoded = services.dev_fee_resolve(claim=claim)
    assert services.dev_fee_store_hash(
        claim=claim, payment_request=invoice, payment_hash=decoded.payment_hash_hex, now=now
    )  # ...and the worker dies before sending

    assert pay_pending_dev_fees(now=now + timedelta(seconds=60)) == NOTHING | {"reconciled": 1, "pending": 1}
    assert _dev_sends(fake_ln, fund) == []
    grace = timedelta(seconds=services.UNSEEN_GRACE_SECONDS + 1)
    assert pay_pending_dev_fees(now=now + grace) == NOTHING | {"reconciled": 1, "paid": 1}
    assert [send["payment_request"] for send in _dev_sends(fake_ln, fund)] == [invoice]
    assert (len(fund.requests), _row(order).payment_hash) == (1, decoded.payment_hash_hex)


def test_payment_sent_but_not_recorded_is_recorded_from_the_node(settled, fake_ln, fund):
    order = settled()
    now = timezone.now()
    services.dev_fee_rows_create(billable=dev_fee_billable_orders(limit=10))
    claim = services.dev_fee_claim(payment_id=_row(order).pk, now=now)
    invoice, decoded = services.dev_fee_resolve(claim=claim)
    services.dev_fee_store_hash(claim=claim, payment_request=invoice, payment_hash=decoded.payment_hash_hex, now=now)
    services.dev_fee_send(payment_request=invoice, payment_hash=decoded.payment_hash_hex, amount_sats=DEV_FEE)
    # ...and the worker dies before recording the outcome

    assert pay_pending_dev_fees(now=now) == NOTHING | {"reconciled": 1, "paid": 1}
    assert (_row(order).status, len(_dev_sends(fake_ln, fund)), len(_audit_events())) == ("paid", 1, 1)


def test_unreachable_node_keeps_the_row_in_flight(settled, fake_ln, fund):
    order = settled()
    now = timezone.now()
    fake_ln.leave_next_payment_in_flight()
    pay_pending_dev_fees(now=now)
    fake_ln.set_unavailable(True)

    assert pay_pending_dev_fees(now=now + RETRY * 2) == NOTHING | {"reconciled": 1, "pending": 1}
    fake_ln.set_unavailable(False)
    assert (_row(order).status, len(_dev_sends(fake_ln, fund))) == ("in-flight", 1)
