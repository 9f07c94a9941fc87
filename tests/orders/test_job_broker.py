"""The job queue's broker (mostro_site/runtime/job_broker.py): django-q2's ORM broker on plain
SQL, with a wake-up hint sent when an enqueuing transaction commits, or at the end of the
committing thread's `hints_held()` block (nostrbridge/wake.py: the release's settle)."""

import select
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ

from mostro_site.runtime import cluster
from mostro_site.runtime.job_broker import WakeableORM, wake_address
from nostrbridge import statements
from nostrbridge.wake import hints_held

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker(monkeypatch):
    monkeypatch.setattr(Conf, "POLL", 0)  # an empty dequeue returns at once
    made = WakeableORM(list_key="test-queue")
    yield made
    if made._listener is not None:
        made._listener.close()


def _hinted(broker: WakeableORM) -> bool:
    readable, _, _ = select.select([broker._listener], [], [], 0)
    if readable:
        broker._listener.recv(16)
    return bool(readable)


def test_a_task_is_taken_once_and_locked_until_the_retry(broker):
    task_id = broker.enqueue("payload-1")
    before = timezone.now()

    assert broker.dequeue() == [(task_id, "payload-1")]

    row = OrmQ.objects.get(pk=task_id)
    assert (row.key, row.payload) == ("test-queue", "payload-1")
    assert before + timedelta(seconds=Conf.RETRY) <= row.lock <= timezone.now() + timedelta(seconds=Conf.RETRY)
    assert broker.dequeue() is None  # locked: not handed out again


def test_tasks_come_out_oldest_first_one_per_poll(broker):
    first, second = broker.enqueue("a"), broker.enqueue("b")

    assert [broker.dequeue(), broker.dequeue(), broker.dequeue()] == [[(first, "a")], [(second, "b")], None]


def test_an_expired_lock_is_taken_again_and_another_queue_is_left_alone(broker):
    task_id = broker.enqueue("retry-me")
    other = WakeableORM(list_key="other-queue").enqueue("not-mine")
    OrmQ.objects.filter(pk=task_id).update(lock=timezone.now() - timedelta(seconds=1))

    assert broker.dequeue() == [(task_id, "retry-me")]
    assert OrmQ.objects.get(pk=other).lock <= timezone.now()  # untouched


def test_a_lock_moved_by_another_cluster_in_between_is_not_taken(broker, monkeypatch):
    task_id = broker.enqueue("contested")
    real_run = statements.run_statement
    stolen = []

    def steal_first(db, sql, params, **kwargs):
        if sql.startswith("UPDATE") and not stolen:  # another cluster claims the row after our read
            stolen.append(task_id)
            OrmQ.objects.filter(pk=task_id).update(lock=timezone.now() + timedelta(seconds=60))
        return real_run(db, sql, params, **kwargs)

    monkeypatch.setattr(statements, "run_statement", steal_first)  # the broker's statements go through it

    assert broker.dequeue() == []
    assert stolen == [task_id]


def test_on_sqlite_the_queue_is_read_claimed_and_acknowledged_without_a_django_cursor(broker, monkeypatch):
    """The pusher's and the monitor's statements run on the connection's kept driver cursor."""
    from django.db import connections

    connection = connections[Conf.ORM]
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL runs them through Django's cursor, as before")
    # The cluster's processes keep their connection (`persistent_connections`); with 0 every
    # poll's `close_old_connections` closes it and the next statement connects anew.
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", cluster.CLUSTER_CONN_MAX_AGE_S)
    broker.enqueue("first")
    broker.acknowledge(broker.dequeue()[0][0])  # connected, the kept cursor made
    task_id = broker.enqueue("second")
    made = []
    real_cursor = type(connection).cursor
    monkeypatch.setattr(type(connection), "cursor", lambda self: made.append(self.alias) or real_cursor(self))

    assert broker.dequeue() == [(task_id, "second")]
    broker.acknowledge(task_id)
    assert made == []

    assert list(OrmQ.objects.values_list("pk", flat=True)) == []


def test_acknowledge_deletes_only_its_task(broker):
    done, waiting = broker.enqueue("done"), broker.enqueue("waiting")

    broker.acknowledge(done)

    assert list(OrmQ.objects.values_list("pk", flat=True)) == [waiting]


def test_the_hint_is_sent_when_the_enqueuing_transaction_commits(broker):
    assert broker.dequeue() is None  # the pusher listens from its first poll on
    with transaction.atomic():
        broker.enqueue("payout")
        assert not _hinted(broker)  # not before the commit: the worker could not see the row yet
    assert _hinted(broker)
    assert not _hinted(broker)  # one hint per task


def test_a_rolled_back_enqueue_leaves_no_task_and_no_hint(broker):
    assert broker.dequeue() is None

    def release_that_fails() -> None:
        with transaction.atomic():
            broker.enqueue("payout")
            raise RuntimeError("release failed")

    with pytest.raises(RuntimeError):
        release_that_fails()
    assert not _hinted(broker)
    assert OrmQ.objects.count() == 0


def test_inside_hints_held_the_commit_hint_waits_for_the_end_of_the_block(broker):
    assert broker.dequeue() is None
    with hints_held():
        with transaction.atomic():
            task_id = broker.enqueue("payout")
        assert OrmQ.objects.filter(pk=task_id).exists()  # the row is committed with the decision
        assert not _hinted(broker)  # the release's settle at LND runs here
    assert _hinted(broker)
    assert not _hinted(broker)


def test_a_block_ended_by_an_exception_still_sends_its_hint(broker):
    assert broker.dequeue() is None

    def release_whose_settle_raises() -> None:
        with hints_held():
            with transaction.atomic():
                broker.enqueue("payout")
            raise RuntimeError("the settle raised")

    with pytest.raises(RuntimeError):
        release_whose_settle_raises()
    assert _hinted(broker)
    assert OrmQ.objects.count() == 1


def test_a_rolled_back_enqueue_inside_the_block_sends_no_hint(broker):
    assert broker.dequeue() is None

    def release_refused() -> None:
        with hints_held(), transaction.atomic():
            broker.enqueue("payout")
            raise RuntimeError("release refused")

    with pytest.raises(RuntimeError):
        release_refused()
    assert not _hinted(broker)
    assert OrmQ.objects.count() == 0


def test_a_commit_after_the_block_ended_hints_at_that_commit(broker):
    """The block's transaction is a savepoint of an outer one: its commit, and the hint, come later."""
    assert broker.dequeue() is None
    with transaction.atomic():
        with hints_held():
            with transaction.atomic():
                broker.enqueue("payout")
        assert not _hinted(broker)  # nothing committed yet
    assert _hinted(broker)
    assert not _hinted(broker)


def test_an_enqueue_in_autocommit_inside_the_block_hints_at_its_end(broker):
    assert broker.dequeue() is None
    with hints_held():
        broker.enqueue("sweep")
        assert not _hinted(broker)
    assert _hinted(broker)


def test_a_block_inside_another_sends_its_own_hints_at_its_own_end(broker):
    assert broker.dequeue() is None
    with hints_held():
        with hints_held():
            broker.enqueue("inner")
        assert _hinted(broker)
        broker.enqueue("outer")
        assert not _hinted(broker)
    assert _hinted(broker)


def test_hints_queued_while_polling_are_all_drained_by_one_wait(broker, monkeypatch):
    assert broker.dequeue() is None
    for _ in range(3):
        broker.enqueue("x")
    OrmQ.objects.all().delete()  # taken by someone else meanwhile
    monkeypatch.setattr(Conf, "POLL", 5)

    assert broker.dequeue() is None  # returns at once: hints were waiting
    assert not _hinted(broker)


def test_a_second_cluster_on_the_same_queue_polls_without_the_hint(broker):
    assert broker.dequeue() is None
    second = WakeableORM(list_key="test-queue")

    assert second._listen() is None
    assert second.dequeue() is None


def test_the_hint_address_names_the_database_and_the_queue(monkeypatch):
    mine = wake_address("test-queue")
    assert mine == wake_address("test-queue") != wake_address("other-queue")
    monkeypatch.setitem(settings.DATABASES["default"], "NAME", "another.db")
    assert wake_address("test-queue") != mine


def test_the_nodes_cluster_is_forked_with_the_slow_poll_and_this_process_keeps_its_own(monkeypatch):
    monkeypatch.setattr(Conf, "POLL", 0.2)
    with cluster.slower_idle_poll():
        assert Conf.POLL == cluster.EMBEDDED_POLL_S == 2.0
    assert Conf.POLL == 0.2
    monkeypatch.setattr(Conf, "POLL", 5.0)
    with cluster.slower_idle_poll():
        assert Conf.POLL == 5.0  # an operator's longer poll stays


def test_a_starting_cluster_takes_back_what_a_killed_one_held_and_nothing_else(broker):
    held = broker.enqueue("held by the dead cluster")
    waiting = broker.enqueue("waiting")
    other = WakeableORM(list_key="other-queue").enqueue("another queue's")
    future = timezone.now() + timedelta(seconds=Conf.RETRY)
    OrmQ.objects.filter(pk__in=[held, other]).update(lock=future)
    waiting_lock = OrmQ.objects.get(pk=waiting).lock

    assert broker.release_claims() == 1

    assert OrmQ.objects.get(pk=held).lock <= timezone.now()
    assert OrmQ.objects.get(pk=waiting).lock == waiting_lock
    assert OrmQ.objects.get(pk=other).lock == future
    assert broker.dequeue() == [(held, "held by the dead cluster")]


def test_enqueue_stores_the_row_django_q2_stores(broker):
    from django_q.brokers.orm import ORM

    before = timezone.now()
    ours = broker.enqueue("same-payload")
    theirs = ORM(list_key="test-queue").enqueue("same-payload")
    after = timezone.now()

    rows = {row.pk: row for row in OrmQ.objects.all()}
    assert sorted(rows) == [ours, theirs]
    assert ours < theirs
    assert (
        (rows[ours].key, rows[ours].payload)
        == (rows[theirs].key, rows[theirs].payload)
        == ("test-queue", "same-payload")
    )
    assert before <= rows[ours].lock <= rows[theirs].lock <= after
    assert broker.dequeue() == [(ours, "same-payload")]


def test_the_nodes_cluster_is_forked_with_the_lighter_task_path_and_this_process_keeps_its_own(monkeypatch):
    import django_q.cluster
    import django_q.queues

    monkeypatch.setattr(Conf, "BULK", 1)
    with cluster.lighter_task_path():
        assert Conf.BULK == cluster.EMBEDDED_BULK == 4
        assert django_q.cluster.Queue is cluster.TaskQueue
    assert (Conf.BULK, django_q.cluster.Queue) == (1, django_q.queues.Queue)


def test_the_pusher_takes_several_queued_tasks_with_one_read(broker, monkeypatch):
    monkeypatch.setattr(Conf, "BULK", cluster.EMBEDDED_BULK)
    ids = [broker.enqueue(f"task-{n}") for n in range(5)]
    assert broker.dequeue() == [(task_id, f"task-{n}") for n, task_id in enumerate(ids[:4])]
    assert broker.dequeue() == [(ids[4], "task-4")]
    assert broker.dequeue() is None


def test_a_bounded_task_queue_is_written_without_a_feeder_thread_across_processes():
    import multiprocessing
    import queue

    tasks = cluster.TaskQueue(maxsize=2)
    tasks.put({"id": "a"})
    assert tasks._thread is None  # no feeder thread: written by the caller
    tasks.put({"id": "b"})
    with pytest.raises(queue.Full):
        tasks.put({"id": "c"}, block=False)
    assert tasks.qsize() == 2
    assert [tasks.get(timeout=5), tasks.get(timeout=5)] == [{"id": "a"}, {"id": "b"}]
    assert tasks.qsize() == 0

    child = multiprocessing.get_context("fork").Process(target=_put_three, args=(tasks,))
    child.start()
    got = [tasks.get(timeout=10) for _ in range(3)]  # the child's third put waits for room
    child.join(10)
    assert (got, child.exitcode) == ([{"n": 0}, {"n": 1}, "STOP"], 0)

    results = cluster.TaskQueue()  # unbounded (the workers' results): multiprocessing's own put
    results.put("result")
    assert results._thread is not None
    assert results.get(timeout=5) == "result"
    results.close()
    results.join_thread()


def _put_three(tasks) -> None:
    for item in ({"n": 0}, {"n": 1}, "STOP"):
        tasks.put(item)


def test_a_task_row_deleted_in_a_rolled_back_transaction_stays_for_the_monitor(broker):
    from orders.services.payout_queue import task_row_ack_in_transaction, task_row_finished, task_row_started

    row = broker.enqueue("payout")
    task = {"func": "jobs.pay", "kwargs": {"order_id": "o-1"}, "ack_id": row}
    task_row_started(task)
    with pytest.raises(RuntimeError):
        task_row_ack_in_transaction(func="jobs.pay", order_id="o-1")  # only inside the task's transaction
    with transaction.atomic():
        assert task_row_ack_in_transaction(func="jobs.pay", order_id="o-2") is False  # another order's
        assert task_row_ack_in_transaction(func="jobs.pay", order_id="o-1") is True
        assert not OrmQ.objects.filter(pk=row).exists()
        transaction.set_rollback(True)
    task_row_finished(task)
    assert OrmQ.objects.filter(pk=row).exists()
    assert task["ack_id"] == row

    task_row_started(task)
    with transaction.atomic():
        assert task_row_ack_in_transaction(func="jobs.pay", order_id="o-1") is True
    task_row_finished(task)
    assert not OrmQ.objects.filter(pk=row).exists()
    assert "ack_id" not in task
    assert task_row_ack_in_transaction(func="jobs.pay", order_id="o-1") is False  # no task running
