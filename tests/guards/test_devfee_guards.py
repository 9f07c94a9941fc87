"""The dev-fee ledger's guards made to decide (issue 22, items 9 and 10).

The trade: 100 VES at 0.6 %, so each order owes the fund 14 sats. Time is passed as `now`.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devfee import services
from devfee.models import DevFeePayment
from lightning.errors import LightningPermissionDenied, LightningRejected, LightningUnavailable
from lightning.types import PaymentOutcome, PaymentStatus
from mostro_site.config import clear_node_config_cache
from mostro_site.models import NodeSettings
from nostrbridge.event_settings import clear_network_cache
from nostrbridge.models import OutboundMessage
from orders.models import Order
from orders.selectors import dev_fee_billable_orders
from tests.guards.support import after_first_call, settled_trade
from tests.orders.services.support import mint_invoice

pytestmark = pytest.mark.django_db

DEV_FEE = 14
STALE = timedelta(seconds=services.STALE_CLAIM_SECONDS)


@pytest.fixture
def rows(node, fake_ln, fund):
    """`count` settled orders, each with its owed ledger row (oldest first)."""

    def make(count: int) -> list[DevFeePayment]:
        orders = [settled_trade(fake_ln).order for _ in range(count)]
        assert _bill(count) == count
        return [DevFeePayment.objects.get(order=order) for order in orders]

    return make


def _bill(limit: int) -> int:
    """The sweep's first step: ledger rows for the orders that owe a fee."""
    return services.dev_fee_rows_create(billable=dev_fee_billable_orders(limit=limit))


def _fund_sends(fake_ln, fund) -> list[str]:
    return [
        a["payment_request"] for n, a in fake_ln.calls if n == "send_payment" and a["payment_request"] in fund.invoices
    ]


def _state(row: DevFeePayment) -> tuple:
    row.refresh_from_db()
    return (row.status, row.claim_token, row.payment_hash, row.attempts)


# --- 9. the ledger's batch ----------------------------------------------------------------------


def test_orders_already_in_the_ledger_do_not_fill_the_batch(node, fake_ln, fund):
    billed = [settled_trade(fake_ln).order for _ in range(2)]
    assert _bill(2) == 2
    new = settled_trade(fake_ln).order
    Order.objects.filter(pk=new.pk).update(updated_at=timezone.now())  # the newest of the three

    assert _bill(1) == 1

    assert DevFeePayment.objects.filter(order=new).values_list("status", "amount_sats").get() == ("owed", DEV_FEE)
    assert DevFeePayment.objects.count() == 3
    assert {p.order_id for p in DevFeePayment.objects.all()} == {o.pk for o in [*billed, new]}


def test_orders_before_settlement_or_without_a_fee_are_never_billed(node, fake_ln, fund):
    settled = settled_trade(fake_ln).order
    free = settled_trade(fake_ln).order
    Order.objects.filter(pk=free.pk).update(dev_fee_sats=0)
    active = settled_trade(fake_ln).order
    Order.objects.filter(pk=active.pk).update(status="active")

    assert _bill(10) == 1
    assert list(DevFeePayment.objects.values_list("order_id", flat=True)) == [settled.pk]


def test_a_row_another_run_created_meanwhile_is_kept_and_not_counted(node, fake_ln, fund):
    # Both runs read the same billable orders; the other one stored its row (and started paying) first.
    first, second = (settled_trade(fake_ln).order for _ in range(2))
    billable = list(dev_fee_billable_orders(limit=10))
    theirs = DevFeePayment.objects.create(order=first, amount_sats=DEV_FEE, destination="x@y.z", status="claimed")

    assert services.dev_fee_rows_create(billable=billable) == 1

    assert DevFeePayment.objects.filter(order=first).values_list("pk", "status", "destination").get() == (
        theirs.pk,
        "claimed",
        "x@y.z",
    )
    assert DevFeePayment.objects.filter(order=second).values_list("status", "amount_sats").get() == ("owed", DEV_FEE)


# --- 10. the claim token ------------------------------------------------------------------------


def test_stale_worker_cannot_store_its_hash_over_a_newer_claim(rows, fake_ln, fund, monkeypatch):
    [row] = rows(1)
    now = timezone.now()
    newer = []

    def taken_over():
        # This worker stalls past the stale window: its claim is given back and re-claimed.
        assert services.dev_fee_reset_stale_claims(now=now + STALE + timedelta(seconds=1)) == 1
        newer.append(services.dev_fee_claim(payment_id=row.pk, now=now + STALE + timedelta(seconds=1)))

    after_first_call(monkeypatch, services, "dev_fee_resolve", taken_over)
    assert services.dev_fee_pay(payment_id=row.pk, now=now) == services.SKIPPED

    assert _state(row) == ("claimed", newer[0].token, None, 2)
    assert _fund_sends(fake_ln, fund) == []


def test_stale_worker_cannot_release_a_newer_claim(rows, fake_ln, fund, monkeypatch):
    [row] = rows(1)
    now = timezone.now()
    newer = []
    real_resolve = services.dev_fee_resolve

    def resolve(*, claim):
        if not newer:
            services.dev_fee_reset_stale_claims(now=now + STALE + timedelta(seconds=1))
            newer.append(services.dev_fee_claim(payment_id=row.pk, now=now + STALE + timedelta(seconds=1)))
            raise services.DevFeeAttemptError("lnurl_error: timed out")
        return real_resolve(claim=claim)

    monkeypatch.setattr(services, "dev_fee_resolve", resolve)
    assert services.dev_fee_pay(payment_id=row.pk, now=now) == services.FAILED

    assert _state(row) == ("claimed", newer[0].token, None, 2)
    assert row.last_error == "claim expired before a payment hash was stored"


def test_second_claim_of_a_claimed_row_loses(rows):
    [row] = rows(1)
    now = timezone.now()
    first = services.dev_fee_claim(payment_id=row.pk, now=now)
    assert services.dev_fee_claim(payment_id=row.pk, now=now) is None
    assert _state(row) == ("claimed", first.token, None, 1)


def test_claim_of_one_row_leaves_the_other_owed_rows_alone(rows):
    first, second = rows(2)
    now = timezone.now()
    claim = services.dev_fee_claim(payment_id=first.pk, now=now)
    assert (claim.payment_id, claim.order_id, claim.amount_sats) == (first.pk, first.order_id, DEV_FEE)
    assert _state(second) == ("owed", None, None, 0)


def test_failed_row_with_a_hash_is_not_claimed(rows):
    [row] = rows(1)
    DevFeePayment.objects.filter(pk=row.pk).update(status="failed", payment_hash="ab" * 32)
    assert services.dev_fee_claim(payment_id=row.pk, now=timezone.now()) is None
    assert _state(row) == ("failed", None, "ab" * 32, 0)


# --- stale outcome reports ---------------------------------------------------------------------


def test_stale_failure_report_does_not_release_a_newer_hash(rows, fake_ln, fund):
    [row] = rows(1)
    now = timezone.now()
    fake_ln.leave_next_payment_in_flight()
    assert services.dev_fee_pay(payment_id=row.pk, now=now) == services.PENDING
    current = DevFeePayment.objects.get(pk=row.pk).payment_hash
    failed = PaymentOutcome(status=PaymentStatus.FAILED, payment_hash_hex="ef" * 32, failure_reason="old")

    assert services.dev_fee_record_outcome(payment_id=row.pk, payment_hash="ef" * 32, outcome=failed, now=now) == (
        services.SKIPPED
    )
    row.refresh_from_db()
    assert (row.status, row.payment_hash, row.last_error) == ("in-flight", current, "")


def test_stale_success_report_does_not_mark_a_newer_hash_paid(rows, fake_ln, fund):
    [row] = rows(1)
    now = timezone.now()
    fake_ln.leave_next_payment_in_flight()
    services.dev_fee_pay(payment_id=row.pk, now=now)
    paid = PaymentOutcome(status=PaymentStatus.SUCCEEDED, payment_hash_hex="ef" * 32)

    assert services.dev_fee_record_outcome(payment_id=row.pk, payment_hash="ef" * 32, outcome=paid, now=now) == (
        services.SKIPPED
    )
    row.refresh_from_db()
    assert (row.status, row.paid_at, row.audit_event_id) == ("in-flight", None, "")


def test_failure_and_success_reports_touch_only_their_own_row(rows, fake_ln, fund):
    first, second = rows(2)
    now = timezone.now()
    for row in (first, second):
        fake_ln.leave_next_payment_in_flight()
        assert services.dev_fee_pay(payment_id=row.pk, now=now) == services.PENDING
    first.refresh_from_db()
    second.refresh_from_db()
    fake_ln.resolve_payment(first.payment_hash, succeed=False)

    assert services.dev_fee_reconcile(payment_id=first.pk, now=now) == services.FAILED
    assert _state(first)[:3] == ("failed", None, None)
    assert _state(second)[:3] == ("in-flight", second.claim_token, second.payment_hash)


# --- the send and the node's answers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("_case", "error", "outcome", "status"),
    [
        ("rejected", LightningRejected("invoice expired", code="UNKNOWN"), services.FAILED, "failed"),
        (
            "no permission",
            LightningPermissionDenied("macaroon", code="PERMISSION_DENIED"),
            services.PENDING,
            "in-flight",
        ),
        ("unreachable", LightningUnavailable("down", code="UNAVAILABLE"), services.PENDING, "in-flight"),
    ],
)
def test_send_errors(_case, error, outcome, status, rows, fake_ln, fund, monkeypatch):
    [row] = rows(1)

    def send(**kwargs):
        raise error

    monkeypatch.setattr(fake_ln, "send_payment", send)
    assert services.dev_fee_pay(payment_id=row.pk, now=timezone.now()) == outcome
    assert _state(row)[0] == status


def test_send_uses_the_fee_cap_and_the_dev_fee_timeout(rows, fake_ln, fund, settings):
    [row] = rows(1)
    assert services.dev_fee_pay(payment_id=row.pk, now=timezone.now()) == services.PAID
    [send] = [a for n, a in fake_ln.calls if n == "send_payment" and a["payment_request"] in fund.invoices]
    assert (send["max_fee_sats"], send["timeout_seconds"], send["amount_sats"]) == (10, 25, None)


# --- time windows -------------------------------------------------------------------------------


def test_stale_claim_window_boundary_with_two_claims(rows):
    old, young = rows(2)
    now = timezone.now()
    services.dev_fee_claim(payment_id=old.pk, now=now - STALE - timedelta(microseconds=1))
    services.dev_fee_claim(payment_id=young.pk, now=now - STALE)

    assert services.dev_fee_reset_stale_claims(now=now) == 1
    assert (_state(old)[0], _state(young)[0]) == ("owed", "claimed")


def test_failed_rows_are_retried_from_the_retry_delay_on(rows):
    due, early, owed = rows(3)
    now = timezone.now()
    retry = timedelta(seconds=services.RETRY_FAILED_SECONDS)
    DevFeePayment.objects.filter(pk=due.pk).update(status="failed", updated_at=now - retry)
    DevFeePayment.objects.filter(pk=early.pk).update(status="failed", updated_at=now - retry + timedelta(seconds=1))
    DevFeePayment.objects.filter(pk=owed.pk).update(updated_at=now + timedelta(seconds=5))

    assert services.dev_fee_due_ids(now=now, limit=10) == [due.pk, owed.pk]
    assert services.dev_fee_due_ids(now=now, limit=1) == [due.pk]


def test_in_flight_ids_only_with_a_hash_oldest_first(rows, fake_ln, fund):
    first, second, idle = rows(3)
    now = timezone.now()
    for row, at in ((first, now), (second, now - timedelta(seconds=1))):
        fake_ln.leave_next_payment_in_flight()
        services.dev_fee_pay(payment_id=row.pk, now=at)

    assert services.dev_fee_inflight_ids(limit=10) == [second.pk, first.pk]
    assert services.dev_fee_inflight_ids(limit=1) == [second.pk]
    assert _state(idle)[0] == "owed"


def test_unseen_payment_is_resent_only_after_the_grace(rows, fake_ln, fund):
    [row] = rows(1)
    now = timezone.now()
    claim = services.dev_fee_claim(payment_id=row.pk, now=now)
    invoice, decoded = services.dev_fee_resolve(claim=claim)
    assert services.dev_fee_store_hash(
        claim=claim, payment_request=invoice, payment_hash=decoded.payment_hash_hex, now=now
    )
    grace = timedelta(seconds=300)  # UNSEEN_GRACE_SECONDS

    assert services.dev_fee_reconcile(payment_id=row.pk, now=now + grace - timedelta(microseconds=1)) == (
        services.PENDING
    )
    assert _fund_sends(fake_ln, fund) == []
    assert services.dev_fee_reconcile(payment_id=row.pk, now=now + grace) == services.PAID
    assert _fund_sends(fake_ln, fund) == [invoice]


# --- what each phase writes ----------------------------------------------------------------------


def test_new_ledger_row_names_the_configured_destination(node, fake_ln, fund):
    order = settled_trade(fake_ln).order
    assert _bill(5) == 1
    row = DevFeePayment.objects.get(order=order)
    assert (row.status, row.amount_sats, row.destination, row.attempts) == ("owed", DEV_FEE, fund.address, 0)


def test_given_back_claim_is_cleared_and_explained(rows):
    [row] = rows(1)
    now = timezone.now()
    services.dev_fee_claim(payment_id=row.pk, now=now)
    later = now + STALE + timedelta(seconds=1)

    assert services.dev_fee_reset_stale_claims(now=later) == 1
    row.refresh_from_db()
    assert (row.status, row.claim_token, row.claimed_at, row.updated_at) == ("owed", None, None, later)
    assert row.last_error == "claim expired before a payment hash was stored"


def test_rows_holding_a_hash_are_never_due(rows):
    owed, failed = rows(2)
    now = timezone.now()
    DevFeePayment.objects.filter(pk=owed.pk).update(payment_hash="ab" * 32)
    DevFeePayment.objects.filter(pk=failed.pk).update(status="failed", payment_hash="cd" * 32, updated_at=now - STALE)
    assert services.dev_fee_due_ids(now=now, limit=10) == []


def test_amountless_invoice_from_the_fund_is_refused(rows, fake_ln, fund):
    [row] = rows(1)
    fund.invoice_factory = lambda sats: mint_invoice(amount_sats=0)
    assert services.dev_fee_pay(payment_id=row.pk, now=timezone.now()) == services.FAILED
    row.refresh_from_db()
    assert (row.status, row.payment_hash, row.last_error) == ("failed", None, "invoice amount 0 msat, expected 14 sats")
    assert _fund_sends(fake_ln, fund) == []


def test_unknown_network_fails_the_attempt_before_any_lookup(rows, fake_ln, fund):
    [row] = rows(1)
    clear_network_cache()
    fake_ln.set_unavailable(True)
    try:
        assert services.dev_fee_pay(payment_id=row.pk, now=timezone.now()) == services.FAILED
    finally:
        fake_ln.set_unavailable(False)
    row.refresh_from_db()
    assert (row.status, row.last_error, fund.requests) == (
        "failed",
        "LND network unknown; cannot check the dev-fee invoice",
        [],
    )


def test_invoice_already_held_by_another_row_is_given_back(rows, fake_ln, fund):
    first, second = rows(2)
    invoice = mint_invoice(amount_sats=DEV_FEE)
    fund.invoice_factory = lambda sats: invoice  # a broken service: the same invoice twice
    now = timezone.now()
    assert services.dev_fee_pay(payment_id=first.pk, now=now) == services.PAID

    assert services.dev_fee_pay(payment_id=second.pk, now=now) == services.SKIPPED

    second.refresh_from_db()
    assert (second.status, second.payment_hash, second.claim_token) == ("failed", None, None)
    assert second.last_error.endswith("already used by another dev-fee row")
    assert _fund_sends(fake_ln, fund) == [invoice]


def test_large_fee_is_capped_by_the_operators_routing_fee(node, fake_ln, fund):
    NodeSettings.objects.create(max_routing_fee=0.005)
    clear_node_config_cache()
    order = settled_trade(fake_ln).order
    row = DevFeePayment.objects.create(order=order, amount_sats=2000, destination=fund.address)

    assert services.dev_fee_pay(payment_id=row.pk, now=timezone.now()) == services.PAID
    [send] = [a for n, a in fake_ln.calls if n == "send_payment" and a["payment_request"] in fund.invoices]
    assert send["max_fee_sats"] == 10


def test_failure_without_a_reason_is_recorded_as_such(rows, fake_ln, fund):
    [row] = rows(1)
    now = timezone.now()
    fake_ln.leave_next_payment_in_flight()
    services.dev_fee_pay(payment_id=row.pk, now=now)
    row.refresh_from_db()
    failed = PaymentOutcome(status=PaymentStatus.FAILED, payment_hash_hex=row.payment_hash)

    assert services.dev_fee_record_outcome(
        payment_id=row.pk, payment_hash=row.payment_hash, outcome=failed, now=now
    ) == (services.FAILED)
    row.refresh_from_db()
    assert (row.status, row.last_error, row.payment_request, row.claimed_at) == (
        "failed",
        "payment failed: no reason given",
        "",
        None,
    )


def test_paid_row_records_the_routing_fee_and_clears_the_last_error(rows, fake_ln, fund):
    [row] = rows(1)
    now = timezone.now()
    fake_ln.fail_next_payment()
    assert services.dev_fee_pay(payment_id=row.pk, now=now) == services.FAILED
    fake_ln.next_payment_fee_sats = 3
    later = now + timedelta(seconds=services.RETRY_FAILED_SECONDS)

    assert services.dev_fee_pay(payment_id=row.pk, now=later) == services.PAID
    row.refresh_from_db()
    assert (row.status, row.routing_fee_sats, row.last_error, row.claim_token, row.paid_at, row.updated_at) == (
        "paid",
        3,
        "",
        None,
        later,
        later,
    )


# --- stale reports against settled rows, own-row reads, and what each write stamps ---------------


def test_failure_report_for_a_paid_row_is_ignored(rows, fake_ln, fund):
    [row] = rows(1)
    now = timezone.now()
    assert services.dev_fee_pay(payment_id=row.pk, now=now) == services.PAID
    row.refresh_from_db()
    failed = PaymentOutcome(status=PaymentStatus.FAILED, payment_hash_hex=row.payment_hash, failure_reason="late")

    assert services.dev_fee_record_outcome(
        payment_id=row.pk, payment_hash=row.payment_hash, outcome=failed, now=now
    ) == (services.SKIPPED)
    row.refresh_from_db()
    assert (row.status, row.last_error) == ("paid", "")


def test_reconcile_reads_its_own_row_and_never_a_finished_one(rows, fake_ln, fund):
    first, second = rows(2)
    now = timezone.now()
    for row in (first, second):
        fake_ln.leave_next_payment_in_flight()
        services.dev_fee_pay(payment_id=row.pk, now=now)
    second.refresh_from_db()
    fake_ln.resolve_payment(second.payment_hash, succeed=True)

    assert services.dev_fee_reconcile(payment_id=second.pk, now=now) == services.PAID
    assert (_state(first)[0], _state(second)[0]) == ("in-flight", "paid")
    tracks = len([n for n, _ in fake_ln.calls if n == "track_payment"])
    assert services.dev_fee_reconcile(payment_id=second.pk, now=now) == services.SKIPPED
    assert services.dev_fee_reconcile(payment_id=10**9, now=now) == services.SKIPPED
    assert len([n for n, _ in fake_ln.calls if n == "track_payment"]) == tracks


def test_unseen_grace_counts_from_the_stored_hash_not_the_claim(rows, fake_ln, fund):
    [row] = rows(1)
    claimed = timezone.now()
    stored = claimed + timedelta(seconds=200)
    claim = services.dev_fee_claim(payment_id=row.pk, now=claimed)
    invoice, decoded = services.dev_fee_resolve(claim=claim)
    services.dev_fee_store_hash(claim=claim, payment_request=invoice, payment_hash=decoded.payment_hash_hex, now=stored)

    assert services.dev_fee_reconcile(payment_id=row.pk, now=stored + timedelta(seconds=299)) == services.PENDING
    assert _fund_sends(fake_ln, fund) == []


def test_outcomes_stamp_the_time_they_were_recorded(rows, fake_ln, fund):
    paid, failed = rows(2)
    t0 = timezone.now()
    later = t0 + timedelta(seconds=120)
    for row in (paid, failed):
        fake_ln.leave_next_payment_in_flight()
        services.dev_fee_pay(payment_id=row.pk, now=t0)
        row.refresh_from_db()
    fake_ln.resolve_payment(paid.payment_hash, succeed=True)
    fake_ln.resolve_payment(failed.payment_hash, succeed=False, reason="x" * 1500)

    assert services.dev_fee_reconcile(payment_id=paid.pk, now=later) == services.PAID
    assert services.dev_fee_reconcile(payment_id=failed.pk, now=later) == services.FAILED

    paid.refresh_from_db()
    failed.refresh_from_db()
    assert (paid.updated_at, paid.paid_at, failed.updated_at) == (later, later, later)
    assert failed.last_error == ("payment failed: " + "x" * 1500)[:1000]
    [audit] = OutboundMessage.objects.filter(kind=8383)
    assert audit.order_id == paid.order_id


def test_claim_stamps_its_time_and_the_current_destination(rows, settings, fund):
    [row] = rows(1)
    settings.MOSTRO_DEV_FEE_LIGHTNING_ADDRESS = "fund@fixed.example"
    clear_node_config_cache()
    later = timezone.now() + timedelta(seconds=90)

    claim = services.dev_fee_claim(payment_id=row.pk, now=later)

    row.refresh_from_db()
    assert (claim.destination, row.destination, row.updated_at, row.claimed_at) == (
        "fund@fixed.example",
        "fund@fixed.example",
        later,
        later,
    )


def test_failed_attempt_clears_the_claim_time(rows, fake_ln, fund):
    [row] = rows(1)
    fund.error = "wallet offline"
    assert services.dev_fee_pay(payment_id=row.pk, now=timezone.now()) == services.FAILED
    row.refresh_from_db()
    assert (row.status, row.claimed_at, row.claim_token, row.attempts) == ("failed", None, None, 1)


def test_rejected_send_records_the_nodes_reason(rows, fake_ln, fund, monkeypatch):
    [row] = rows(1)

    def refuse(**kwargs):
        raise LightningRejected("invoice expired", code="UNKNOWN")

    monkeypatch.setattr(fake_ln, "send_payment", refuse)
    assert services.dev_fee_pay(payment_id=row.pk, now=timezone.now()) == services.FAILED
    row.refresh_from_db()
    assert (row.status, row.last_error) == ("failed", "payment failed: invoice expired")


def test_a_one_sat_dev_fee_is_billed(node, fake_ln, fund):
    order = settled_trade(fake_ln).order
    Order.objects.filter(pk=order.pk).update(dev_fee_sats=1)
    assert _bill(5) == 1
    assert DevFeePayment.objects.get(order=order).amount_sats == 1
