"""`db_call`: the bridge's database calls run in the one thread `sync_to_async(thread_sensitive=True)`
uses (so the process keeps one database thread and one connection there), in a copy of the
caller's context, and `async_to_sync` inside them runs on the bridge's loop."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest
from asgiref.sync import ThreadSensitiveContext, async_to_sync, sync_to_async

from nostrbridge.bridge.dbthread import db_call

TAG: contextvars.ContextVar[str] = contextvars.ContextVar("tag", default="")


def where() -> tuple[int, str]:
    TAG.set("changed in the thread")  # stays in the thread's copy of the context
    return threading.get_ident(), TAG.get()


async def test_db_call_runs_in_the_thread_sensitive_thread_with_the_callers_context():
    TAG.set("caller")
    seen: list[str] = []

    def read_tag() -> int:
        seen.append(TAG.get())
        return threading.get_ident()

    asgiref_thread = await sync_to_async(threading.get_ident, thread_sensitive=True)()
    ours = await db_call(read_tag)()
    thread, tag_after_set = await db_call(where)()

    assert ours == thread == asgiref_thread != threading.get_ident()
    assert seen == ["caller"]
    assert tag_after_set == "changed in the thread"
    assert TAG.get() == "caller"


async def test_async_to_sync_inside_a_db_call_runs_on_the_callers_loop():
    loop = asyncio.get_running_loop()

    async def which_loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    assert await db_call(lambda: async_to_sync(which_loop)())() is loop


async def test_inside_a_thread_sensitive_context_db_call_uses_its_executor():
    default_thread = await db_call(threading.get_ident)()
    async with ThreadSensitiveContext():
        inside = await db_call(threading.get_ident)()
        asgiref_inside = await sync_to_async(threading.get_ident, thread_sensitive=True)()

    assert inside == asgiref_inside != default_thread


async def test_a_failing_call_raises_in_the_caller():
    def fails() -> None:
        raise LookupError("no such row")

    with pytest.raises(LookupError, match="no such row"):
        await db_call(fails)()
