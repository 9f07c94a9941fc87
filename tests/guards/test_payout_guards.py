"""The buyer payout's guards, each made to decide (issue 22, items 1, 2, 4–7).

Amounts: 7851 sats, fee 24 per side, so the buyer's invoice receives 7827 sats.
"""

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone

from lightning.bolt11 import decode_invoice
from lightning.errors import LightningPermissionDenied, LightningRejected, LightningUnavailable, PaymentAlreadyExists
from lightning.lnurl import LnurlError
from lightning.types import PaymentOutcome, PaymentStatus
from mostro_site.config import clear_node_config_cache
from mostro_site.models import NodeSettings
from nostrbridge.event_settings import clear_network_cache
from nostrbridge.models import OutboundMessage
from orders.models import Order
from orders.services import payout, payout_sweeps
from orders.services.invoice import order_add_invoice
from orders.services.payout import payout_start
from orders.services.payout_sweeps import payout_reconcile, payout_reconcile_inflight, payout_retry_due
from tests.devfee.lnurl_server import DevFundServer
from tests.foundation.factories import make_order
from tests.guards.support import actions, after_first_call, audit_trail, fresh_trade, row_state, settled_trade
from tests.orders.services.support import mint_invoice, order_events, snapshot

pytestmark = pytest.mark.django_db

PAYOUT_SATS = 7827
CLAIM = ("payout_payment_hash", "payout_claimed_at")
RETRY = ("failed_payment", "payment_attempts", "payout_payment_hash", "next_payout_at")


def _sends(fake_ln) -> list[str]:
    return [args["payment_request"] for name, args in fake_ln.calls if name == "send_payment"]


@pytest.fixture
def wallet():
    """The buyer's Lightning address: every LNURL callback mints a fresh invoice (a new hash)."""
    with DevFundServer(lambda sats: mint_invoice(amount_sats=sats)) as server:
        yield server


def _answer_after(monkeypatch, fake_ln, competitor, answer: PaymentOutcome) -> list:
    """The first `track_payment` lets `competitor` run (its own calls reach the node), then
    answers `answer`: a report about an attempt the competitor has already superseded."""
    real = fake_ln.track_payment
    ran: list = []

    def track(**kwargs):
        if ran:
            return real(**kwargs)
        ran.append(None)
        ran[0] = competitor()
        return answer

    monkeypatch.setattr(fake_ln, "track_payment", track)
    return ran


def _in_flight(trade, fake_ln) -> str:
    """Start the payout and leave it in flight; returns the claimed hash."""
    fake_ln.leave_next_payment_in_flight()
    assert payout_start(order_id=trade.order.id) == "pending"
    return trade.refresh().payout_payment_hash


def _fail_then_retry(trade, fake_ln, payment_hash: str):
    """A competitor: another reconciler hears FAILED first and releases the claim, then the
    retry claims again and its payment is in flight."""

    def competitor():
        fake_ln.resolve_payment(payment_hash, succeed=False)
        assert payout_reconcile(order_id=trade.order.id) == "failed"
        fake_ln.leave_next_payment_in_flight()
        return payout_start(order_id=trade.order.id)

    return competitor


def _fail_once(trade, fake_ln) -> None:
    fake_ln.fail_next_payment()
    assert payout_start(order_id=trade.order.id) == "failed"
    trade.buyer.replies()


# --- 1. the claim: a second start between the read and the claim ---------------------------


def test_start_arriving_between_read_and_claim_loses_to_the_live_claim(node, fake_ln, monkeypatch):
    trade = settled_trade(fake_ln)
    fake_ln.leave_next_payment_in_flight()
    competitor = after_first_call(
        monkeypatch, payout, "_resolve", lambda: payout_start(order_id=trade.order.id, request_id=None)
    )

    assert payout_start(order_id=trade.order.id, request_id=5) == "skipped"

    assert competitor == ["pending"]
    assert _sends(fake_ln) == [trade.buyer_invoice]
    order = trade.refresh()
    assert (order.status, order.payout_request_id) == ("settled-hold-invoice", None)  # the competitor's claim


def test_lightning_address_start_between_read_and_claim_never_pays_a_second_invoice(node, fake_ln, monkeypatch, wallet):
    trade = settled_trade(fake_ln, buyer_invoice=wallet.address)
    fake_ln.leave_next_payment_in_flight()
    competitor = after_first_call(
        monkeypatch, payout, "_resolve", lambda: payout_start(order_id=trade.order.id, request_id=None)
    )

    assert payout_start(order_id=trade.order.id, request_id=5) == "skipped"

    first, second = wallet.invoices[-2:]  # the outer start fetched first, the competitor second
    assert (competitor, _sends(fake_ln)) == (["pending"], [second])
    assert fake_ln.payments.keys() == {trade.refresh().payout_payment_hash}
    assert first != second


# --- 4. the invoice swapped while the start resolved it ----------------------------------------


def test_invoice_replaced_between_read_and_claim_is_the_one_paid(node, fake_ln, monkeypatch):
    trade = settled_trade(fake_ln)
    _fail_once(trade, fake_ln)
    new_invoice = mint_invoice(amount_sats=PAYOUT_SATS)
    after_first_call(
        monkeypatch,
        payout,
        "_resolve",
        lambda: order_add_invoice(order_id=trade.order.id, sender=trade.buyer_key, invoice=new_invoice, request_id=9),
    )

    assert payout_start(order_id=trade.order.id, request_id=None) == "skipped"
    assert _sends(fake_ln) == [trade.buyer_invoice]  # only the failed first attempt
    assert row_state(trade.order, "buyer_invoice", "payout_payment_hash") == (new_invoice, None)

    assert payout_retry_due() == 1
    assert _sends(fake_ln) == [trade.buyer_invoice, new_invoice]
    assert trade.refresh().status == "success"


# --- 2. a failure report from a stale claim, or from no claim ---------------------------------


def test_stale_failure_report_does_not_release_the_newer_claim_on_the_same_invoice(node, fake_ln, monkeypatch):
    trade = settled_trade(fake_ln)
    payment_hash = _in_flight(trade, fake_ln)
    # The retry re-claims the same invoice: same hash, new claimed_at.
    stale = PaymentOutcome(status=PaymentStatus.FAILED, payment_hash_hex=payment_hash, failure_reason="stale")
    competitor = _answer_after(monkeypatch, fake_ln, _fail_then_retry(trade, fake_ln, payment_hash), stale)

    assert payout_reconcile(order_id=trade.order.id) == "skipped"

    assert competitor == ["pending"]
    order = trade.refresh()
    assert (order.payout_payment_hash, order.payment_attempts, order.failed_payment) == (payment_hash, 1, True)
    assert order.payout_claimed_at is not None
    assert actions(trade.buyer) == ["payment-failed"]  # from the competitor only
    assert _sends(fake_ln) == [trade.buyer_invoice, trade.buyer_invoice]


def test_failed_lookup_without_a_claim_leaves_a_live_claim_alone(node, fake_ln, monkeypatch, wallet):
    trade = settled_trade(fake_ln, buyer_invoice=wallet.address)
    fake_ln.leave_next_payment_in_flight()
    real_resolve = payout._resolve
    calls = []

    def resolve(destination, amount, *facts):
        calls.append(destination)
        if len(calls) == 1:
            # While this start asks the LNURL service, another start claims and sends...
            assert payout_start(order_id=trade.order.id) == "pending"
            raise LnurlError("lnurl_error", "service down")  # ...and this lookup fails.
        return real_resolve(destination, amount, *facts)

    monkeypatch.setattr(payout, "_resolve", resolve)
    assert payout_start(order_id=trade.order.id) == "skipped"

    order = trade.refresh()
    assert (order.payment_attempts, order.failed_payment) == (0, False)
    assert list(fake_ln.payments) == [order.payout_payment_hash]  # the competitor's claim, kept
    assert len(_sends(fake_ln)) == 1
    assert actions(trade.buyer) == []


# --- 6. a success report from a stale claim ------------------------------------------------------


def test_stale_success_report_does_not_finish_the_order_under_a_newer_claim(node, fake_ln, monkeypatch, wallet):
    trade = settled_trade(fake_ln, buyer_invoice=wallet.address)
    old_hash = _in_flight(trade, fake_ln)
    # The retry gets a fresh invoice from the address: a new hash.
    stale = PaymentOutcome(status=PaymentStatus.SUCCEEDED, payment_hash_hex=old_hash)
    competitor = _answer_after(monkeypatch, fake_ln, _fail_then_retry(trade, fake_ln, old_hash), stale)

    assert payout_reconcile(order_id=trade.order.id) == "skipped"

    assert competitor == ["pending"]
    order = trade.refresh()
    new_hash = order.payout_payment_hash
    assert (order.status, new_hash != old_hash, new_hash in fake_ln.payments) == ("settled-hold-invoice", True, True)
    assert audit_trail(order)[-1] == ("fiat-sent", "settled-hold-invoice")
    assert "purchase-completed" not in actions(trade.buyer)


# --- 5 and 3. a failure is recorded on its own order only ----------------------------------------


def test_failure_is_recorded_on_the_failing_order_not_on_another_settled_one(node, fake_ln, wallet):
    # Another settled order with no claim, sorted first by primary key.
    other = make_order(
        id=uuid.UUID(int=0),
        status="settled-hold-invoice",
        buyer_pubkey="c" * 64,
        buyer_invoice=mint_invoice(amount_sats=0),
        amount_sats=5000,
    )
    before = snapshot(other)
    trade = settled_trade(fake_ln, buyer_invoice=wallet.address)
    wallet.error = "wallet offline"

    assert payout_start(order_id=trade.order.id) == "failed"

    assert row_state(trade.order, "failed_payment", "payment_attempts") == (True, 1)
    assert actions(trade.buyer) == ["payment-failed"]
    assert snapshot(other) == before
    assert OutboundMessage.objects.filter(recipient_pubkey="c" * 64).count() == 0


def test_replacing_one_buyers_invoice_leaves_another_settled_order_alone(node, fake_ln):
    first, second = settled_trade(fake_ln), settled_trade(fake_ln)
    _fail_once(first, fake_ln)
    _fail_once(second, fake_ln)
    before = snapshot(second.order)
    new_invoice = mint_invoice(amount_sats=0)

    order_add_invoice(order_id=first.order.id, sender=first.buyer_key, invoice=new_invoice, request_id=7)

    assert row_state(first.order, "buyer_invoice", "payment_attempts") == (new_invoice, 0)
    assert snapshot(second.order) == before


# --- 7. the operator's routing-fee cap ----------------------------------------------------------


def test_send_uses_the_operators_routing_fee_cap_not_the_environment_default(node, fake_ln, settings):
    settings.MOSTRO_MAX_ROUTING_FEE = 0.002
    NodeSettings.objects.create(max_routing_fee=0.005)
    clear_node_config_cache()
    trade = settled_trade(fake_ln)

    assert payout_start(order_id=trade.order.id) == "succeeded"
    [send] = [args for name, args in fake_ln.calls if name == "send_payment"]
    assert (send["max_fee_sats"], send["amount_sats"], send["timeout_seconds"]) == (39, PAYOUT_SATS, 60)


def test_fixed_amount_invoice_is_sent_without_an_amount(node, fake_ln):
    trade = settled_trade(fake_ln, buyer_invoice=mint_invoice(amount_sats=PAYOUT_SATS))
    assert payout_start(order_id=trade.order.id) == "succeeded"
    [send] = [args for name, args in fake_ln.calls if name == "send_payment"]
    assert (send["amount_sats"], send["max_fee_sats"]) == (None, 15)


# --- the node's answers that were not covered ---------------------------------------------------


def test_send_the_node_rejects_is_a_definite_failure(node, fake_ln, monkeypatch):
    trade = settled_trade(fake_ln)

    def refuse(**kwargs):
        raise LightningRejected("invoice expired", code="UNKNOWN", details="invoice expired")

    monkeypatch.setattr(fake_ln, "send_payment", refuse)
    assert payout_start(order_id=trade.order.id, request_id=8) == "failed"

    order = trade.refresh()
    assert row_state(order, *RETRY)[:3] == (True, 1, None)
    assert order.payout_claimed_at is None
    assert [(r.action, r.message.request_id) for r in trade.buyer.replies()] == [("payment-failed", 8)]


@pytest.mark.parametrize(
    ("_case", "track", "outcome", "status", "claim_kept"),
    [
        ("track fails", LightningUnavailable("down", code="UNAVAILABLE"), "pending", "settled-hold-invoice", True),
        ("track says paid", PaymentStatus.SUCCEEDED, "succeeded", "success", True),
        ("track says in flight", PaymentStatus.IN_FLIGHT, "pending", "settled-hold-invoice", True),
        ("track says failed", PaymentStatus.FAILED, "failed", "settled-hold-invoice", False),
    ],
)
def test_payment_already_known_to_the_node_is_asked_about(
    _case, track, outcome, status, claim_kept, node, fake_ln, monkeypatch
):
    trade = settled_trade(fake_ln)

    def already(**kwargs):
        raise PaymentAlreadyExists("payment is in transition", code="ALREADY_EXISTS")

    def tracked(*, payment_hash, **kwargs):
        if isinstance(track, Exception):
            raise track
        return PaymentOutcome(status=track, payment_hash_hex=payment_hash.hex(), failure_reason="no route")

    monkeypatch.setattr(fake_ln, "send_payment", already)
    monkeypatch.setattr(fake_ln, "track_payment", tracked)
    assert payout_start(order_id=trade.order.id) == outcome

    order = trade.refresh()
    assert order.status == status
    assert (order.payout_payment_hash is not None) == claim_kept
    assert order.payment_attempts == (0 if claim_kept else 1)


def test_node_down_before_the_claim_skips_without_counting_a_failure(node, fake_ln):
    trade = settled_trade(fake_ln)
    clear_network_cache()  # the invoice's network cannot be checked
    fake_ln.set_unavailable(True)
    try:
        assert payout_start(order_id=trade.order.id) == "skipped"
    finally:
        fake_ln.set_unavailable(False)
    assert row_state(trade.order, *RETRY)[:3] == (False, 0, None)
    assert actions(trade.buyer) == []


# --- the attempt limit and the retry interval --------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "outcome", "told", "attempts_after"),
    [(1, "failed", [], 2), (2, "failed", ["add-invoice"], 3), (3, "skipped", [], 3)],
)
def test_attempt_limit_boundary(attempts, outcome, told, attempts_after, node, fake_ln, settings):
    """Three attempts: the third is still made and asks for a new invoice; none after it."""
    settings.LND_PAYMENT_ATTEMPTS = 3
    clear_node_config_cache()
    trade = settled_trade(fake_ln)
    Order.objects.filter(pk=trade.order.id).update(failed_payment=True, payment_attempts=attempts)
    fake_ln.fail_next_payment()

    assert payout_start(order_id=trade.order.id) == outcome

    assert len(_sends(fake_ln)) == (0 if outcome == "skipped" else 1)
    assert actions(trade.buyer) == told
    assert row_state(trade.order, "payment_attempts", "payout_payment_hash") == (attempts_after, None)


def test_only_attempt_below_the_limit_is_retried_by_the_sweep(node, fake_ln, settings):
    settings.LND_PAYMENT_ATTEMPTS = 3
    clear_node_config_cache()
    due, exhausted = settled_trade(fake_ln), settled_trade(fake_ln)
    now = timezone.now()
    Order.objects.filter(pk=due.order.id).update(failed_payment=True, payment_attempts=2, next_payout_at=now)
    Order.objects.filter(pk=exhausted.order.id).update(failed_payment=True, payment_attempts=3, next_payout_at=now)

    assert payout_retry_due(now=now) == 1
    assert (due.refresh().status, exhausted.refresh().status) == ("success", "settled-hold-invoice")
    assert _sends(fake_ln) == [due.buyer_invoice]


def test_retry_interval_boundary_and_old_failures_without_a_due_time(node, fake_ln):
    now = timezone.now()
    trades = [settled_trade(fake_ln) for _ in range(4)]
    due_times = [None, now, now + timedelta(microseconds=1), now - timedelta(seconds=1)]
    for trade, due_at in zip(trades, due_times, strict=True):
        Order.objects.filter(pk=trade.order.id).update(failed_payment=True, payment_attempts=1, next_payout_at=due_at)

    assert payout_retry_due(now=now) == 3
    assert [trade.refresh().status for trade in trades] == ["success", "success", "settled-hold-invoice", "success"]


def test_orphan_sweep_waits_for_the_grace_and_skips_claimed_orders(node, fake_ln):
    orphan, young, claimed = settled_trade(fake_ln), settled_trade(fake_ln), settled_trade(fake_ln)
    now = timezone.now()
    grace = timedelta(seconds=300)  # ORPHAN_GRACE_SECONDS
    Order.objects.filter(pk=orphan.order.id).update(updated_at=now - grace - timedelta(seconds=1))
    Order.objects.filter(pk=young.order.id).update(updated_at=now - grace)
    fake_ln.leave_next_payment_in_flight()
    assert payout_start(order_id=claimed.order.id) == "pending"
    Order.objects.filter(pk=claimed.order.id).update(updated_at=now - grace - timedelta(seconds=1))

    assert payout_retry_due(now=now) == 1
    assert [t.refresh().status for t in (orphan, young, claimed)] == ["success", *["settled-hold-invoice"] * 2]
    assert len(_sends(fake_ln)) == 2


def test_orphan_sweep_takes_an_attempt_marked_due_at_once(node, fake_ln):
    # `_retry_soon`: an attempt that could not ask LND marks its order due; the grace does not apply.
    due, later = settled_trade(fake_ln), settled_trade(fake_ln)
    now = timezone.now()
    Order.objects.filter(pk=due.order.id).update(next_payout_at=now, updated_at=now)
    Order.objects.filter(pk=later.order.id).update(next_payout_at=now + timedelta(microseconds=1), updated_at=now)

    assert payout_retry_due(now=now) == 1
    assert [t.refresh().status for t in (due, later)] == ["success", "settled-hold-invoice"]
    assert _sends(fake_ln) == [due.buyer_invoice]


def test_retry_soon_marks_only_a_settled_order_nobody_claimed(node, fake_ln):
    unclaimed, claimed, paid = settled_trade(fake_ln), settled_trade(fake_ln), settled_trade(fake_ln)
    fake_ln.leave_next_payment_in_flight()
    assert payout_start(order_id=claimed.order.id) == "pending"
    assert payout_start(order_id=paid.order.id) == "succeeded"
    before = [row_state(t.order, "payout_payment_hash", "updated_at") for t in (claimed, paid)]
    started = timezone.now()

    for trade in (unclaimed, claimed, paid):
        assert payout._retry_soon(trade.refresh()) == "skipped"

    assert started <= row_state(unclaimed.order, "next_payout_at")[0] <= timezone.now()
    assert [row_state(t.order, "next_payout_at") for t in (claimed, paid)] == [(None,), (None,)]
    assert [row_state(t.order, "payout_payment_hash", "updated_at") for t in (claimed, paid)] == before


@pytest.mark.parametrize(
    ("scheduled_after_s", "marked"), [(None, True), (-60.0, True), (0.0, True), (0.000001, False), (60.0, False)]
)
def test_retry_soon_never_brings_a_retry_set_for_later_forward(scheduled_after_s, marked, node, fake_ln, monkeypatch):
    # A failure recorded meanwhile set the next try `payment_retries_interval` ahead: an attempt
    # that could not ask LND learned nothing and keeps it; a due or unset time becomes now.
    trade = settled_trade(fake_ln)
    now = timezone.now()
    scheduled = None if scheduled_after_s is None else now + timedelta(seconds=scheduled_after_s)
    Order.objects.filter(pk=trade.order.id).update(
        failed_payment=True, payment_attempts=1, next_payout_at=scheduled, updated_at=now - timedelta(hours=1)
    )
    before = row_state(trade.order, *RETRY, "updated_at")
    monkeypatch.setattr(payout.timezone, "now", lambda: now)

    assert payout._retry_soon(trade.refresh()) == "skipped"

    after = row_state(trade.order, *RETRY, "updated_at")
    assert after == ((True, 1, None, now, now) if marked else before)


def test_reconcile_sweep_asks_only_about_claims_past_the_grace(node, fake_ln):
    old, young = settled_trade(fake_ln), settled_trade(fake_ln)
    for trade in (old, young):
        fake_ln.leave_next_payment_in_flight()
        assert payout_start(order_id=trade.order.id) == "pending"
        fake_ln.resolve_payment(trade.refresh().payout_payment_hash, succeed=True)
    now = timezone.now()
    grace = timedelta(seconds=60)
    Order.objects.filter(pk=old.order.id).update(payout_claimed_at=now - grace - timedelta(microseconds=1))
    Order.objects.filter(pk=young.order.id).update(payout_claimed_at=now - grace)

    assert payout_reconcile_inflight(now=now) == 1
    assert (old.refresh().status, young.refresh().status) == ("success", "settled-hold-invoice")


def test_unknown_payment_fails_exactly_after_the_grace(node, fake_ln):
    trade = settled_trade(fake_ln)
    fake_ln.leave_next_payment_in_flight()
    payout_start(order_id=trade.order.id)
    claimed_at = trade.refresh().payout_claimed_at
    fake_ln.payments.clear()  # the node never heard of it
    grace = timedelta(seconds=60)

    assert payout_reconcile(order_id=trade.order.id, now=claimed_at + grace) == "pending"
    assert payout_reconcile(order_id=trade.order.id, now=claimed_at + grace + timedelta(microseconds=1)) == "failed"
    assert row_state(trade.order, "payout_payment_hash", "payment_attempts") == (None, 1)


# --- orders a payout must not touch (no send, and no call to the buyer's LNURL service) ----------


def test_unknown_order_is_skipped(node, fake_ln):
    assert payout_start(order_id=uuid.uuid4()) == "skipped"
    assert payout_reconcile(order_id=uuid.uuid4()) == "skipped"
    assert fake_ln.calls == []


def test_order_not_yet_settled_is_never_resolved_nor_paid(node, fake_ln, wallet):
    trade = fresh_trade(fake_ln, buyer_invoice=wallet.address)
    requests = len(wallet.requests)
    assert payout_start(order_id=trade.order.id) == "skipped"
    assert payout_reconcile(order_id=trade.order.id) == "skipped"
    assert (len(wallet.requests), _sends(fake_ln)) == (requests, [])
    assert not [name for name, _ in fake_ln.calls if name == "track_payment"]


def test_claimed_order_is_not_resolved_again(node, fake_ln, wallet):
    trade = settled_trade(fake_ln, buyer_invoice=wallet.address)
    fake_ln.leave_next_payment_in_flight()
    assert payout_start(order_id=trade.order.id) == "pending"
    requests = len(wallet.requests)

    assert payout_start(order_id=trade.order.id) == "skipped"
    assert (len(wallet.requests), len(_sends(fake_ln))) == (requests, 1)


def test_settled_order_without_a_claim_is_not_reconciled(node, fake_ln):
    trade = settled_trade(fake_ln)
    assert payout_reconcile(order_id=trade.order.id) == "skipped"
    assert [name for name, _ in fake_ln.calls if name == "track_payment"] == []


def test_settled_order_without_a_buyer_invoice_is_skipped(node, fake_ln):
    order = make_order(status="settled-hold-invoice", buyer_pubkey="c" * 64, buyer_invoice=None)
    assert payout_start(order_id=order.id) == "skipped"
    assert fake_ln.calls == []


def test_expired_buyer_invoice_counts_as_a_failed_attempt(node, fake_ln):
    trade = settled_trade(fake_ln)
    expired = mint_invoice(amount_sats=0, expiry_seconds=60, age_seconds=120)
    Order.objects.filter(pk=trade.order.id).update(buyer_invoice=expired)

    assert payout_start(order_id=trade.order.id, request_id=5) == "failed"
    assert row_state(trade.order, "failed_payment", "payment_attempts", "payout_payment_hash") == (True, 1, None)
    assert (_sends(fake_ln), actions(trade.buyer)) == ([], ["payment-failed"])


# --- the sweeps' filters -------------------------------------------------------------------------


def test_reconcile_sweep_passes_its_clock_to_the_unknown_payment_rule(node, fake_ln):
    trade = settled_trade(fake_ln)
    fake_ln.leave_next_payment_in_flight()
    payout_start(order_id=trade.order.id)
    claimed_at = trade.refresh().payout_claimed_at
    fake_ln.payments.clear()

    assert payout_reconcile_inflight(now=claimed_at + timedelta(seconds=61)) == 1
    assert row_state(trade.order, "payout_payment_hash", "payment_attempts") == (None, 1)


def test_sweeps_ignore_orders_that_are_not_settled(node, fake_ln):
    now = timezone.now()
    old = now - timedelta(hours=1)
    done = make_order(status="success", payout_payment_hash="ab" * 32, payout_claimed_at=old)
    canceled = make_order(status="canceled", buyer_invoice=mint_invoice(amount_sats=0))
    Order.objects.filter(pk=canceled.pk).update(updated_at=old)
    unclaimed = settled_trade(fake_ln)
    # A settled orphan (its task lost), with a claim time but no hash.
    Order.objects.filter(pk=unclaimed.order.id).update(payout_claimed_at=old, updated_at=old)

    assert payout_reconcile_inflight(now=now) == 0
    assert payout_retry_due(now=now) == 1  # only the settled orphan
    assert [name for name, _ in fake_ln.calls if name == "track_payment"] == []
    assert [Order.objects.get(pk=o.pk).status for o in (done, canceled)] == ["success", "canceled"]


def test_failed_payout_waits_for_its_retry_time_however_old(node, fake_ln):
    trade = settled_trade(fake_ln)
    now = timezone.now()
    Order.objects.filter(pk=trade.order.id).update(
        failed_payment=True,
        payment_attempts=1,
        next_payout_at=now + timedelta(seconds=30),
        updated_at=now - timedelta(hours=1),
    )
    assert payout_retry_due(now=now) == 0
    assert _sends(fake_ln) == []


def test_reconcile_grace_is_never_below_thirty_seconds(node, fake_ln, settings):
    settings.LND_PAYMENT_RETRIES_INTERVAL = 10
    clear_node_config_cache()
    trade = settled_trade(fake_ln)
    fake_ln.leave_next_payment_in_flight()
    payout_start(order_id=trade.order.id)
    claimed_at = trade.refresh().payout_claimed_at
    fake_ln.payments.clear()

    assert payout_reconcile_inflight(now=claimed_at + timedelta(seconds=30)) == 0
    assert payout_reconcile(order_id=trade.order.id, now=claimed_at + timedelta(seconds=30)) == "pending"
    assert payout_reconcile_inflight(now=claimed_at + timedelta(seconds=30, microseconds=1)) == 1
    assert row_state(trade.order, "payout_payment_hash")[0] is None


def test_reconcile_reads_its_own_order(node, fake_ln):
    make_order(id=uuid.UUID(int=0), status="settled-hold-invoice", buyer_invoice=mint_invoice(amount_sats=0))
    trade = settled_trade(fake_ln)
    payment_hash = _in_flight(trade, fake_ln)
    fake_ln.resolve_payment(payment_hash, succeed=True)

    assert payout_reconcile(order_id=trade.order.id) == "succeeded"
    assert trade.refresh().status == "success"


def test_finished_payout_is_not_asked_about_again(node, fake_ln):
    trade = settled_trade(fake_ln)
    assert payout_start(order_id=trade.order.id) == "succeeded"
    tracks = [name for name, _ in fake_ln.calls if name == "track_payment"]
    assert payout_reconcile(order_id=trade.order.id) == "skipped"
    assert [name for name, _ in fake_ln.calls if name == "track_payment"] == tracks == []


@pytest.mark.parametrize("sweep", ["retry", "reconcile"])
def test_sweeps_take_at_most_fifty_orders_oldest_first(sweep, node, monkeypatch):
    now = timezone.now()
    started: list = []
    monkeypatch.setattr(payout_sweeps, "payout_start", lambda *, order_id, request_id: started.append(order_id))
    monkeypatch.setattr(payout_sweeps, "payout_reconcile", lambda *, order_id, now: started.append(order_id))
    old = now - timedelta(hours=1)
    orders = [
        make_order(
            status="settled-hold-invoice",
            failed_payment=True,
            payment_attempts=1,
            payout_payment_hash=f"{i:064x}" if sweep == "reconcile" else None,
            payout_claimed_at=old + timedelta(seconds=i) if sweep == "reconcile" else None,
        )
        for i in range(51)
    ]
    for i, order in enumerate(orders):
        Order.objects.filter(pk=order.pk).update(updated_at=old + timedelta(seconds=i))

    count = payout_retry_due(now=now) if sweep == "retry" else payout_reconcile_inflight(now=now)

    assert count == 50
    assert started == [order.pk for order in orders[:50]]


# --- more of the node's answers and the payout's bookkeeping -------------------------------------


def test_permission_denied_at_the_send_keeps_the_claim(node, fake_ln, monkeypatch):
    trade = settled_trade(fake_ln)

    def denied(**kwargs):
        raise LightningPermissionDenied("macaroon lacks offchain:write", code="PERMISSION_DENIED")

    monkeypatch.setattr(fake_ln, "send_payment", denied)
    assert payout_start(order_id=trade.order.id) == "pending"
    assert row_state(trade.order, "failed_payment", "payment_attempts")[:2] == (False, 0)
    assert trade.order.payout_payment_hash is not None


def test_invoice_already_claimed_by_another_order_is_a_failed_attempt(node, fake_ln):
    first = settled_trade(fake_ln)
    assert payout_start(order_id=first.order.id) == "succeeded"
    second = settled_trade(fake_ln)
    Order.objects.filter(pk=second.order.id).update(buyer_invoice=first.buyer_invoice)  # the same invoice again

    assert payout_start(order_id=second.order.id, request_id=6) == "skipped"

    assert row_state(second.order, "failed_payment", "payment_attempts", "payout_payment_hash") == (True, 1, None)
    assert [(r.action, r.message.request_id) for r in second.buyer.replies()] == [("payment-failed", 6)]
    assert len(_sends(fake_ln)) == 1


def test_lookup_failing_after_a_competitor_finished_the_payout_changes_nothing(node, fake_ln, monkeypatch, wallet):
    trade = settled_trade(fake_ln, buyer_invoice=wallet.address)
    real_resolve = payout._resolve
    calls = []

    def resolve(destination, amount, *facts):
        calls.append(destination)
        if len(calls) == 1:
            assert payout_start(order_id=trade.order.id) == "succeeded"
            raise LnurlError("lnurl_error", "service down")
        return real_resolve(destination, amount, *facts)

    monkeypatch.setattr(payout, "_resolve", resolve)
    assert payout_start(order_id=trade.order.id) == "skipped"
    assert row_state(trade.order, "status", "failed_payment", "payment_attempts") == ("success", False, 0)
    assert actions(trade.buyer) == ["purchase-completed", "rate"]


def test_success_records_the_routing_fee_and_publishes_with_the_network(node, fake_ln):
    trade = settled_trade(fake_ln)
    payment_hash = _in_flight(trade, fake_ln)
    fake_ln.resolve_payment(payment_hash, succeed=True)
    fake_ln.payments[payment_hash] = replace(fake_ln.payments[payment_hash], fee_sats=4)

    assert payout_reconcile(order_id=trade.order.id) == "succeeded"

    assert row_state(trade.order, "status", "routing_fee_sats", "payout_claimed_at") == ("success", 4, None)
    assert order_events(trade.order.id)[-1].tag_value("network") == "regtest"


@pytest.mark.parametrize("path", ["start", "reconcile"])
def test_success_event_is_built_from_the_row_as_the_transition_leaves_it(path, node, fake_ln, monkeypatch):
    # `_succeeded`: the success transaction builds its event from the row it read earlier (before
    # the claim, or the reconciliation's read after it), changed in place as its UPDATE changes
    # it; a column the event shows must never come from the earlier read.
    trade = settled_trade(fake_ln)
    fields = ("status", "payout_payment_hash", "payout_claimed_at", "routing_fee_sats")
    built: list[tuple] = []
    real = payout.order_event_build

    def recorded(order, **kwargs):
        built.append(tuple(getattr(order, name) for name in fields))
        return real(order, **kwargs)

    monkeypatch.setattr(payout, "order_event_build", recorded)
    if path == "start":
        fake_ln.next_payment_fee_sats = 4
        assert payout_start(order_id=trade.order.id) == "succeeded"
    else:
        payment_hash = _in_flight(trade, fake_ln)
        fake_ln.resolve_payment(payment_hash, succeed=True)
        fake_ln.payments[payment_hash] = replace(fake_ln.payments[payment_hash], fee_sats=4)
        assert payout_reconcile(order_id=trade.order.id) == "succeeded"

    paid_hash = decode_invoice(trade.buyer_invoice).payment_hash_hex
    assert row_state(trade.order, *fields) == ("success", paid_hash, None, 4)
    assert built == [("success", paid_hash, None, 4)]


def test_invoice_replaced_after_a_lost_task_is_paid_by_the_orphan_sweep(node, fake_ln):
    trade = settled_trade(fake_ln)  # its payout task was lost: not failed, not claimed
    new_invoice = mint_invoice(amount_sats=0)
    order_add_invoice(order_id=trade.order.id, sender=trade.buyer_key, invoice=new_invoice, request_id=7)
    assert row_state(trade.order, "buyer_invoice", "failed_payment", "payment_attempts") == (new_invoice, False, 0)

    assert payout_retry_due() == 0  # an orphan waits for the grace (a queued task may still come)
    assert payout_retry_due(now=timezone.now() + timedelta(seconds=301)) == 1
    assert (trade.refresh().status, _sends(fake_ln)) == ("success", [new_invoice])


def test_single_attempt_node_tells_and_asks_at_the_first_failure(node, fake_ln, settings):
    settings.LND_PAYMENT_ATTEMPTS = 1
    clear_node_config_cache()
    trade = settled_trade(fake_ln)
    fake_ln.fail_next_payment()

    assert payout_start(order_id=trade.order.id, request_id=5) == "failed"

    [failed, ask] = trade.buyer.replies()
    assert (failed.action, failed.message.request_id, ask.action, ask.message.request_id) == (
        "payment-failed",
        5,
        "add-invoice",
        5,
    )
    info = failed.message.payload.info
    assert (info.payment_attempts, info.payment_retries_interval) == (0, 60)
