"""The child order of a released range order (docs/PROTOCOL.md §Range-orders)."""

import logging
import re

from django.db import DatabaseError, transaction

from nostrbridge.protocol.enums import Action
from orders.models import Order, Trader
from orders.publish import publish_order_event
from orders.services.amounts import range_remainder
from orders.status import OrderKind, OrderStatus
from orders.transitions import record_creation
from orders.wire import order_payload, send

logger = logging.getLogger(__name__)

_HEX_PUBKEY = re.compile(r"^[0-9a-f]{64}$")


def range_child_create(*, parent: Order, next_trade: tuple[str, int] | None, request_id: int | None) -> Order | None:
    """Put the rest of a range back on the book under the maker's next trade key.

    Runs inside the release transaction, after the settle. The insert has its own savepoint:
    the escrow is already settled, so a failed child must never abort the release (#873).
    Returns None when the range is exhausted or the maker announced no next trade key.
    """
    bounds = parent.fiat_range
    if bounds is None:
        return None
    remainder = range_remainder(min_fiat=bounds[0], max_fiat=bounds[1], taken_fiat=parent.fiat_amount)
    if remainder is None:
        return None
    maker_key, maker_index = _next_maker_key(parent, next_trade)
    if maker_key is None or maker_index is None:
        logger.info("order %s: range not continued, the maker sent no usable next trade key", parent.id)
        return None
    try:
        with transaction.atomic():
            child = _insert_child(parent, remainder, maker_key, maker_index)
            # The row exists before its new-order message and its book entry (docs/PROTOCOL.md §Range-orders).
            send(
                maker_key,
                Action.NEW_ORDER,
                child,
                request_id=request_id,
                trade_index=maker_index,
                payload=order_payload(child),
            )
            publish_order_event(child)
    except DatabaseError:
        logger.exception("order %s: child order creation failed; the range ends here", parent.id)
        return None
    return child


def _next_maker_key(parent: Order, next_trade: tuple[str, int] | None) -> tuple[str | None, int | None]:
    """Sell range: the key sent with `release`; buy range: the key stored at `fiat-sent`."""
    if parent.kind == OrderKind.SELL:
        key, index = next_trade if next_trade is not None else (None, None)
    else:
        key, index = parent.next_trade_pubkey, parent.next_trade_index
    if key is None or not _HEX_PUBKEY.match(key):
        return None, None
    return key, index


def _insert_child(parent: Order, remainder: tuple[int, int], maker_key: str, maker_index: int) -> Order:
    min_fiat, new_max = remainder
    is_fixed = new_max == min_fiat
    side = "seller" if parent.kind == OrderKind.SELL else "buyer"
    old_trade_key = getattr(parent, f"{side}_pubkey")
    old_identity = getattr(parent, f"master_{side}_pubkey")
    # Reputation mode keeps the identity; a full-privacy maker's identity is its trade key.
    identity = old_identity if old_identity and old_identity != old_trade_key else maker_key
    child = Order.objects.create(
        kind=parent.kind,
        status=OrderStatus.PENDING,
        creator_pubkey=maker_key,
        price_from_api=parent.price_from_api,
        premium=parent.premium,
        payment_method=parent.payment_method,
        amount_sats=0,
        fiat_code=parent.fiat_code,
        fiat_amount=min_fiat if is_fixed else 0,
        min_fiat_amount=None if is_fixed else min_fiat,
        max_fiat_amount=None if is_fixed else new_max,
        fee_sats=parent.fee_sats,
        dev_fee_sats=parent.dev_fee_sats,
        range_parent=parent,
        created_at=parent.created_at,
        expires_at=parent.expires_at,
        **{f"{side}_pubkey": maker_key, f"master_{side}_pubkey": identity, f"trade_index_{side}": maker_index},
    )
    record_creation(order=child, actor=maker_key, reason=f"range child of {parent.id}")
    if identity != maker_key:
        # The announced index is spent: a later new-order reusing it would share a trade key.
        Trader.objects.filter(pubkey=identity, last_trade_index__lt=maker_index).update(last_trade_index=maker_index)
    return child
