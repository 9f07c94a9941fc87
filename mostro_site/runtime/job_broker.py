"""django-q2's ORM broker with a wake-up: a queued task starts at once, the idle poll is slow.

django-q2's pusher polls the queue table; with its ORM broker an empty poll sleeps `poll`
seconds. At 0.2 s that poll was 15 % of the job cluster's CPU in a trade run (idle or not),
and a payout queued by a release still waited up to 0.2 s, more on a busy machine, before
a worker saw it (the release → purchase-completed p99 of the light-load benchmark).

`WakeableORM` is the same broker (same table, same claim by `lock` UPDATE, same
acknowledgements), plus a hint: `enqueue` sends one datagram, after the enqueuing
transaction commits, to a Unix socket the pusher listens on while its queue is empty; the
pusher wakes and polls at once. The queue row stays the source of truth: a lost hint (the
pusher not listening yet, another machine, a full socket buffer) costs at most one poll
interval, never a task, and a rolled-back enqueue sends nothing.

The socket lives in Linux's abstract namespace (no file to clean up), named after the
database and the queue, so two nodes on one machine never wake each other; a second
cluster on the same queue cannot bind the name and simply polls. Elsewhere than Linux the
broker behaves as django-q2's own.

The release and the admin settle commit the payout's row with their decision, then settle the
escrow at LND: they run both inside `nostrbridge.wake.hints_held()` (through
`orders.services.escrow_reconcile.escrow_settle_after`), so their hint leaves after
the settle returned (or failed), not at the commit, and the payout finds the escrow settled
instead of settling it again. Every other enqueue hints at its commit.
"""

import functools
import hashlib
import logging
import os
import select
import socket
import sys
import time
from datetime import timedelta

from django import db
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

from nostrbridge import statements
from nostrbridge.wake import send_hint_or_hold

logger = logging.getLogger(__name__)


def wake_address(list_key: str) -> str | None:
    """The abstract socket name of this database's queue `list_key` (None: no wake-up here)."""
    if not sys.platform.startswith("linux"):
        return None
    database = settings.DATABASES[Conf.ORM]
    identity = "|".join(str(database.get(key, "")) for key in ("ENGINE", "HOST", "PORT", "NAME"))
    return "\0mostro-jobs-" + hashlib.sha256(f"{identity}|{list_key}".encode()).hexdigest()[:32]


def machine_hint(address: str | None) -> None:
    """One datagram to `address`, never blocking, never failing; held to the end of the thread's
    `nostrbridge.wake.hints_held()` block if one is open (the release's settle)."""
    if address is not None:
        send_hint_or_hold(address)


def drain_hints(listener: socket.socket) -> None:
    """Every queued hint at once (the socket is non-blocking): one poll answers them all."""
    try:
        while listener.recv(16):
            pass
    except OSError:
        pass


class WakeableORM(ORM):
    def __init__(self, list_key: str | None = None) -> None:
        super().__init__(list_key=list_key)
        self._address = wake_address(self.list_key)
        self._listener: socket.socket | None = None
        self._listener_pid = -1

    def __setstate__(self, state: tuple) -> None:  # a broker handed to a spawned process
        super().__setstate__(state)
        self._address = wake_address(self.list_key)
        self._listener = None
        self._listener_pid = -1

    def enqueue(self, task: str) -> int:
        if Conf.ORM == DEFAULT_DB_ALIAS:
            # django-q2's row (key, payload, lock = now) as one plain INSERT: its ORM `create()`
            # was half of the release's enqueue in mostrod (docs/PERFORMANCE.md).
            key = self.list_key or Conf.CLUSTER_NAME
            package_id = statements.insert_row_pk(OrmQ, key=key, payload=task, lock=timezone.now())
        else:
            package_id = super().enqueue(task)
        if self._address is not None:
            address = self._address
            # Right away in autocommit; after the commit inside a transaction (the release's, which
            # holds it until its settle at LND returned: `hints_held`).
            transaction.on_commit(lambda: machine_hint(address), using=Conf.ORM)
        return package_id

    def release_claims(self) -> int:
        """At the start of the node's cluster: tasks a previous cluster took but never
        acknowledged (it died with them: the node was killed) go back to the queue now instead of
        after django-q2's `retry` (300 s). Running one again is harmless by design: the payout
        and the dev fee start with their guarded claims, the sweeps are idempotent."""
        now = timezone.now()
        return self.get_connection().filter(key=self.list_key, lock__gt=now).update(lock=now)

    def dequeue(self) -> list[tuple[int, str]] | None:
        """django-q2's ORM `dequeue` on plain SQL, waiting for a hint instead of sleeping when
        the queue is empty. The claim is django-q2's: a row is taken by moving its `lock` from
        the value read to now + `retry`, so two clusters never both take it."""
        listening = self._listen()  # before the query: a hint sent after it is not lost
        connection = db.connections[Conf.ORM]
        if connection.get_autocommit():
            db.close_old_connections()  # as django-q2's broker: a broken or too old connection goes
        lock = OrmQ._meta.get_field("lock")
        now = lock.get_db_prep_value(timezone.now(), connection)
        # `run_statement`: on SQLite the connection's kept driver cursor (Django's cursor per call,
        # its creation and `%s` rewrite, was a fifth of the pusher's and the monitor's CPU).
        rows = statements.run_statement(
            connection, _statements(Conf.ORM)[0], [self.list_key, now, Conf.BULK], fetch=True
        )
        if rows:
            until = lock.get_db_prep_value(timezone.now() + timedelta(seconds=Conf.RETRY), connection)
            claimed = []
            for task_id, payload, locked in rows:
                # `locked` goes back exactly as the driver read it, so the equality holds.
                if statements.run_statement(connection, _statements(Conf.ORM)[1], [until, task_id, locked]):
                    claimed.append((task_id, payload))
            return claimed
        if listening is None:
            time.sleep(Conf.POLL)
        else:
            readable, _, _ = select.select([listening], [], [], Conf.POLL)
            if readable:
                drain_hints(listening)
        return None

    def acknowledge(self, task_id: int) -> None:
        """One DELETE by primary key (django-q2's goes through the ORM's deletion collector:
        most of the cluster monitor's CPU), on the kept driver cursor as `dequeue`."""
        statements.run_statement(db.connections[Conf.ORM], _statements(Conf.ORM)[2], [task_id])

    def _listen(self) -> socket.socket | None:
        """The pusher's socket, bound in the process that dequeues (None: poll only)."""
        if self._address is None:
            return None
        if self._listener_pid != os.getpid():
            self._listener_pid = os.getpid()
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                listener.bind(self._address)
            except OSError:
                listener.close()
                logger.info("job queue wake-up already bound by another cluster: polling every %s s", Conf.POLL)
                self._listener = None
            else:
                listener.setblocking(False)
                self._listener = listener
        return self._listener


@functools.cache
def _statements(alias: str) -> tuple[str, str, str]:
    """The queue's claim read, claim and acknowledgement, for the database `alias` (names from
    the model's metadata, values always parameters)."""
    quote = db.connections[alias].ops.quote_name
    table = quote(OrmQ._meta.db_table)
    pk, key, payload, lock = (quote(OrmQ._meta.get_field(name).column) for name in ("id", "key", "payload", "lock"))
    return (
        f"SELECT {pk}, {payload}, {lock} FROM {table} WHERE {key} = %s AND {lock} < %s ORDER BY {pk} LIMIT %s",  # noqa: S608
        f"UPDATE {table} SET {lock} = %s WHERE {pk} = %s AND {lock} = %s",  # noqa: S608
        f"DELETE FROM {table} WHERE {pk} = %s",  # noqa: S608
    )
