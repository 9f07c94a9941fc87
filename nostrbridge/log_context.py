"""What a log line is about: order id, event id, action, job and the process role.

Context variables, so the value follows the work: the bridge dispatcher sets them for one
inbound event (they travel into the database thread with `sync_to_async`'s context copy), the
job-cluster hooks for one task, the web middleware for one request. The shell's log formatter
(`mostro_site.ops.log_format`) reads them. No Django here: any layer may set them.

The role has a per-process default (`set_process_role`, called by each entry point) and a
context override for the all-in-one node, where the bridge, the watcher and the web share
one process and tag their own lines.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

ORDER_ID: ContextVar[str | None] = ContextVar("mostro_order_id", default=None)
EVENT_ID: ContextVar[str | None] = ContextVar("mostro_event_id", default=None)
ACTION: ContextVar[str | None] = ContextVar("mostro_action", default=None)
JOB: ContextVar[str | None] = ContextVar("mostro_job", default=None)
ROLE: ContextVar[str | None] = ContextVar("mostro_role", default=None)

_VARS: dict[str, ContextVar[str | None]] = {
    "order_id": ORDER_ID,
    "event_id": EVENT_ID,
    "action": ACTION,
    "job": JOB,
    "role": ROLE,
}
_process_role = "cli"


def set_process_role(role: str) -> None:
    """The role of this process's lines unless a context says otherwise (web, bridge, ...)."""
    global _process_role
    _process_role = role


def process_role() -> str:
    return _process_role


def current_role() -> str:
    return ROLE.get() or _process_role


def bind(**fields: object) -> list[Token]:
    """Set the given fields (None values are skipped); returns the tokens for `unbind`."""
    tokens = []
    for name, value in fields.items():
        if value is not None:
            tokens.append(_VARS[name].set(str(value)))
    return tokens


def unbind(tokens: list[Token]) -> None:
    for token in reversed(tokens):
        token.var.reset(token)


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """`with log_context(order_id=..., action=...):` tags every line logged inside."""
    tokens = bind(**fields)
    try:
        yield
    finally:
        unbind(tokens)


def context_fields() -> dict[str, str | None]:
    """The fields of the current context, every key present (None when unknown)."""
    fields = {name: var.get() for name, var in _VARS.items()}
    fields["role"] = current_role()
    return fields
