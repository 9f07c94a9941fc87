"""What a handler receives for one inbound message, and how it finishes.

A handler's final write runs inside `ctx.atomic()`: the inbound row is marked done in the
same transaction as the state change and the outbox rows, so a crash can never apply a
message twice or lose its replies.
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.db import transaction

from nostrbridge.inbox import inbox_finish_or_hold
from nostrbridge.models import InboundStatus
from nostrbridge.protocol.enums import CantDoReason

# The transaction a service opens for its final step: `transaction.atomic` by default, or a
# handler's `ctx.atomic`, which also marks the inbound event done in that transaction.
Atomic = Callable[[], AbstractContextManager[object]]


class SilentDrop(Exception):
    """The spec says: log and do not reply (docs/PROTOCOL.md §Silent-drops).

    `cause`: a short fixed label for the metrics (`mostro_inbound_dropped_total`); the message
    may carry details (ids) and only goes to the log and the inbox row.
    """

    def __init__(self, message: str = "", *, cause: str = "handler") -> None:
        super().__init__(message)
        self.cause = cause


class RetryLater(Exception):
    """The handler waits on something outside (a Lightning-address check, a price fetch): the
    message goes back to the inbox for `seconds` instead of holding a handler thread; no
    reply yet. With `give_up`: a message received over `give_up_after_s` ago is answered with
    that cant-do instead, so a wait that never ends is still answered."""

    def __init__(
        self,
        message: str = "",
        *,
        seconds: float = 0.5,
        give_up_after_s: float | None = None,
        give_up: CantDoReason | None = None,
    ) -> None:
        super().__init__(message)
        self.seconds = seconds
        self.give_up_after_s = give_up_after_s
        self.give_up = give_up


class NeedsOwnTransaction(Exception):
    """Raised inside a group commit for a message whose handler may call the network (LND,
    price or LNURL servers) and so must not run inside a transaction: the bridge commits the
    group and then runs `dispatch_opened(ctx)` on its own, or hands it to its lane. Raised by
    the dispatcher before the handler runs, for a message the lane takes (queued behind one of
    its keys) too, or by a handler through `ctx.leave_group()` before it wrote anything."""

    def __init__(self, ctx: "InboundContext") -> None:
        super().__init__(ctx.action)
        self.ctx = ctx


@dataclass
class InboundContext:
    inbound_pk: int | None  # None when a service is driven outside the relay bridge (tests, admin)
    event_id: str
    sender: str  # trade pubkey (hex): replies go here
    identity: str  # identity pubkey (== sender in full-privacy mode)
    action: str
    request_id: int | None
    trade_index: int | None
    order_id: UUID | None
    payload: Any  # the parsed payload object (nostrbridge.protocol), or None
    message: Any = None  # the full parsed MessageKind
    created_at: int = 0
    finished: bool = field(default=False, init=False)
    # Set by the dispatcher: the handler runs inside the bridge's group commit (one transaction
    # around several messages, each handler's own transactions savepoints within it).
    grouped: bool = field(default=False, init=False)

    @property
    def full_privacy(self) -> bool:
        return self.identity == self.sender

    def leave_group(self) -> None:
        """A handler the bridge ran in its group commit (`BridgeWiring.group_commit_when` said
        this message stays in the database) that finds it must call the network after all (the
        configuration changed in between): the group commits without it, and it runs again on
        its own. Only before the handler wrote anything."""
        if self.grouped:
            raise NeedsOwnTransaction(self)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """The handler's final transaction; marks the inbound event done when it commits."""
        with transaction.atomic():
            yield
            self.mark_done()

    def mark_done(self, *, drop_reason: str = "") -> None:
        if self.inbound_pk is not None and not self.finished:
            inbox_finish_or_hold(
                pk=self.inbound_pk, status=InboundStatus.DONE, action=self.action, drop_reason=drop_reason
            )
        self.finished = True
