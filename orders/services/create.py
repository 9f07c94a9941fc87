"""`new-order`: validate the maker's terms and put the order on the book (docs/PROTOCOL.md §New-order)."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from mostro_site.config import NodeConfig, node_config
from nostrbridge.context import Atomic, SilentDrop
from nostrbridge.protocol.enums import Action, CantDoReason, Kind
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.structs import SmallOrder
from nostrbridge.statements import insert_instance
from orders.bonds.maker import maker_bond_order_create
from orders.models import Order
from orders.pricing import btc_price_for_trade, market_amount_sats, market_price_ready
from orders.publish import order_event_build, order_event_enqueue
from orders.services.amounts import fee_sats
from orders.services.invoice import buyer_invoice_validate
from orders.services.policy import policy_check_maker
from orders.services.traders import trader_bump_trade_index
from orders.status import OrderKind, OrderStatus
from orders.transitions import record_creation
from orders.wire import order_payload, replies_together, send

logger = logging.getLogger(__name__)

FIAT_CODE_MAX_LENGTH = 16  # Order.fiat_code
# sats = quote × (1 − premium / 100): at 100 % or more the price is ≤ 0 (docs/PROTOCOL.md §New-order).
PREMIUM_LIMIT = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class Maker:
    sender: str  # trade key
    identity: str
    trade_index: int | None
    request_id: int | None


def order_create(
    *,
    maker: Maker,
    terms: SmallOrder,
    now: datetime | None = None,
    atomic: Atomic = transaction.atomic,
    config: NodeConfig | None = None,
) -> Order:
    """Check the terms in the spec's order, store the order, ack the maker, publish `pending`.

    Raises CantDo for refusals and SilentDrop when no price was ever stored for the currency.
    `atomic` opens the final transaction (the handler passes `ctx.atomic`); `config`: the node
    configuration the caller decided by (the handler: whether a maker bond is asked of LND).
    """
    config = config or node_config()
    if terms.kind is None:
        raise CantDo(CantDoReason.INVALID_ORDER_KIND)
    if terms.buyer_invoice is not None:
        # Fee 0: a bolt11 with an amount must carry the full order amount (docs/PROTOCOL.md §New-order step 2).
        buyer_invoice_validate(destination=terms.buyer_invoice, expected_amount_sats=terms.amount)
    _check_fiat_code(terms.fiat_code, config)
    _check_amounts(terms)
    if terms.premium != 0 and terms.amount != 0:
        raise CantDo(CantDoReason.INVALID_PARAMETERS)
    if terms.premium >= PREMIUM_LIMIT:
        # A premium of 100 % or more prices the bitcoin at ≤ 0: no escrow can be asked for it.
        raise CantDo(CantDoReason.INVALID_PARAMETERS)
    quote_sats = _check_sats_limits(terms, config)
    if maker.identity != maker.sender and maker.trade_index is None:
        raise SilentDrop("reputation mode without trade_index")
    now = now or timezone.now()
    policy_check_maker(key=maker.identity, amount_sats=quote_sats, config=config, now=now)
    if config.bonds_apply_to("make"):
        # Hidden until the maker's bond locks (docs/PROTOCOL.md §Bonds, Maker bond).
        fields = _order_fields(maker, terms, config, now)
        return maker_bond_order_create(maker=maker, fields=fields, config=config, now=now, atomic=atomic)
    with atomic():
        maker_row = trader_bump_trade_index(identity=maker.identity, sender=maker.sender, trade_index=maker.trade_index)
        order = Order(**_order_fields(maker, terms, config, now))
        # The pending revision is built from the row about to be inserted, so the INSERT stores its
        # id (no UPDATE after it); its outbox row still follows the maker's reply.
        event = order_event_build(order, now=int(now.timestamp()), maker=maker_row)
        if event is not None:
            order.event_id = event.id
        # A precompiled INSERT (the model has no save() or signals): every new order (docs/PERFORMANCE.md).
        insert_instance(order)
        record_creation(order=order, actor=maker.sender, reason="new-order")
        with replies_together():  # the reply and the revision as one outbox INSERT, in this order
            send(
                maker.sender,
                Action.NEW_ORDER,
                order,
                request_id=maker.request_id,
                trade_index=maker.trade_index,
                payload=order_payload(order, include_buyer_invoice=True),
            )
            if event is not None:
                order_event_enqueue(order, event)
    logger.info("order %s created (%s %s %s)", order.id, order.kind, order.fiat_amount, order.fiat_code)
    return order


def order_price_ready(terms: SmallOrder) -> None:
    """A market order in an accepted currency with no stored price waits for a price fetch
    (`market_price_ready`); before the trade-index gate, so the retry is not refused."""
    accepted = node_config().fiat_currencies_accepted
    if terms.amount == 0 and terms.fiat_code and (not accepted or terms.fiat_code in accepted):
        market_price_ready(terms.fiat_code)


def _check_fiat_code(fiat_code: str, config: NodeConfig) -> None:
    accepted = config.fiat_currencies_accepted
    if accepted and fiat_code not in accepted:
        raise CantDo(CantDoReason.INVALID_FIAT_CURRENCY)
    if not fiat_code or len(fiat_code) > FIAT_CODE_MAX_LENGTH:
        # Only reachable with an empty whitelist; such a code cannot be stored.
        raise CantDo(CantDoReason.INVALID_FIAT_CURRENCY)


def _check_amounts(terms: SmallOrder) -> None:
    """docs/PROTOCOL.md §New-order step 4 (a negative fiat amount is refused too: it cannot be stored)."""
    bounds = _fiat_range(terms)
    if terms.min_amount is None and terms.max_amount is None and terms.fiat_amount <= 0:
        raise CantDo(CantDoReason.INVALID_AMOUNT)
    if terms.amount < 0 or terms.fiat_amount < 0:
        raise CantDo(CantDoReason.INVALID_AMOUNT)
    if bounds is not None:
        low, high = bounds
        if low < 0 or high < 0 or low >= high or terms.amount != 0:
            raise CantDo(CantDoReason.INVALID_AMOUNT)
    elif (terms.min_amount or 0) < 0 or (terms.max_amount or 0) < 0:
        raise CantDo(CantDoReason.INVALID_AMOUNT)


def _fiat_range(terms: SmallOrder) -> tuple[int, int] | None:
    """(min, max) of a range order's terms; None for a single amount."""
    if terms.min_amount is None or terms.max_amount is None:
        return None
    return terms.min_amount, terms.max_amount


def _check_sats_limits(terms: SmallOrder, config: NodeConfig) -> int:
    """docs/PROTOCOL.md §New-order step 6: each fiat amount's sats quote within the node limits.
    Returns the highest quote (what the daily volume cap counts).

    The quote includes the premium (the daemon leaves it out, so a premium of −100000 % asked a
    seller for 1000× the node's maximum): the limits bound what the escrow will really hold.
    The take checks again at the price of the moment (`orders.services.take`)."""
    bounds = _fiat_range(terms)
    fiat_amounts = list(bounds) if bounds is not None else [terms.fiat_amount]
    price = None
    highest = 0
    for fiat in fiat_amounts:
        if terms.amount != 0:
            quote = terms.amount
        else:
            price = price if price is not None else btc_price_for_trade(terms.fiat_code)
            quote = market_amount_sats(fiat_amount=fiat, price=price, premium=terms.premium)
        if quote < 0:
            raise CantDo(CantDoReason.INVALID_AMOUNT)
        if not config.min_payment_amount_sats <= quote <= config.max_order_amount_sats:
            raise CantDo(CantDoReason.OUT_OF_RANGE_SATS_AMOUNT)
        highest = max(highest, quote)
    return highest


def order_expires_at(requested: int | None, *, now: datetime, config: NodeConfig) -> datetime:
    """`expires_at` of a new order (docs/PROTOCOL.md §New-order).

    Deliberate fix of the daemon's quirk: a non-positive or past value gets the default
    lifetime instead of being stored as-is (which makes the order expire at the next sweep
    and untakeable on arrival). A value beyond `max_expiration_days` is capped.
    """
    if requested is None or requested <= int(now.timestamp()):
        return now + timedelta(hours=config.expiration_hours)
    cap = now + timedelta(days=config.max_expiration_days)
    if requested >= int(cap.timestamp()):  # compared as integers: any i64 is safe
        return cap
    return datetime.fromtimestamp(requested, tz=now.tzinfo)


def _order_fields(maker: Maker, terms: SmallOrder, config: NodeConfig, now: datetime) -> dict:
    assert terms.kind is not None  # order_create refused a missing kind first
    kind = OrderKind(terms.kind.value if isinstance(terms.kind, Kind) else terms.kind)
    # Full-privacy makers may omit the index; the daemon stores 0 then.
    trade_index = maker.trade_index if maker.trade_index is not None else 0
    side = (
        {"seller_pubkey": maker.sender, "master_seller_pubkey": maker.identity, "trade_index_seller": trade_index}
        if kind == OrderKind.SELL
        else {"buyer_pubkey": maker.sender, "master_buyer_pubkey": maker.identity, "trade_index_buyer": trade_index}
    )
    return {
        "kind": kind,
        "status": OrderStatus.PENDING,
        "creator_pubkey": maker.sender,
        **side,
        "price_from_api": terms.amount == 0,
        "premium": terms.premium,
        "payment_method": terms.payment_method,
        "amount_sats": terms.amount,
        "fiat_code": terms.fiat_code,
        "fiat_amount": terms.fiat_amount,
        "min_fiat_amount": terms.min_amount,
        "max_fiat_amount": terms.max_amount,
        # Market orders get their fee when taken (docs/PROTOCOL.md §New-order).
        "fee_sats": fee_sats(amount_sats=terms.amount, fee_rate=config.fee) if terms.amount > 0 else 0,
        "dev_fee_sats": 0,
        "buyer_invoice": terms.buyer_invoice,
        "created_at": now,
        "expires_at": order_expires_at(terms.expires_at, now=now, config=config),
    }
