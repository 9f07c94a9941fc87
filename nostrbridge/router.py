"""Action → handler: the one explicit routing table (mostrod `app.rs` dispatch match)."""

import functools
from collections.abc import Callable

from nostrbridge.context import InboundContext

Handler = Callable[[InboundContext], None]


@functools.lru_cache(maxsize=1)
def routes() -> dict[str, Handler]:
    from disputes.handlers import HANDLERS as DISPUTE_HANDLERS
    from orders.handlers import HANDLERS as ORDER_HANDLERS

    return {**ORDER_HANDLERS, **DISPUTE_HANDLERS}


def get_handler(action: str) -> Handler | None:
    return routes().get(action)
