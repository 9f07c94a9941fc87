"""Kind-38383 order events (NIP-69) written to the outbox. OWNER: trade-intake helper.

CONTRACT (used by every service that changes an order's status):

    publish_order_event(order: Order, *, now: int | None = None) -> OutboundMessage | None

Must be called inside the transaction that changed the order, after the change. Publishes a
new revision for the order's current status bucket (04-order-events.md §2.2; returns None for
statuses that are not published), with `created_at` from `nostrbridge.outbox.next_created_at`
and the `rating`/`source` tags on pending revisions; stores the event id in `Order.event_id`.

The `network` tag comes from LND's get_info, which must never run inside a transaction: call
`network_tag_prefetch()` before opening it (once per process is enough; the value is cached).
A revision built before any successful fetch says `unknown`, as the daemon does when the
node status is unavailable.
"""

import logging
import threading
import time
from datetime import UTC, datetime

from django.db import connection

from lightning import get_lightning_client
from lightning.errors import LightningError
from mostro_site.config import node_config
from nostrbridge.models import OutboundMessage
from nostrbridge.node_identity import node_pubkey
from nostrbridge.outbox import enqueue_event, next_created_at, node_keys
from nostrbridge.protocol.enums import Kind, Status
from nostrbridge.protocol.published_events import (
    ORDER_KIND,
    OrderSnapshot,
    PublisherSettings,
    build_order_event,
    order_status_bucket,
)
from orders.models import Order
from orders.services.traders import maker_identity, trader_reputation

logger = logging.getLogger(__name__)

UNKNOWN_NETWORK = "unknown"
# After a failed get_info, wait this long before asking LND again (a node that is down would
# otherwise be asked once per inbound message).
NETWORK_RETRY_SECONDS = 30.0

_network_lock = threading.Lock()
_network: str | None = None
_network_failed_at: float | None = None


def network_tag_prefetch() -> str:
    """The `network` tag value, asking LND on first use. Call it outside any transaction."""
    global _network, _network_failed_at
    if _network is not None:
        return _network
    if _in_transaction():
        return UNKNOWN_NETWORK
    with _network_lock:
        if _network is not None:
            return _network
        if _network_failed_at is not None and time.monotonic() - _network_failed_at < NETWORK_RETRY_SECONDS:
            return UNKNOWN_NETWORK
        try:
            info = get_lightning_client().get_info()
        except LightningError as exc:
            _network_failed_at = time.monotonic()
            logger.warning("LND get_info failed (%s); 38383 network tag is %s", exc.message, UNKNOWN_NETWORK)
            return UNKNOWN_NETWORK
        _network = ",".join(info.networks) or UNKNOWN_NETWORK
        _network_failed_at = None
        return _network


def _in_transaction() -> bool:
    # The atomic blocks a test case wraps around each test do not count (as in
    # lightning.lnd_errors.assert_not_in_transaction).
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def network_tag_cached() -> str:
    return _network or UNKNOWN_NETWORK


def clear_network_cache() -> None:
    global _network, _network_failed_at
    with _network_lock:
        _network = None
        _network_failed_at = None


def publisher_settings() -> PublisherSettings:
    config = node_config()
    return PublisherSettings(
        node_pubkey=node_pubkey(),
        instance_name=config.name,
        relays=config.relays,
        order_days=config.order_days,
        rating_days=config.rating_days,
        dispute_days=config.dispute_days,
        fee_audit_days=config.fee_audit_days,
    )


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
    )


def publish_order_event(order: Order, *, now: int | None = None) -> OutboundMessage | None:
    """Queue the 38383 revision of the order's committed-to-be state (see the module contract)."""
    if not connection.in_atomic_block:
        raise RuntimeError("publish_order_event must run inside the transaction that changed the order")
    # Re-read: the caller's instance may predate the guarded UPDATE it just made.
    current = Order.objects.get(pk=order.pk)
    bucket = order_status_bucket(Status(current.status), Kind(current.kind))
    if bucket is None:
        return None
    now = int(time.time()) if now is None else now
    reputation = None
    if bucket == "pending":  # the rating tag exists only on pending revisions
        reputation = trader_reputation(identity=maker_identity(current), now=datetime.fromtimestamp(now, tz=UTC))
    d_tag = str(current.id)
    event = build_order_event(
        order_snapshot(current),
        node_keys(),
        settings=publisher_settings(),
        now=now,
        network=network_tag_cached(),
        reputation=reputation,
        created_at=next_created_at(kind=ORDER_KIND, d_tag=d_tag, now=now),
    )
    if event is None:  # unreachable: the bucket was checked above
        return None
    row = enqueue_event(event=event, order_id=current.id, d_tag=d_tag)
    Order.objects.filter(pk=current.pk).update(event_id=event.id)
    order.event_id = event.id
    return row
