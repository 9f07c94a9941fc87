"""Buyer payout (docs/PROTOCOL.md §Payout) on the fake LND."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from lightning.errors import LightningUnavailable
from lightning.types import PaymentStatus
from nostrbridge.event_settings import lnd_network, publisher_settings
from nostrbridge.outbox import node_keys
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.payloads import PaymentRequestPayload
from nostrbridge.protocol.published_events import build_order_event
from orders.models import OrderStatusChange
from orders.publish import order_snapshot
from orders.services.invoice import order_add_invoice
from orders.services.payout import PAYOUT_TASK, payout_start
from orders.services.payout_sweeps import payout_reconcile, payout_reconcile_inflight, payout_retry_due
from tests.orders.services.support import mint_invoice, order_events, outbox_count, snapshot
from tests.orders.trade_states import active_sell_trade, unix, vector

pytestmark = pytest.mark.django_db

LATER = timedelta(seconds=61)  # past payment_retries_interval (60 s) and the reconcile grace


@pytest.fixture
def release(node, fake_ln, django_capture_on_commit_callbacks):
    """Release an active trade with a chosen payout fate; returns the trade after the first attempt."""

    def run(*, fate: str = "succeed", buyer_invoice: str | None = None):
        trade = active_sell_trade(fake_ln, buyer_invoice=buyer_invoice)
        trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
        trade.seller.replies()
        trade.buyer.replies()
        if fate == "fail":
            fake_ln.fail_next_payment()
        elif fate == "in-flight":
            fake_ln.leave_next_payment_in_flight()
        with django_capture_on_commit_callbacks(execute=True):
            trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)
        trade.seller.replies()
        return trade

    return run


def _sends(fake_ln) -> list[str]:
    return [args["payment_request"] for name, args in fake_ln.calls if name == "send_payment"]


def _buyer_actions(trade) -> list[tuple[str, int | None]]:
    return [(r.action, r.message.request_id) for r in trade.buyer.replies()]


def test_first_failure_notifies_the_buyer_and_schedules_a_retry(release, fake_ln):
    trade = release(fate="fail")
    replies = trade.buyer.replies()
    assert [r.message.to_json() for r in replies] == [
        vector("A16_released_to_buyer", trade.order),
        vector("A23_payment_failed", trade.order),
    ]
    order = trade.refresh()
    assert (order.status, order.failed_payment, order.payment_attempts) == ("settled-hold-invoice", True, 1)
    assert (order.payout_payment_hash, order.payout_claimed_at) == (None, None)
    assert timedelta(seconds=59) < order.next_payout_at - timezone.now() <= timedelta(seconds=60)


def test_retry_after_a_failure_pays_with_a_null_request_id(release, fake_ln):
    trade = release(fate="fail")
    trade.buyer.replies()
    assert payout_retry_due() == 0  # not due yet
    assert payout_retry_due(now=timezone.now() + LATER) == 1

    assert _buyer_actions(trade) == [("purchase-completed", None), ("rate", None)]
    order = trade.refresh()
    assert order.status == "success"
    assert _sends(fake_ln) == [trade.buyer_invoice, trade.buyer_invoice]
    assert order_events(order.id)[-1].tag_value("s") == "success"


def test_exhausted_attempts_ask_for_a_new_invoice(release, fake_ln):
    trade = release(fate="fail")
    trade.buyer.replies()
    for _ in range(2):
        fake_ln.fail_next_payment()
        assert payout_retry_due(now=timezone.now() + LATER) == 1

    order = trade.refresh()
    assert (order.payment_attempts, order.failed_payment, order.status) == (3, True, "settled-hold-invoice")
    [reply] = trade.buyer.replies()  # no second payment-failed
    assert reply.message.to_json() == (
        f'{{"order":{{"version":2,"request_id":null,"trade_index":null,"id":"{order.id}","action":"add-invoice",'
        f'"payload":{{"order":{{"id":"{order.id}","kind":"sell","status":"settled-hold-invoice","amount":7827,'
        '"fiat_code":"VES","min_amount":null,"max_amount":null,"fiat_amount":100,'
        '"payment_method":"face to face,bank transfer","premium":1,'
        f'"buyer_trade_pubkey":"{trade.buyer_key}","seller_trade_pubkey":"{trade.seller_key}",'
        f'"buyer_invoice":"{trade.buyer_invoice}","created_at":{unix(order.created_at)},'
        f'"expires_at":{unix(order.expires_at)}}}}}}}}}'
    )
    sends = len(_sends(fake_ln))
    assert payout_retry_due(now=timezone.now() + LATER * 3) == 0
    assert len(_sends(fake_ln)) == sends == 3


def test_replaced_invoice_is_paid_by_the_retry_job(release, fake_ln):
    trade = release(fate="fail")
    for _ in range(2):
        fake_ln.fail_next_payment()
        payout_retry_due(now=timezone.now() + LATER)
    trade.buyer.replies()
    new_invoice = mint_invoice(amount_sats=7827)

    order_add_invoice(order_id=trade.order.id, sender=trade.buyer_key, invoice=new_invoice, request_id=7)
    [updated] = trade.buyer.replies()
    assert updated.message.to_json() == vector("F12_invoice_updated", trade.order)
    assert (trade.refresh().payment_attempts, trade.order.buyer_invoice) == (0, new_invoice)

    assert payout_retry_due() == 1
    assert trade.refresh().status == "success"
    assert _sends(fake_ln)[-1] == new_invoice
    assert [a for name, a in fake_ln.calls if name == "send_payment"][-1]["amount_sats"] is None


def test_add_invoice_from_the_buyer_replaces_and_the_retry_pays(release, fake_ln):
    trade = release(fate="fail")
    for _ in range(2):
        fake_ln.fail_next_payment()
        payout_retry_due(now=timezone.now() + LATER)
    trade.buyer.replies()
    new_invoice = mint_invoice(amount_sats=0)
    replies = trade.buyer.send(
        Action.ADD_INVOICE, index=1, order_id=trade.order.id, payload=PaymentRequestPayload(None, new_invoice, None)
    )
    assert [r.action for r in replies] == ["invoice-updated"]
    assert payout_retry_due() == 1
    assert (trade.refresh().status, _sends(fake_ln)[-1]) == ("success", new_invoice)


def test_invoice_cannot_be_replaced_while_a_payout_is_in_flight(release, fake_ln):
    trade = release(fate="in-flight")
    trade.buyer.replies()
    before, outbox = snapshot(trade.order), outbox_count()
    with pytest.raises(CantDo) as refused:
        order_add_invoice(
            order_id=trade.order.id, sender=trade.buyer_key, invoice=mint_invoice(amount_sats=0), request_id=7
        )
    assert refused.value.reason is CantDoReason.NOT_ALLOWED_BY_STATUS
    assert (snapshot(trade.order), outbox_count()) == (before, outbox)


def test_in_flight_payout_keeps_its_claim_until_the_node_answers(release, fake_ln):
    trade = release(fate="in-flight")
    assert _buyer_actions(trade) == [("released", None)]
    order = trade.refresh()
    claim = order.payout_payment_hash
    assert (order.status, order.failed_payment, claim is not None) == ("settled-hold-invoice", False, True)

    assert payout_reconcile_inflight() == 0  # inside the grace window: not even asked
    assert payout_start(order_id=order.id, request_id=None) == "skipped"  # claimed: never sent twice
    assert payout_reconcile_inflight(now=timezone.now() + LATER) == 1  # still in flight
    assert trade.refresh().payout_payment_hash == claim

    fake_ln.resolve_payment(claim, succeed=True)
    assert payout_reconcile_inflight(now=timezone.now() + LATER) == 1
    assert _buyer_actions(trade) == [("purchase-completed", None), ("rate", 5)]
    order = trade.refresh()
    assert (order.status, order.payout_claimed_at, order.payout_payment_hash) == ("success", None, claim)
    assert len(_sends(fake_ln)) == 1
    assert [n for n, _ in fake_ln.calls if n == "track_payment"] == ["track_payment", "track_payment"]


def test_in_flight_payout_that_fails_is_released_for_a_retry(release, fake_ln):
    trade = release(fate="in-flight")
    trade.buyer.replies()
    fake_ln.resolve_payment(trade.refresh().payout_payment_hash, succeed=False)
    assert payout_reconcile(order_id=trade.order.id) == "failed"  # a final answer needs no grace
    order = trade.refresh()
    assert (order.payout_payment_hash, order.failed_payment, order.payment_attempts) == (None, True, 1)
    assert _buyer_actions(trade) == [("payment-failed", 5)]


def test_node_without_a_record_fails_the_claim_only_after_the_grace(release, fake_ln):
    trade = release(fate="in-flight")
    trade.buyer.replies()
    claim = trade.refresh().payout_payment_hash
    del fake_ln.payments[claim]  # the node lost (or never got) the payment
    assert payout_reconcile(order_id=trade.order.id) == "pending"
    assert trade.refresh().payout_payment_hash == claim
    assert payout_reconcile(order_id=trade.order.id, now=timezone.now() + LATER) == "failed"
    assert trade.refresh().payout_payment_hash is None


def test_unreachable_node_during_the_send_keeps_the_claim(node, fake_ln, release, monkeypatch):
    trade = release(fate="in-flight")
    trade.buyer.replies()
    fake_ln.resolve_payment(trade.refresh().payout_payment_hash, succeed=False)
    payout_reconcile(order_id=trade.order.id)
    trade.buyer.replies()

    def unreachable(**kwargs):  # the escrow is settled (checked first); the send cannot reach LND
        raise LightningUnavailable("connection reset during the send", code="UNAVAILABLE")

    monkeypatch.setattr(fake_ln, "send_payment", unreachable)
    assert payout_retry_due(now=timezone.now() + LATER) == 1
    order = trade.refresh()
    assert order.payout_payment_hash is not None  # outcome unknown: claim kept, not counted as failed
    assert (order.payment_attempts, order.status) == (1, "settled-hold-invoice")
    assert trade.buyer.replies() == []


def test_lightning_address_payout_fetches_the_exact_amount(release, fake_ln, lnurl_server):
    lnurl_server.pay_request("bob")
    invoice = mint_invoice(amount_sats=7827)
    lnurl_server.set_json("/lnurlp/bob/callback", {"pr": invoice, "routes": []})
    trade = release(buyer_invoice=lnurl_server.address("bob"))
    assert trade.refresh().status == "success"
    assert _sends(fake_ln) == [invoice]
    assert [r for r in lnurl_server.requests if "callback" in r] == ["/lnurlp/bob/callback?amount=7827000"]


def test_lightning_address_that_fails_counts_as_a_payment_failure(release, fake_ln, lnurl_server):
    lnurl_server.pay_request("bob")
    trade = release(buyer_invoice=lnurl_server.address("bob"))  # the callback has no route: 404
    order = trade.refresh()
    assert (order.status, order.failed_payment, order.payment_attempts) == ("settled-hold-invoice", True, 1)
    assert _sends(fake_ln) == []
    assert [a for a, _ in _buyer_actions(trade)] == ["released", "payment-failed"]


def test_success_is_recorded_once(release, fake_ln):
    trade = release()
    order = trade.refresh()
    assert payout_start(order_id=order.id, request_id=5) == "skipped"
    assert payout_reconcile(order_id=order.id) == "skipped"
    changes = list(OrderStatusChange.objects.filter(order=order).values_list("to_status", flat=True))
    assert changes.count("success") == 1
    assert fake_ln.payments[order.payout_payment_hash].status is PaymentStatus.SUCCEEDED


def test_lost_payout_task_is_picked_up_by_the_retry_sweep(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    # Outside django_capture_on_commit_callbacks the post-commit payout never runs: a lost task.
    trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)
    order = trade.refresh()
    assert (order.status, order.failed_payment, order.payout_payment_hash) == ("settled-hold-invoice", False, None)
    assert payout_retry_due(now=timezone.now() + LATER) == 0  # a queued task may still be coming
    assert payout_retry_due(now=timezone.now() + timedelta(seconds=301)) == 1
    assert trade.refresh().status == "success"


def test_a_payout_reads_the_order_row_twice_and_writes_the_outbox_once(node, fake_ln):
    # The start's read and the bond release's: the success transition has one allowed status, so
    # its guarded UPDATE decides without a status read; the replies and the order event use the
    # start's row (the buyer's key and the published columns are fixed once settled).
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    trade = active_sell_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)  # its task is never run
    trade.buyer.replies()
    with CaptureQueriesContext(connection) as queries:
        assert payout_start(order_id=trade.order.id, request_id=5) == "succeeded"
    order_reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and 'FROM "orders_order"' in q["sql"]]
    assert len(order_reads) == 2
    # The order event and both replies go to the outbox as one INSERT (`replies_together`).
    outbox_inserts = [q["sql"] for q in queries if q["sql"].startswith('INSERT INTO "nostrbridge_outboundmessage"')]
    assert len(outbox_inserts) == 1
    assert _buyer_actions(trade) == [("purchase-completed", None), ("rate", 5)]
    assert trade.refresh().status == "success"


def test_the_success_transition_stores_the_order_event_id_in_its_own_update(node, fake_ln):
    # The order event is built before the guarded UPDATE, which stores its id: the claim and the
    # success are the payout's only two UPDATEs of the order (there was a third, of event_id).
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    trade = active_sell_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)  # its task is never run
    with CaptureQueriesContext(connection) as queries:
        assert payout_start(order_id=trade.order.id, request_id=5) == "succeeded"
    order_updates = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "orders_order"')]
    assert len(order_updates) == 2
    assert '"event_id"' in order_updates[1]
    assert trade.refresh().event_id == order_events(trade.order.id)[-1].id


def test_a_lost_success_transition_leaves_no_clock_step_and_no_event(node, fake_ln):
    # The event is built (its clock advanced) before the transition decides: a lost transition
    # rolls all of it back.
    from lightning.types import PaymentOutcome
    from nostrbridge.models import AddressableClock
    from orders.services.payout import _record_success

    trade = active_sell_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)  # its task is never run
    order = trade.refresh()
    clocks = list(AddressableClock.objects.values_list("d_tag", "last_created_at"))
    events = outbox_count()
    outcome = PaymentOutcome(status=PaymentStatus.SUCCEEDED, payment_hash_hex="ab" * 32, fee_sats=0)
    # Not the order's claim (it has none): the guarded UPDATE changes nothing.
    assert _record_success(order=order, claim=("ab" * 32, None), outcome=outcome, request_id=5) == "skipped"
    assert list(AddressableClock.objects.values_list("d_tag", "last_created_at")) == clocks
    assert outbox_count() == events
    after = trade.refresh()
    assert (after.status, after.event_id) == ("settled-hold-invoice", order.event_id)


def _worker_runs(task: dict, run, capture_on_commit):
    """What django-q2's worker does around a task: the node's pre- and post-execute hooks; the
    task's commits run their callbacks at once, as outside a test's transaction."""
    from mostro_site.ops.job_hooks import on_post_execute, on_pre_execute

    on_pre_execute(sender="django_q", task=task)
    try:
        with capture_on_commit(execute=True):
            return run()
    finally:
        on_post_execute(sender="django_q", task=task)


def _queue_row():
    from django_q.models import OrmQ

    return OrmQ.objects.create(key="mostro", payload="signed task", lock=timezone.now())


@pytest.mark.parametrize(
    ("_case", "func", "task_order", "acked_by_the_payout"),
    [
        ("this order's payout task", PAYOUT_TASK, "this", True),
        ("the retry job", "orders.jobs.retry_failed_payouts", None, False),
        ("another order's payout task", PAYOUT_TASK, "another", False),
    ],
)
def test_a_payout_task_deletes_its_own_queue_row_with_the_trades_end(
    node, fake_ln, django_capture_on_commit_callbacks, _case, func, task_order, acked_by_the_payout
):
    # The payout's queue row goes in the success transaction, and the task reaches django-q2's
    # monitor without its `ack_id` (no second DELETE). A sweep paying the same order keeps its
    # own row for the monitor: it goes on after this payout. So does a payout task of another
    # order: the acknowledgement names the order it ends.
    from django_q.models import OrmQ

    trade = active_sell_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)  # its task is never run
    row = _queue_row()
    task_order_id = {"this": str(trade.order.id), "another": str(uuid.UUID(int=1)), None: None}[task_order]
    kwargs = {"order_id": task_order_id, "request_id": 5} if task_order else {}
    task = {"id": "t1", "func": func, "kwargs": kwargs, "ack_id": row.pk}
    run = lambda: payout_start(order_id=trade.order.id, request_id=5)  # noqa: E731
    assert _worker_runs(task, run, django_capture_on_commit_callbacks) == "succeeded"
    assert OrmQ.objects.filter(pk=row.pk).exists() is not acked_by_the_payout
    assert ("ack_id" in task) is not acked_by_the_payout
    assert trade.refresh().status == "success"


def test_a_payout_that_does_not_end_the_trade_leaves_its_queue_row_to_the_monitor(
    node, fake_ln, django_capture_on_commit_callbacks
):
    from django_q.models import OrmQ

    trade = active_sell_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)  # its task is never run
    fake_ln.fail_next_payment()
    row = _queue_row()
    task = {"id": "t2", "func": PAYOUT_TASK, "kwargs": {"order_id": str(trade.order.id)}, "ack_id": row.pk}
    run = lambda: payout_start(order_id=trade.order.id, request_id=5)  # noqa: E731
    assert _worker_runs(task, run, django_capture_on_commit_callbacks) == "failed"
    assert OrmQ.objects.filter(pk=row.pk).exists()
    assert task["ack_id"] == row.pk


def test_the_success_order_event_is_built_from_the_committed_row(release):
    # The success transaction publishes from the row read before the claim, with the status the
    # transition wrote: the same event as one built from the committed row.
    trade = release()
    order = trade.refresh()
    event = order_events(order.id)[-1]
    rebuilt = build_order_event(
        order_snapshot(order),
        node_keys(),
        settings=publisher_settings(),
        now=event.created_at,
        network=lnd_network(),
        created_at=event.created_at,
    )
    assert rebuilt is not None

    def without_expiration(tags: list[list[str]]) -> list[list[str]]:
        return [tag for tag in tags if tag[0] != "expiration"]  # counted from the publish time

    assert event.tag_value("s") == "success"
    assert (without_expiration(event.tags), event.content) == (without_expiration(rebuilt.tags), rebuilt.content)
    assert order.event_id == event.id
