"""The buyer-payout task and its transaction (the node change made for `bench_trades.py`).

With django-q2's ORM broker and a real (not synchronous) cluster, `payout_schedule` writes the
queue row inside the release's transaction: it exists exactly when the release committed. A
synchronous cluster (the test settings) keeps waiting for the commit, since it would run the
payout, and its LND calls, inside the transaction. Successful payout tasks are not stored.
"""

import pytest
from django.db import transaction
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from mostro_site.runtime import job_broker
from orders.services.payout import PAYOUT_TASK, payout_schedule

pytestmark = pytest.mark.django_db(transaction=True)
ORDER_ID = "0f5e1f27-5c83-4f0c-9d86-6a5e1a3f2b11"


class Rollback(Exception):
    pass


@pytest.fixture
def real_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", "default")


def queued() -> list[dict]:
    return [SignedPackage.loads(row.payload) for row in OrmQ.objects.all()]


def test_the_queue_row_is_written_by_the_releases_transaction(real_cluster: None, monkeypatch):
    hints: list[str | None] = []
    monkeypatch.setattr(job_broker, "machine_hint", hints.append)
    with transaction.atomic():
        payout_schedule(order_id=ORDER_ID, request_id=7)
        assert len(queued()) == 1  # already inside the transaction, not an on-commit hook
        assert hints == []  # the cluster's wake-up leaves with the commit, never before
    assert hints == [job_broker.wake_address(Conf.CLUSTER_NAME)]
    [task] = queued()
    assert (task["func"], task["kwargs"], task["name"], task["save"]) == (
        PAYOUT_TASK,
        {"order_id": ORDER_ID, "request_id": 7},
        f"payout-{ORDER_ID}",
        False,
    )


def test_a_rolled_back_release_leaves_no_payout_task(real_cluster: None):
    def release_that_fails_late() -> None:
        with transaction.atomic():
            payout_schedule(order_id=ORDER_ID, request_id=7)
            raise Rollback

    with pytest.raises(Rollback):
        release_that_fails_late()
    assert queued() == []


def test_outside_a_transaction_the_task_is_queued_at_once(real_cluster: None):
    payout_schedule(order_id=ORDER_ID, request_id=None)
    assert [task["kwargs"] for task in queued()] == [{"order_id": ORDER_ID, "request_id": None}]


def test_a_synchronous_cluster_still_waits_for_the_commit(monkeypatch: pytest.MonkeyPatch):
    ran = []
    monkeypatch.setattr("orders.services.payout.async_task", lambda *args, **kwargs: ran.append(kwargs))
    with transaction.atomic():
        payout_schedule(order_id=ORDER_ID, request_id=3)
        assert ran == []
    assert ran == [{"order_id": ORDER_ID, "request_id": 3, "task_name": f"payout-{ORDER_ID}", "save": False}]


def test_releases_share_one_broker_built_once(real_cluster: None, monkeypatch):
    from django_q.brokers import get_broker

    from orders.services import payout

    built = []

    def counted(list_key=None):
        built.append(list_key)
        return get_broker(list_key)

    monkeypatch.setattr(payout, "get_broker", counted)
    payout._queue_broker.cache_clear()
    try:
        for request_id in (1, 2):
            with transaction.atomic():
                payout_schedule(order_id=ORDER_ID, request_id=request_id)
    finally:
        payout._queue_broker.cache_clear()
    assert built == [Conf.CLUSTER_NAME]
    assert [
        (row.key, SignedPackage.loads(row.payload)["kwargs"]["request_id"]) for row in OrmQ.objects.order_by("pk")
    ] == [
        (Conf.CLUSTER_NAME, 1),
        (Conf.CLUSTER_NAME, 2),
    ]
