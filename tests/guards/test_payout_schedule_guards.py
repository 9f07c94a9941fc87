"""Where the payout task is queued: inside the release's transaction only when the broker is
django-q2's ORM broker on the same database and a real cluster runs it; otherwise after the
commit, and a broker failure then never undoes (or fails) the committed release."""

import pytest
from django.db import transaction
from django_q.conf import Conf

from orders.services import payout
from orders.services.payout import payout_schedule

pytestmark = pytest.mark.django_db(transaction=True)
ORDER_ID = "0f5e1f27-5c83-4f0c-9d86-6a5e1a3f2b11"


@pytest.fixture
def tasks(monkeypatch) -> list[str]:
    ran: list[str] = []
    monkeypatch.setattr(payout, "async_task", lambda *args, **kwargs: ran.append(kwargs["order_id"]))
    # Inside the transaction the package is built by `task_enqueue` (async_task's, leaner).
    monkeypatch.setattr(payout, "task_enqueue", lambda **kwargs: ran.append(kwargs["kwargs"]["order_id"]))
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", "default")
    monkeypatch.setattr(Conf, "BROKER_CLASS", None)
    return ran


@pytest.mark.parametrize(
    ("_case", "setting", "value"),
    [("another broker", "ORM", None), ("a custom broker class", "BROKER_CLASS", "x.Broker")],
)
def test_a_broker_outside_the_transaction_waits_for_the_commit(_case, setting, value, tasks, monkeypatch):
    monkeypatch.setattr(Conf, setting, value)
    with transaction.atomic():
        payout_schedule(order_id=ORDER_ID, request_id=1)
        assert tasks == []
    assert tasks == [ORDER_ID]


@pytest.mark.parametrize("broker_class", [None, "mostro_site.runtime.job_broker.WakeableORM"])
def test_the_orm_broker_on_this_database_queues_inside_the_transaction(broker_class, tasks, monkeypatch):
    monkeypatch.setattr(Conf, "BROKER_CLASS", broker_class)
    with transaction.atomic():
        payout_schedule(order_id=ORDER_ID, request_id=1)
        assert tasks == [ORDER_ID]


def test_a_broker_failure_after_the_commit_is_logged_not_raised(monkeypatch, caplog):
    monkeypatch.setattr(Conf, "SYNC", True)

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(payout, "async_task", broker_down)
    with transaction.atomic():
        payout_schedule(order_id=ORDER_ID, request_id=1)
    # The release committed; the retry sweep picks the orphan up later.
    assert [r.levelname for r in caplog.records if "broker down" in r.getMessage() or r.exc_info] == ["ERROR"]
