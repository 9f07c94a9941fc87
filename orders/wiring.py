"""What orders needs from the app above it (disputes), handed over by the composition root.

orders sits below disputes and never imports it. `settings.MOSTRO_ORDERS_WIRING` names the
function that builds this (`mostro_site.wiring.orders_wiring`), loaded on first use.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class OrdersWiring:
    # `(*, order_id, order_status, actor) -> None`, called inside the transaction of a release
    # (`order_status` settled-hold-invoice) or an accepted cooperative cancel
    # (cooperatively-canceled), after the order's transition: the parties ended the trade
    # themselves, so the order's open dispute closes with it (docs/PROTOCOL.md §Dispute).
    trade_closed_by_parties: Callable[..., object]
    # `(*, order_id, now) -> str`: LND canceled the escrow of a `fiat-sent` order (not one of
    # the node's refunds); the fiat may have left, so a dispute opens for the buyer, as the
    # escrow guardian does (docs/PROTOCOL.md §Escrow-guardian).
    escrow_lost_in_fiat_sent: Callable[..., object] = lambda **_: None


@functools.lru_cache(maxsize=1)
def orders_wiring() -> OrdersWiring:
    return import_string(settings.MOSTRO_ORDERS_WIRING)()
