"""The taker's bond (docs/PROTOCOL.md §Bonds, Taker bond): asked for on take, the take resumed when it locks.

Every taker passing the take's checks gets its own bond invoice (`pay-bond-invoice`) and a
`requested` row holding what its take fixed; the order goes `pending → waiting-taker-bond`
(published as `pending`, its amounts untouched). The first HTLC to lock wins
(`orders/bonds/lock.py`); the take then runs from the stored context (`order_take_resume`).
"""

import dataclasses
import logging
from datetime import timedelta
from typing import Any

from django.db import IntegrityError
from django.utils import timezone

from mostro_site.config import node_config
from nostrbridge.context import Atomic
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.payloads import PaymentRequestPayload
from nostrbridge.statements import select_where
from orders.bonds.amounts import bond_amount_sats
from orders.bonds.htlc import BondHtlcError, BondInvoice, bond_htlc_cancel, bond_invoice_create
from orders.bonds.models import Bond, BondRole, BondState
from orders.bonds.transitions import OPEN_STATES, bond_request_create
from orders.models import Order
from orders.publish import publish_order_event
from orders.services.traders import trader_bump_trade_index
from orders.status import PRE_TRADE_STATUSES, OrderStatus
from orders.transitions import transition_order, update_order_guarded
from orders.watch_handoff import hold_invoice_follow_on_commit
from orders.wire import send, small_order

logger = logging.getLogger(__name__)


def bond_take_gate(*, order: Order, sender: str) -> Bond | None:
    """Step 7 of the take: a locked taker bond → `pending_order_exists`; the sender's own
    requested bond is returned (its invoice is sent again and the take stops)."""
    # One plain query for both checks: every take asks, and nearly always finds nothing.
    open_bonds = select_where(Bond, where={"order_id": order.pk, "role": BondRole.TAKER, "state": list(OPEN_STATES)})
    if any(bond.state == BondState.LOCKED for bond in open_bonds):
        raise CantDo(CantDoReason.PENDING_ORDER_EXISTS)
    return next((b for b in open_bonds if b.pubkey == sender and b.state == BondState.REQUESTED), None)


def pay_bond_invoice_payload(order: Order, *, bond_sats: int, payment_request: str, fiat_amount: int):
    """`[{…, status:"pending", amount:<bond>, created_at:null, expires_at:null}, "<bolt11>", null]`."""
    view = small_order(
        order, status=OrderStatus.PENDING, amount_sats=bond_sats, include_created_at=False, include_expires_at=False
    )
    return PaymentRequestPayload(dataclasses.replace(view, fiat_amount=fiat_amount), payment_request, None)


def bond_resend(*, bond: Bond, order: Order, atomic: Atomic) -> None:
    """A retake by the same key: the same invoice again (docs/PROTOCOL.md §Take step 7)."""
    payload = pay_bond_invoice_payload(
        order,
        bond_sats=bond.amount_sats,
        payment_request=bond.payment_request,
        fiat_amount=bond.take_context["fields"]["fiat_amount"],
    )
    with atomic():
        send(
            bond.pubkey,
            Action.PAY_BOND_INVOICE,
            order,
            request_id=bond.request_id,
            trade_index=bond.trade_index,
            payload=payload,
        )


def bond_request_for_take(
    *, order: Order, taker: Any, fields: dict[str, Any], with_escrow: bool, atomic: Atomic
) -> Bond:
    """Issue the taker's bond invoice (LND, outside any transaction), then store and send it.

    `order` carries the amounts this take fixed (in memory only: the book keeps its own until
    the bond locks). `fields` are the order columns the take will write when it resumes.
    """
    config = node_config()
    amount = bond_amount_sats(
        notional_sats=order.amount_sats,
        amount_pct=config.bond_amount_pct,
        base_amount_sats=config.bond_base_amount_sats,
    )
    window = config.hold_invoice_expiration_window
    invoice = bond_invoice_create(order_id=order.pk, amount_sats=amount, expiry_seconds=window)
    try:
        with atomic():
            bond = _store_requested(
                order,
                taker=taker,
                invoice=invoice,
                amount=amount,
                window=window,
                context={"fields": fields, "with_escrow": with_escrow},
            )
    except Exception:
        _cancel_unused(invoice)
        raise
    if bond is None:
        _cancel_unused(invoice)
        raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
    return bond


def _store_requested(
    order: Order, *, taker: Any, invoice: BondInvoice, amount: int, window: int, context: dict
) -> Bond | None:
    # Stored even when the race is lost later: every check passed (docs/PROTOCOL.md §Trade-index).
    trader_bump_trade_index(identity=taker.identity, sender=taker.sender, trade_index=taker.trade_index)
    if order.status == OrderStatus.PENDING:
        still_takeable = transition_order(
            order_id=order.pk,
            from_statuses=[OrderStatus.PENDING],
            to_status=OrderStatus.WAITING_TAKER_BOND,
            actor=taker.sender,
            reason=f"taker bond requested by {taker.sender[:16]}",
        )
    else:
        still_takeable = update_order_guarded(order_id=order.pk, statuses=PRE_TRADE_STATUSES, set_fields={})
    if not still_takeable:
        return None
    try:
        bond = bond_request_create(
            order_id=order.pk,
            role=BondRole.TAKER,
            party=(taker.sender, taker.identity, taker.stored_index, taker.request_id),
            invoice=invoice,
            amount_sats=amount,
            expires_at=timezone.now() + timedelta(seconds=window),
            take_context=context,
        )
    except IntegrityError:
        return None
    payload = pay_bond_invoice_payload(
        order, bond_sats=amount, payment_request=invoice.payment_request, fiat_amount=context["fields"]["fiat_amount"]
    )
    send(
        taker.sender,
        Action.PAY_BOND_INVOICE,
        order,
        request_id=taker.request_id,
        trade_index=taker.stored_index,
        payload=payload,
    )
    hold_invoice_follow_on_commit(payment_hash_hex=invoice.payment_hash_hex)  # followed at once
    publish_order_event(order)  # still `pending` on the book (docs/PROTOCOL.md §Order-event)
    return bond


def _cancel_unused(invoice: BondInvoice) -> None:
    try:
        bond_htlc_cancel(payment_hash_hex=invoice.payment_hash_hex)
    except BondHtlcError:
        logger.warning("could not cancel unused bond invoice %s; LND expires it", invoice.payment_hash_hex)
