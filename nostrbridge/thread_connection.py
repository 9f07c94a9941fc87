"""This thread's default database connection, read where Django's own lookup reads it.

`connections["default"]` goes through asgiref's thread-critical `Local`, whose every read asks
`asyncio.get_running_loop()` which of its two storages to use; in a thread without an event
loop (the bridge's database thread, the trade steps' workers) that call raises and catches a
RuntimeError: about a microsecond per lookup, and a trade step's statements made a hundred of
them (docs/PERFORMANCE.md). `db_connection` reads the same storage without the exception:
with no running loop, the thread's plain `threading.local` that `Local` itself would read (the
same check, `asyncio._get_running_loop() is None`, asked without raising). Nothing is cached
here, so whatever replaces a thread's connection (`connections[alias] = …`, `del`, a new
`Local` on the handler) is seen at the next call; with a running loop, an asgiref whose
`Local` is laid out otherwise, or no connection made yet in this thread, Django's lookup runs.
"""

import threading
from asyncio import _get_running_loop
from typing import Any

from asgiref import local as asgiref_local
from django.db import DEFAULT_DB_ALIAS, connections


def _checked_local_type() -> type | None:
    """asgiref's thread-critical `Local` class if, in a thread without a running loop, it reads
    and writes the `threading.local` in its `_storage` (probed in a thread of its own), else None."""
    probe = asgiref_local.Local(thread_critical=True)
    storage = vars(probe).get("_storage")
    if not isinstance(storage, threading.local):
        return None
    seen: list[bool] = []

    def read_back() -> None:
        probe.value = marker = object()
        seen.append(getattr(storage, "value", None) is marker and probe.value is marker)

    thread = threading.Thread(target=read_back, name="db-connection-probe")
    thread.start()
    thread.join()
    return type(probe) if seen == [True] else None


_FAST_LOCAL = _checked_local_type()


def db_connection() -> Any:
    """This thread's default connection (`connections[DEFAULT_DB_ALIAS]`), the object itself:
    each `connection.x` is a lookup through Django's proxy, and a plain statement made dozens."""
    local: Any = connections._connections  # type: ignore[attr-defined]  # (Django's own storage)
    if type(local) is _FAST_LOCAL and _get_running_loop() is None:
        found = getattr(local._storage, DEFAULT_DB_ALIAS, None)  # type: ignore[attr-defined]
        if found is not None:
            return found
    return connections[DEFAULT_DB_ALIAS]
