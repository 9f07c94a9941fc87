"""Database calls from the bridge's event loop.

channels' `database_sync_to_async` runs `close_old_connections()` before and after every call;
with the default CONN_MAX_AGE of 0 that closes and reopens the database connection around each
call, which at hundreds of calls per second cost the bridge more than its SQL (closing the last
SQLite connection also checkpoints the WAL). `db_call` uses the same thread-sensitive executor
(one database thread per process, one connection; the network lane's threads have their own,
`nostrbridge.bridge.lane`) and runs the
same hygiene every CLOSE_OLD_CONNECTIONS_EVERY_S, and at once after a database error, so a
broken or server-closed connection is still replaced.
"""

import functools
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import DatabaseError, close_old_connections

P = ParamSpec("P")
R = TypeVar("R")

CLOSE_OLD_CONNECTIONS_EVERY_S = 30.0
_last_closed = 0.0  # only touched from the single database thread


def db_call(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`await db_call(func)(*args)` runs `func` in the bridge's database thread."""

    @functools.wraps(func)
    def in_thread(*args: P.args, **kwargs: P.kwargs) -> R:
        _close_old_connections_now_and_then()
        try:
            return func(*args, **kwargs)
        except DatabaseError:
            close_old_connections()  # drops a broken connection at once
            raise

    return sync_to_async(in_thread, thread_sensitive=True)


def _close_old_connections_now_and_then() -> None:
    global _last_closed
    now = time.monotonic()
    if now - _last_closed >= CLOSE_OLD_CONNECTIONS_EVERY_S:
        _last_closed = now
        close_old_connections()
