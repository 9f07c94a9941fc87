"""A job acknowledging its own django-q2 queue row in the transaction that ends its work.

django-q2's monitor acknowledges a finished task by deleting its queue row: on SQLite a write
transaction of its own for every payout, queued behind the node's other writers. The payout
deletes its row instead inside its success transaction (`payout._record_success`), so the row
goes exactly when the trade's end commits; the task then reaches the monitor without its
`ack_id`, and django-q2's monitor acknowledges only a task that has one. A payout that does not
end the trade (skipped, failed, pending) keeps its row for the monitor, as before.

A worker runs one task at a time in its main thread; `mostro_site.ops.job_hooks` tells this
module which (`task_row_started`, from django-q2's `pre_execute`) and, after the task and before
the worker hands it to the monitor, lets it drop the `ack_id` (`task_row_finished`).
"""

import functools
import uuid
from typing import Any

from django import db
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signals import pre_enqueue
from django_q.signing import SignedPackage

from nostrbridge import statements

_running: dict[str, Any] = {}  # the task this worker runs now, as django-q2's pusher handed it
_acked: set[int] = set()  # its queue row, once a transaction that deleted it committed


def task_row_started(task: dict) -> None:
    _running.clear()
    _running.update(ack_id=task.get("ack_id"), func=task.get("func"), kwargs=task.get("kwargs") or {})


def task_row_finished(task: dict) -> None:
    """`task` is the dict the worker puts on the monitor's queue next."""
    ack_id = _running.get("ack_id")
    _running.clear()
    if ack_id is not None and ack_id in _acked:
        _acked.discard(ack_id)
        task.pop("ack_id", None)


def task_row_ack_in_transaction(*, func: str, **kwargs: Any) -> bool:
    """Inside the running task's own transaction: delete its queue row there, when the running
    task is `func` with these keyword arguments (a sweep calling the same code goes on after it
    and keeps its row for the monitor). Nothing outside a worker of this database's ORM broker."""
    ack_id = _running.get("ack_id")
    if ack_id is None or _running.get("func") != func or not _queue_here():
        return False
    if any(_running["kwargs"].get(name) != value for name, value in kwargs.items()):
        return False
    connection = db.connections[Conf.ORM]
    if not connection.in_atomic_block:
        raise RuntimeError("task_row_ack_in_transaction must run inside the task's transaction")
    statements.run_statement(connection, _delete_sql(Conf.ORM), [ack_id])
    transaction.on_commit(lambda: _acked.add(ack_id), using=Conf.ORM)
    return True


def _queue_here() -> bool:
    """The cluster's broker keeps its queue in the default database (the node's configuration)."""
    return Conf.ORM == DEFAULT_DB_ALIAS and _is_orm_broker(Conf.BROKER_CLASS)


@functools.cache
def _is_orm_broker(broker_class: str | None) -> bool:
    return not broker_class or issubclass(import_string(broker_class), ORM)


@functools.cache
def _delete_sql(alias: str) -> str:
    """The broker's acknowledgement (`WakeableORM.acknowledge`): one DELETE by primary key."""
    quote = db.connections[alias].ops.quote_name
    return f"DELETE FROM {quote(OrmQ._meta.db_table)} WHERE {quote(OrmQ._meta.pk.column)} = %s"  # noqa: S608


def task_enqueue(*, func: str, name: str, kwargs: dict[str, Any], broker: ORM, save: bool) -> int:
    """django-q2's `async_task` for a keyword-only task on a real (not synchronous) cluster: the
    same package (keys, order, values), the same `pre_enqueue` signal, the same signing and the
    broker's `enqueue`, without what the release's lane paid for nothing there: a human-readable
    name made from the id (ours is given), the copy and scan of the keyword arguments for the
    options, the broker lookup and an info line formatted for every task. A test compares the
    package with `async_task`'s."""
    task: dict[str, Any] = {"id": uuid.uuid4().hex, "name": name, "func": func, "args": (), "save": save}
    if Conf.CACHED:
        task["cached"] = Conf.CACHED
    if Conf.ACK_FAILURES:
        task["ack_failure"] = Conf.ACK_FAILURES
    task["kwargs"] = kwargs
    task["started"] = timezone.now()
    pre_enqueue.send(sender="django_q", task=task)
    return broker.enqueue(SignedPackage.dumps(task))
