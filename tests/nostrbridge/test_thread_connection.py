"""`db_connection` is `connections["default"]`, whatever Django's handler holds at the moment of
the call: nothing is cached, so a replaced connection, a new handler storage or a running event
loop is seen at once."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.local import Local
from django.db import DEFAULT_DB_ALIAS, connections

from nostrbridge import thread_connection
from nostrbridge.thread_connection import db_connection


def test_the_quick_read_is_on_for_the_installed_asgiref():
    # Otherwise every call takes Django's lookup: right, but the saving is gone unnoticed.
    assert thread_connection._FAST_LOCAL is type(connections._connections)


def test_the_threads_own_connection():
    assert db_connection() is connections[DEFAULT_DB_ALIAS]
    assert db_connection() is db_connection()

    seen: list[tuple[object, object]] = []

    def other_thread() -> None:
        try:
            seen.append((db_connection(), connections[DEFAULT_DB_ALIAS]))
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()

    ((theirs, django_theirs),) = seen
    assert theirs is django_theirs
    assert theirs is not connections[DEFAULT_DB_ALIAS]


def test_a_connection_made_in_this_thread_first_by_the_quick_read():
    seen: list[tuple[object, object, object]] = []

    def fresh_thread() -> None:  # no connection yet: Django's lookup makes it
        first = db_connection()
        seen.append((first, db_connection(), connections[DEFAULT_DB_ALIAS]))

    thread = threading.Thread(target=fresh_thread)
    thread.start()
    thread.join()

    ((first, second, django_view),) = seen
    assert first is second is django_view


def test_a_replaced_or_deleted_connection_is_seen_at_the_next_call():
    original = connections[DEFAULT_DB_ALIAS]
    stand_in = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        connections[DEFAULT_DB_ALIAS] = stand_in
        assert db_connection() is stand_in

        del connections[DEFAULT_DB_ALIAS]
        remade = db_connection()
        assert remade is connections[DEFAULT_DB_ALIAS]
        assert remade is not stand_in
        assert remade is not original
    finally:
        connections[DEFAULT_DB_ALIAS] = original
    assert db_connection() is original


def test_a_new_storage_on_the_handler_is_seen(monkeypatch):
    original = connections[DEFAULT_DB_ALIAS]
    monkeypatch.setattr(connections, "_connections", Local(thread_critical=True))

    fresh = db_connection()

    assert fresh is connections[DEFAULT_DB_ALIAS]
    assert fresh is not original


def test_with_a_running_loop_djangos_lookup_answers():
    """In an event loop asgiref keeps connections per context: `db_connection` returns that
    context's, never the thread's plain one."""
    sync_side = connections[DEFAULT_DB_ALIAS]

    async def inside() -> tuple[object, object]:
        return db_connection(), connections[DEFAULT_DB_ALIAS]

    ours, djangos = asyncio.run(inside())

    assert ours is djangos
    assert ours is not sync_side
    assert db_connection() is sync_side


@pytest.mark.django_db(transaction=True)
def test_close_all_keeps_the_wrapper_and_it_reconnects():
    wrapper = db_connection()
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")
    connections.close_all()

    assert db_connection() is wrapper
    with db_connection().cursor() as cursor:
        cursor.execute("SELECT 2")
        assert cursor.fetchone() == (2,)
