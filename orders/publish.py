"""Kind-38383 order events (NIP-69) written to the outbox.

`publish_order_event(order, now=None)` is called by every service that changes an order's
status, inside the transaction that changed it, after the change. It publishes a new revision
for the order's current status bucket (docs/PROTOCOL.md §Order-event; None for statuses that are not
published), with `created_at` from `nostrbridge.outbox.next_created_at` and the `rating` /
`source` tags on pending revisions, and stores the event id in `Order.event_id`.

The `network` tag is the LND network the process fetched at start
(`nostrbridge.event_settings.lnd_network`, never an LND call).
"""

import time
from datetime import UTC, datetime

from nostrbridge.event_settings import lnd_network, publisher_settings
from nostrbridge.models import OutboundMessage
from nostrbridge.outbox import enqueue_event, next_created_at, node_keys
from nostrbridge.protocol.enums import Kind, Status
from nostrbridge.protocol.nip01 import Event
from nostrbridge.protocol.published_events import (
    ORDER_KIND,
    OrderSnapshot,
    build_order_event,
    order_status_bucket,
)
from nostrbridge.statements import db_connection, select_one, update_where
from orders.models import Order, Trader
from orders.services.traders import maker_identity, trader_reputation


def order_snapshot(order: Order) -> OrderSnapshot:
    return OrderSnapshot(
        id=order.id,
        kind=Kind(order.kind),
        status=Status(order.status),
        fiat_code=order.fiat_code,
        amount_sats=order.amount_sats,
        fiat_amount=order.fiat_amount,
        min_amount=order.min_fiat_amount,
        max_amount=order.max_fiat_amount,
        payment_method=order.payment_method,
        premium=order.premium,
        expires_at=int(order.expires_at.timestamp()),
        published_at=int(order.created_at.timestamp()),
    )


def publish_order_event(order: Order, *, now: int | None = None, fresh: bool = False) -> OutboundMessage | None:
    """Queue the 38383 revision of the order's committed-to-be state (see the module contract).

    `fresh`: `order` is the row as it stands in this transaction (the caller re-read it with
    `order_refresh` after its last write, or just inserted it), so the re-read here would load
    the same row again (each trade step did: five loads of the wide order row per trade,
    docs/PERFORMANCE.md).
    """
    if not db_connection().in_atomic_block:
        raise RuntimeError("publish_order_event must run inside the transaction that changed the order")
    # Re-read: the caller's instance may predate the guarded UPDATE it just made. Plain SQL, as
    # the UPDATE below: every status change publishes (docs/PERFORMANCE.md).
    current = order if fresh else select_one(Order, id=order.pk)
    if current is None:
        raise Order.DoesNotExist(order.pk)
    event = order_event_build(current, now=now)
    if event is None:
        return None
    row = order_event_enqueue(current, event)
    update_where(Order, where={"id": current.pk}, values={"event_id": event.id})
    order.event_id = event.id
    return row


def order_event_build(order: Order, *, now: int | None = None, maker: Trader | None = None) -> Event | None:
    """The signed 38383 revision of `order` as given (None: its status is not published), its
    `created_at` taken from the order's clock (`next_created_at`: inside the transaction).

    With `order_event_enqueue`, for a caller that stores the event id with a write of its own
    (the new order's INSERT) instead of `publish_order_event`'s UPDATE. `maker`: the maker's
    trader row as this transaction just wrote it, for the `rating` tag without a read."""
    if not db_connection().in_atomic_block:
        raise RuntimeError("order_event_build must run inside the transaction that changes the order")
    bucket = order_status_bucket(Status(order.status), Kind(order.kind))
    if bucket is None:
        return None
    now = int(time.time()) if now is None else now
    reputation = None
    if bucket == "pending":  # the rating tag exists only on pending revisions
        reputation = trader_reputation(
            identity=maker_identity(order), now=datetime.fromtimestamp(now, tz=UTC), known=maker
        )
    return build_order_event(
        order_snapshot(order),
        node_keys(),
        settings=publisher_settings(),
        now=now,
        network=lnd_network(),
        reputation=reputation,
        created_at=next_created_at(kind=ORDER_KIND, d_tag=str(order.id), now=now),
    )


def order_event_enqueue(order: Order, event: Event) -> OutboundMessage:
    """The outbox row of `event`, a revision `order_event_build` made for `order`."""
    return enqueue_event(event=event, order_id=order.id, d_tag=str(order.id))
