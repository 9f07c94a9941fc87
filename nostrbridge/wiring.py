"""What the bridge needs from the apps above it, handed over by the project's composition root.

The bridge sits below orders and disputes and never imports them. `settings.MOSTRO_BRIDGE_WIRING`
names the function that builds this (`mostro_site.wiring.bridge_wiring`), loaded on first use:
the one place where actions are wired to handlers (mostrod's `app.rs` dispatch match).
"""

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from nostrbridge.context import InboundContext

Handler = Callable[[InboundContext], None]


@dataclass(frozen=True)
class BridgeWiring:
    handlers: Mapping[str, Handler]  # protocol action -> handle_<action>(ctx)
    # The first-contact gate (docs/PROTOCOL.md §Intake): a trade key the node already deals with.
    is_known_trade_key: Callable[[str], bool]
    # `--periodic-jobs`: republish order events that reached no relay; returns how many.
    reconcile_order_events: Callable[[], int]
    # Relay events for an app rather than the node's inbox (the dispute chat): factories of the
    # hooks `nostrbridge.bridge.side.SideChannel` drives.
    side_channels: tuple[Callable[[], Any], ...] = ()
    # Actions whose handlers only touch the database (no LND, HTTP or other network call): the
    # bridge may run them inside its group commit (`nostrbridge.bridge.group`). Every other
    # action runs in its own transactions, as the handler opens them.
    group_commit_actions: frozenset[str] = frozenset()
    # Actions whose handlers leave the database only in some cases: a predicate that tells from
    # the message (and the node's configuration) whether this one stays. A handler that finds
    # otherwise after all calls `ctx.leave_group()` before writing anything.
    group_commit_when: Mapping[str, Callable[[InboundContext], bool]] = field(default_factory=dict)

    def stays_in_database(self, ctx: InboundContext) -> bool:
        """May this message's handler run inside the bridge's group commit?"""
        if ctx.action in self.group_commit_actions:
            return True
        decides = self.group_commit_when.get(ctx.action)
        return decides is not None and decides(ctx)


@functools.lru_cache(maxsize=1)
def bridge_wiring() -> BridgeWiring:
    return import_string(settings.MOSTRO_BRIDGE_WIRING)()


def get_handler(action: str) -> Handler | None:
    return bridge_wiring().handlers.get(action)
