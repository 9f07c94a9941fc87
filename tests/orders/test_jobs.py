"""The order jobs (orders/jobs.py), the declared schedules and running a job through django-q2.

Each job runs against the real services with frozen time (`now=`), twice: the second run
finds nothing left to do.
"""

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django_q.models import Schedule, Success
from django_q.tasks import async_task

from mostro_site.management.commands import run_jobs
from mostro_site.management.commands.sync_schedules import sync_schedules
from mostro_site.schedules import declared_jobs
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders import jobs
from orders.models import Order
from tests.orders.services.support import fake_ln, make_order, mint_invoice, node, set_price  # noqa: F401
from tests.orders.trade_states import active_sell_trade
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db

LATER = timedelta(seconds=61)  # past payment_retries_interval and the reconcile grace


def _taken_sell(*, with_invoice: bool) -> Order:
    maker, taker = TradeClient("maker"), TradeClient("taker")
    order = make_order(maker, index=1, kind="sell")
    payload = PaymentRequestPayload(None, mint_invoice(amount_sats=0), None) if with_invoice else None
    taker.send(Action.TAKE_SELL, index=1, order_id=order.id, payload=payload)
    order.refresh_from_db()
    return order


@pytest.mark.usefixtures("node")
def test_expire_pending_orders_expires_what_is_due_once():
    set_price()
    soon = make_order(TradeClient("a"), index=1, kind="sell")
    later = make_order(TradeClient("b"), index=1, kind="sell")
    Order.objects.filter(pk=later.pk).update(expires_at=soon.expires_at + timedelta(hours=1))
    now = soon.expires_at + timedelta(seconds=1)

    assert jobs.expire_pending_orders(now=now) == {"candidates": 1, "expired": 1}
    assert jobs.expire_pending_orders(now=now) == {"candidates": 0, "expired": 0}
    assert dict(Order.objects.values_list("pk", "status")) == {soon.pk: "expired", later.pk: "pending"}


@pytest.mark.usefixtures("node")
def test_cancel_timed_out_trades_handles_both_faults_once():
    set_price()
    taker_late = _taken_sell(with_invoice=False)  # the buyer (taker) owes an invoice
    maker_late = _taken_sell(with_invoice=True)  # the seller (maker) owes the escrow
    young = _taken_sell(with_invoice=True)
    now = maker_late.taken_at + timedelta(seconds=901)
    Order.objects.filter(pk=young.pk).update(taken_at=now)

    assert jobs.cancel_timed_out_trades(now=now) == {
        "candidates": 2,
        "taker-reset": 1,
        "maker-canceled": 1,
        "escrow-paid": 0,
        "skipped": 0,
    }
    assert jobs.cancel_timed_out_trades(now=now)["candidates"] == 0
    statuses = dict(Order.objects.values_list("pk", "status"))
    assert (statuses[taker_late.pk], statuses[maker_late.pk], statuses[young.pk]) == (
        "pending",
        "canceled",
        "waiting-payment",
    )


@pytest.fixture
def released(node, fake_ln, django_capture_on_commit_callbacks):  # noqa: F811
    """Release an active trade whose first payout fails or stays in flight."""

    def run(fate: str):
        trade = active_sell_trade(fake_ln)
        trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
        if fate == "fail":
            fake_ln.fail_next_payment()
        else:
            fake_ln.leave_next_payment_in_flight()
        with django_capture_on_commit_callbacks(execute=True):
            trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)
        return trade

    return run


def _sends(fake_ln) -> int:  # noqa: F811
    return [name for name, _ in fake_ln.calls].count("send_payment")


def test_retry_failed_payouts_pays_a_due_retry(released, fake_ln):  # noqa: F811
    trade = released("fail")
    now = trade.refresh().next_payout_at

    assert jobs.retry_failed_payouts(now=now - timedelta(seconds=1)) == {"attempted": 0}
    assert jobs.retry_failed_payouts(now=now) == {"attempted": 1}
    assert jobs.retry_failed_payouts(now=now + LATER) == {"attempted": 0}
    assert (trade.refresh().status, _sends(fake_ln)) == ("success", 2)


def test_reconcile_inflight_payouts_finishes_a_payout_the_node_completed(released, fake_ln):  # noqa: F811
    trade = released("in-flight")
    order = trade.refresh()
    assert (order.status, order.payout_payment_hash is not None) == ("settled-hold-invoice", True)
    fake_ln.resolve_payment(order.payout_payment_hash, succeed=True)

    assert jobs.reconcile_inflight_payouts(now=order.payout_claimed_at + timedelta(seconds=1)) == {"checked": 0}
    assert jobs.reconcile_inflight_payouts(now=order.payout_claimed_at + LATER) == {"checked": 1}
    assert jobs.reconcile_inflight_payouts(now=order.payout_claimed_at + LATER) == {"checked": 0}
    assert (trade.refresh().status, _sends(fake_ln)) == ("success", 1)


# --- schedules and the cluster ------------------------------------------------------------------

OWN_JOBS = {
    "orders.jobs.expire_pending_orders": 1,
    "orders.jobs.cancel_timed_out_trades": 1,
    "disputes.jobs.enforce_escrow_deadline": 5,
    "orders.jobs.retry_failed_payouts": 1,
    "orders.jobs.reconcile_inflight_payouts": 1,
    "orders.pricing.refresh_prices": 5,
    "orders.jobs.reconcile_order_events": 1,
    "orders.jobs.pay_pending_dev_fees": 1,
    "orders.bonds.jobs.reconcile_bonds": 1,
    "orders.bonds.payout.process_bond_payouts": 1,
}


def test_sync_schedules_with_the_declared_jobs_twice_creates_each_once():
    declared = declared_jobs()
    first = sync_schedules()
    second = sync_schedules()

    rows = list(Schedule.objects.values_list("name", "func", "minutes", "schedule_type", "repeats"))
    assert first == (len(declared), 0, 0)
    assert second == (0, 0, 0)
    assert len(rows) == len({name for name, *_ in rows}) == len(declared)
    assert all(name == func and kind == "I" and repeats == -1 for name, func, _, kind, repeats in rows)
    own = {name: minutes for name, _, minutes, *_ in rows if name in OWN_JOBS}
    assert own == OWN_JOBS
    assert {job.func for job in declared} - set(OWN_JOBS) <= {
        "nostrbridge.jobs.publish_info_event",
        "nostrbridge.jobs.publish_relay_list",
        "nostrbridge.jobs.retry_outbox",
        "nostrbridge.jobs.prune_inbox",
        "nostrbridge.jobs.prune_outbox",
        "mostro_site.ops.jobs.job_cluster_heartbeat",
    }


def test_payout_retry_interval_follows_the_setting(settings):
    settings.LND_PAYMENT_RETRIES_INTERVAL = 180
    sync_schedules()
    assert Schedule.objects.get(name="orders.jobs.retry_failed_payouts").minutes == 3


def test_run_jobs_syncs_the_schedules_before_starting_the_cluster(monkeypatch):
    seen = []

    class FakeCluster:
        def start(self):
            seen.append(("start", Schedule.objects.count()))

        def stop(self):
            seen.append(("stop", Schedule.objects.count()))

    monkeypatch.setattr(run_jobs, "Cluster", FakeCluster)
    call_command("run_jobs", "--run-once")
    assert seen == [("start", len(declared_jobs())), ("stop", len(declared_jobs()))]


def test_the_cluster_is_forked_with_persistent_connections_and_the_node_keeps_its_own(monkeypatch):
    from django.db import connections

    from mostro_site.runtime.cluster import CLUSTER_CONN_MAX_AGE_S

    before = connections["default"].settings_dict.get("CONN_MAX_AGE", 0)
    seen = []

    class FakeCluster:
        def start(self):  # the real one forks its processes here
            seen.append(connections["default"].settings_dict["CONN_MAX_AGE"])

        def stop(self):
            seen.append(connections["default"].settings_dict["CONN_MAX_AGE"])

    monkeypatch.setattr(run_jobs, "Cluster", FakeCluster)
    call_command("run_jobs", "--run-once")
    assert seen == [CLUSTER_CONN_MAX_AGE_S, before]
    assert connections["default"].settings_dict.get("CONN_MAX_AGE", 0) == before != CLUSTER_CONN_MAX_AGE_S


@pytest.mark.usefixtures("node")
def test_a_job_runs_through_django_q_with_its_counts_as_result():
    task_id = async_task("orders.jobs.expire_pending_orders")
    assert Success.objects.get(id=task_id).result == {"candidates": 0, "expired": 0}


def test_cluster_keeps_failures_and_never_replays_a_sweep():
    # A failed run is saved as a Failure (admin: "Failed tasks") and acknowledged, not
    # redelivered; a missed tick is not caught up; a task is killed before it could be retried.
    q = settings.Q_CLUSTER
    assert (q["ack_failures"], q["max_attempts"], q["catch_up"]) == (True, 1, False)
    assert q["timeout"] < q["retry"]


@pytest.mark.usefixtures("node")
def test_stored_successes_are_pruned_per_job_so_a_frequent_one_never_evicts_another(monkeypatch):
    from django_q.conf import Conf

    assert (settings.Q_CLUSTER["save_limit"], settings.Q_CLUSTER["save_limit_per"]) == (50, "func")
    monkeypatch.setattr(Conf, "SAVE_LIMIT", 2)
    rare = async_task("orders.jobs.cancel_timed_out_trades")
    frequent = [async_task("orders.jobs.expire_pending_orders") for _ in range(4)]

    kept = set(Success.objects.values_list("id", flat=True))
    assert rare in kept
    assert kept - {rare} < set(frequent)
    assert len(kept - {rare}) == 2


def test_the_node_imports_every_job_before_it_forks_the_cluster_and_starts_no_thread(settings):
    import threading

    from mostro_site.runtime.cluster import QUEUED_TASKS, preload_job_modules
    from orders.services.payout import PAYOUT_TASK

    threads = threading.active_count()
    names = preload_job_modules()
    assert names == sorted({job.func for job in declared_jobs()} | {PAYOUT_TASK, "orders.bonds.payout.bond_pay"}) + [
        settings.LIGHTNING_BACKEND
    ]
    assert set(QUEUED_TASKS) == {PAYOUT_TASK, "orders.bonds.payout.bond_pay"}
    assert threading.active_count() == threads  # imports only: a gRPC channel must not cross the fork


def test_run_jobs_imports_the_jobs_before_starting_the_cluster(monkeypatch):
    from mostro_site.management.commands import run_jobs as command

    seen = []
    monkeypatch.setattr(command, "preload_job_modules", lambda: seen.append("preload"))

    class FakeCluster:
        def start(self):
            seen.append("start")

        def stop(self):
            seen.append("stop")

    monkeypatch.setattr(command, "Cluster", FakeCluster)
    call_command("run_jobs", "--run-once")
    assert seen == ["preload", "start", "stop"]


@pytest.mark.django_db
def test_the_node_cluster_imports_the_jobs_before_it_forks(monkeypatch):
    import django_q.cluster

    from mostro_site.runtime import cluster

    seen = []
    monkeypatch.setattr(cluster, "preload_job_modules", lambda: seen.append("preload"))

    class FakeCluster:
        name = "fake"
        sentinel = None

        def __init__(self, broker):
            seen.append("created")

        def start(self):  # the real one forks the sentinel here
            seen.append("start")

    monkeypatch.setattr(django_q.cluster, "Cluster", FakeCluster)
    cluster.JobCluster().start()
    assert seen == ["preload", "created", "start"]


def test_the_workers_find_each_job_function_once(monkeypatch):
    """django-q2's worker resolves `task["func"]` with `pydoc.locate` before every task; a worker of
    the node's cluster answers from a cache from its start on (a miss is asked again, never cached)."""
    import pydoc

    import django_q.worker

    from mostro_site.ops import job_hooks
    from mostro_site.runtime import cluster
    from orders.services.payout import PAYOUT_TASK, payout_start

    monkeypatch.setattr(django_q.worker, "pydoc", pydoc)  # put back after the test
    monkeypatch.setattr(job_hooks.Conf, "SYNC", False)
    monkeypatch.setattr("mostro_site.ops.persist.start_for_process", lambda: None)
    monkeypatch.setattr(job_hooks, "lnd_network_fetch", lambda: None)
    monkeypatch.setattr(job_hooks, "set_process_role", lambda role: None)
    job_hooks.on_spawn(sender="django_q", proc_name="Worker-1")  # what a new worker runs first
    cluster._located.cache_clear()
    asked = []
    real = pydoc.locate
    monkeypatch.setattr(pydoc, "locate", lambda path, forceload=0: asked.append(path) or real(path, forceload))
    worker_pydoc = django_q.worker.pydoc
    assert worker_pydoc.locate(PAYOUT_TASK) is payout_start
    assert worker_pydoc.locate(PAYOUT_TASK) is payout_start
    assert worker_pydoc.locate("orders.services.payout.no_such_job") is None
    assert worker_pydoc.locate("orders.services.payout.no_such_job") is None
    assert asked == [PAYOUT_TASK, "orders.services.payout.no_such_job", "orders.services.payout.no_such_job"]
    assert worker_pydoc.getdoc is pydoc.getdoc  # everything else is pydoc's own


def test_a_synchronous_cluster_keeps_pydocs_locate(monkeypatch):
    import pydoc

    import django_q.worker

    from mostro_site.ops import job_hooks

    monkeypatch.setattr(django_q.worker, "pydoc", pydoc)
    monkeypatch.setattr(job_hooks.Conf, "SYNC", True)
    job_hooks.on_spawn(sender="django_q", proc_name="Worker-1")
    assert django_q.worker.pydoc is pydoc
