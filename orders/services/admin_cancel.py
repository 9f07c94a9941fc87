"""The operator's cancel of an order nobody took yet (docs/PROTOCOL.md §Admin-cancel, mostrod's
`CancelOrder` with `pretrade_only`).

Only `pending` and `waiting-taker-bond` qualify: no escrow exists, so there is no Lightning call
for one. The order becomes `canceled-by-admin` (38383 `canceled`), the maker gets
`admin-canceled`; the order's bonds are released with it and every bonded taker still racing is
told `admin-canceled` too (`transition_order` → `bonds_on_order_transition`). Callers decide who
may do this: the node identity over Nostr, operators in the console and the REST API.
"""

import logging
from uuid import UUID

from django.db import transaction

from nostrbridge.context import Atomic
from nostrbridge.outbox import enqueue_message
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from orders.models import Order
from orders.publish import publish_order_event
from orders.services.lookup import order_get_or_not_found
from orders.status import PRE_TRADE_STATUSES, OrderStatus
from orders.transitions import transition_order
from orders.wire import order_message

logger = logging.getLogger(__name__)


def order_admin_cancel_pretrade(
    *,
    order_id: UUID | str | None,
    actor_label: str,
    request_id: int | None = None,
    trade_index: int | None = None,
    reply_to: str | None = None,
    atomic: Atomic = transaction.atomic,
) -> Order:
    """Cancel a not-yet-taken order; `not_allowed_by_status` for every other status (nothing
    changes), `not_found` for an unknown id. A race lost to a take is the same refusal."""
    order = order_get_or_not_found(order_id)
    if order.status not in PRE_TRADE_STATUSES:
        raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
    with atomic():
        moved = transition_order(
            order_id=order.id,
            from_statuses=sorted(PRE_TRADE_STATUSES),
            to_status=OrderStatus.CANCELED_BY_ADMIN,
            actor=actor_label,
            reason="admin-cancel (pre-trade)",
        )
        if not moved:
            raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
        order.refresh_from_db()
        publish_order_event(order)
        to_maker = order_message(Action.ADMIN_CANCELED, order.id)
        enqueue_message(recipient_pubkey=order.creator_pubkey, message=to_maker, order_id=order.id)
        if reply_to and reply_to != order.creator_pubkey:
            to_admin = order_message(Action.ADMIN_CANCELED, order.id, request_id=request_id, trade_index=trade_index)
            enqueue_message(recipient_pubkey=reply_to, message=to_admin, order_id=order.id)
    logger.info("order %s canceled by %s before any trade", order.id, actor_label)
    return order
