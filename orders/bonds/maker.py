"""The maker's bond (docs/PROTOCOL.md §Bonds, Maker bond; `apply_to` = make or both).

The new order is stored as `waiting-maker-bond`, unpublished, and the maker gets
`pay-bond-invoice`; when the HTLC locks the order goes `pending`, is published and the maker
gets the `new-order` reply it would have had (request id echoed). An unpaid maker bond is
canceled at its deadline (900 s, mostrod 0.19's observed life) and the order expires silently
(mostrod #942 leaves it); the maker may `cancel` meanwhile (#996).
"""

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from mostro_site.config import NodeConfig
from nostrbridge.context import Atomic
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from orders.bonds.amounts import bond_amount_sats
from orders.bonds.htlc import BondHtlcError, bond_htlc_cancel, bond_invoice_create
from orders.bonds.models import Bond, BondRole, BondState
from orders.bonds.release import bonds_release
from orders.bonds.take import pay_bond_invoice_payload
from orders.bonds.transitions import bond_request_create, bond_transition
from orders.models import Order
from orders.pricing import btc_price_for_trade, sats_for_fiat
from orders.publish import publish_order_event
from orders.status import OrderStatus
from orders.transitions import record_creation, transition_order
from orders.wire import order_payload, send

logger = logging.getLogger(__name__)
MAKER_BOND_INVOICE_SECONDS = 900
ACTOR = "lightning"


def maker_bond_notional_sats(fields: dict) -> int:
    """The order amount, else the fiat (a range's maximum) at the current price (mostrod `maker_bond_notional_sats`)."""
    if fields["amount_sats"] > 0:
        return fields["amount_sats"]
    fiat = fields["max_fiat_amount"] if fields["max_fiat_amount"] is not None else fields["fiat_amount"]
    return sats_for_fiat(fiat_amount=fiat, price=btc_price_for_trade(fields["fiat_code"]))


def maker_bond_order_create(*, maker, fields: dict, config: NodeConfig, now: datetime, atomic: Atomic) -> Order:
    """Store the order hidden, with the maker's bond invoice; nothing is published yet."""
    amount = bond_amount_sats(
        notional_sats=maker_bond_notional_sats(fields),
        amount_pct=config.bond_amount_pct,
        base_amount_sats=config.bond_base_amount_sats,
    )
    order = Order(**{**fields, "status": OrderStatus.WAITING_MAKER_BOND})
    invoice = bond_invoice_create(order_id=order.pk, amount_sats=amount, expiry_seconds=MAKER_BOND_INVOICE_SECONDS)
    from orders.services.traders import trader_bump_trade_index

    try:
        with atomic():
            trader_bump_trade_index(identity=maker.identity, sender=maker.sender, trade_index=maker.trade_index)
            order.save(force_insert=True)
            record_creation(order=order, actor=maker.sender, reason="new-order, maker bond requested")
            bond_request_create(
                order_id=order.pk,
                role=BondRole.MAKER,
                party=(maker.sender, maker.identity, maker.trade_index, maker.request_id),
                invoice=invoice,
                amount_sats=amount,
                expires_at=now + timedelta(seconds=MAKER_BOND_INVOICE_SECONDS),
            )
            payload = pay_bond_invoice_payload(
                order, bond_sats=amount, payment_request=invoice.payment_request, fiat_amount=order.fiat_amount
            )
            send(
                maker.sender,
                Action.PAY_BOND_INVOICE,
                order,
                request_id=maker.request_id,
                trade_index=maker.trade_index,
                payload=payload,
            )
    except Exception:
        try:
            bond_htlc_cancel(payment_hash_hex=invoice.payment_hash_hex)
        except BondHtlcError:
            logger.warning("could not cancel unused maker bond invoice %s", invoice.payment_hash_hex)
        raise
    return order


def maker_bond_on_locked(*, bond: Bond) -> None:
    with transaction.atomic(durable=True):
        order = Order.objects.select_for_update().filter(pk=bond.order_id).first()
        if order is None or order.status != OrderStatus.WAITING_MAKER_BOND:
            bonds_release(bonds=[bond], actor=ACTOR, reason="maker bond paid after the order left waiting-maker-bond")
            return
        if not bond_transition(
            bond_id=bond.pk,
            from_states=[BondState.REQUESTED],
            to_state=BondState.LOCKED,
            actor=ACTOR,
            reason="maker bond HTLC accepted",
            set_fields={"locked_at": timezone.now()},
        ):
            return
        transition_order(
            order_id=order.pk,
            from_statuses=[OrderStatus.WAITING_MAKER_BOND],
            to_status=OrderStatus.PENDING,
            actor=ACTOR,
            reason="maker bond locked",
        )
        order.refresh_from_db()
        send(
            bond.pubkey,
            Action.NEW_ORDER,
            order,
            request_id=bond.request_id,
            trade_index=bond.trade_index,
            payload=order_payload(order, include_buyer_invoice=True),
        )
        publish_order_event(order)
    logger.info("maker bond %s locked: order %s published", bond.pk, bond.order_id)


def maker_bond_unpaid(*, order_id) -> bool:
    """Inside the sweep's transaction, after the bond's release: the hidden order expires, no event."""
    return transition_order(
        order_id=order_id,
        from_statuses=[OrderStatus.WAITING_MAKER_BOND],
        to_status=OrderStatus.EXPIRED,
        actor="scheduler",
        reason="maker bond not paid in time",
    )


def maker_bond_cancel(*, order: Order, sender: str, request_id: int | None, atomic: Atomic) -> Order:
    """The maker's `cancel` in `waiting-maker-bond` (mostrod #996): canceled, the bond released, no event."""
    if sender != order.maker_pubkey:
        raise CantDo(CantDoReason.IS_NOT_YOUR_ORDER)
    with atomic():
        moved = transition_order(
            order_id=order.pk,
            from_statuses=[OrderStatus.WAITING_MAKER_BOND],
            to_status=OrderStatus.CANCELED,
            actor=sender,
            reason="maker cancel before the maker bond locked",
        )
        if not moved:
            raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
        order.refresh_from_db()
        send(sender, Action.CANCELED, order, request_id=request_id)
    return order
