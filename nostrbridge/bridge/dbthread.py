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

import asyncio
import contextvars
import functools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import AsyncToSync, SyncToAsync, sync_to_async
from django.db import DatabaseError, close_old_connections

P = ParamSpec("P")
R = TypeVar("R")

CLOSE_OLD_CONNECTIONS_EVERY_S = 30.0
_last_closed = 0.0  # only touched from the single database thread


def db_call(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`await db_call(func)(*args)` runs `func` in the bridge's database thread."""

    # Built at every call site's every trip (`await db_call(f)(…)`): no `functools.wraps` and no
    # `sync_to_async` object unless its case arises, ~8 a trade (docs/PERFORMANCE.md, twelfth round).
    def in_thread(*args: P.args, **kwargs: P.kwargs) -> R:
        _close_old_connections_now_and_then()
        try:
            return func(*args, **kwargs)
        except DatabaseError:
            close_old_connections()  # drops a broken connection at once
            raise

    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        if not _single_thread_applies(loop):
            return await sync_to_async(in_thread, thread_sensitive=True)(*args, **kwargs)
        # What sync_to_async does in this case, without its per-call machinery (a shielded
        # future, the deadlock flag, copying the context back, three wrappers): a fifth of the
        # event loop's share of a trip (docs/PERFORMANCE.md). Same thread, same context copy;
        # a cancelled caller stops waiting, as there.
        context = contextvars.copy_context()
        task = functools.partial(context.run, _in_single_thread, loop, in_thread, args, kwargs)
        return await loop.run_in_executor(SyncToAsync.single_thread_executor, task)

    return call


def _single_thread_applies(loop: asyncio.AbstractEventLoop) -> bool:
    """Would `sync_to_async(thread_sensitive=True)` run the call in asgiref's single thread here
    (no outer `async_to_sync` thread, no `ThreadSensitiveContext`, no loop-bound executor)?"""
    return (
        getattr(AsyncToSync.executors, "current", None) is None
        and SyncToAsync.thread_sensitive_context.get(None) is None
        and loop not in AsyncToSync.loop_thread_executors
    )


def _in_single_thread(loop: asyncio.AbstractEventLoop, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    # As asgiref's thread handler: `async_to_sync` called in this thread runs on the bridge's loop.
    SyncToAsync.threadlocal.main_event_loop = loop
    SyncToAsync.threadlocal.main_event_loop_pid = os.getpid()
    return func(*args, **kwargs)


def _close_old_connections_now_and_then() -> None:
    global _last_closed
    now = time.monotonic()
    if now - _last_closed >= CLOSE_OLD_CONNECTIONS_EVERY_S:
        _last_closed = now
        close_old_connections()
