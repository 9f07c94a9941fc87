"""Taking an order: `take-sell` (a buyer takes) and `take-buy` (a seller takes), docs/PROTOCOL.md §Take.

Shape: checks and price (reads) → invoice/LNURL validation and the hold invoice (network) →
one short transaction with the trade-index bump, the guarded transition, the replies and the
38383 revision. Two takers of one order: the guarded transition lets exactly one win; the
loser's fresh hold invoice is canceled at LND after the transaction.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from mostro_site.config import node_config
from mostro_site.config.faults import kill_point
from nostrbridge.context import Atomic, SilentDrop
from nostrbridge.guarded import exists_where
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from orders.bonds.models import Bond, BondRole, BondState
from orders.bonds.take import bond_request_for_take, bond_resend, bond_take_gate
from orders.bonds.transitions import OPEN_STATES
from orders.models import Order
from orders.pricing import btc_price_for_trade, market_amount_sats, market_price_ready
from orders.publish import publish_order_event
from orders.selectors import buyer_has_pending_order, order_get, seller_has_pending_order
from orders.services.amounts import buyer_payout_sats, dev_fee_sats, fee_sats, seller_escrow_sats
from orders.services.escrow import (
    EscrowInvoice,
    escrow_cancel_unused,
    escrow_create_hold_invoice,
    escrow_watch_on_commit,
    notify_pay_invoice,
)
from orders.services.invoice import buyer_invoice_validate
from orders.services.policy import policy_check_taker
from orders.services.traders import trader_bump_trade_index
from orders.status import PRE_TRADE_STATUSES, OrderKind, OrderStatus
from orders.transitions import transition_order
from orders.wire import order_payload, send

logger = logging.getLogger(__name__)
_OPEN_BOND_STATES = sorted(OPEN_STATES)  # the states `bond_take_gate` looks at


@dataclass(frozen=True, slots=True, kw_only=True)
class Taker:
    sender: str  # trade key
    identity: str
    trade_index: int | None
    request_id: int | None

    @property
    def stored_index(self) -> int:
        # Full-privacy takers may omit the index; the daemon stores 0 then.
        return self.trade_index if self.trade_index is not None else 0


def order_take_sell(
    *,
    order_id: UUID | str | None,
    taker: Taker,
    fiat_amount: int | None,
    invoice: str | None,
    atomic: Atomic = transaction.atomic,
    loaded: Order | None = None,
) -> Order:
    """A buyer takes a sell order, optionally with its payout invoice / Lightning address.

    `loaded`: the order as the handler just read it (`take_price_ready`), so it is not loaded twice.
    """
    order = _checked_order(order_id=order_id, taker=taker, kind=OrderKind.SELL, loaded=loaded)
    if _resent_bond(order, taker=taker, atomic=atomic):
        return order
    _fix_amounts(order, fiat_amount=fiat_amount)
    _check_policies(order, taker)
    if invoice is not None:
        expected = buyer_payout_sats(amount_sats=order.amount_sats, fee_sats=order.fee_sats)
        invoice = buyer_invoice_validate(destination=invoice, expected_amount_sats=expected)
    _require_trade_index(taker)
    fields = {
        **_amount_fields(order),
        "buyer_pubkey": taker.sender,
        "master_buyer_pubkey": taker.identity,
        "trade_index_buyer": taker.stored_index,
        # A sell maker's stray `buyer_invoice` must never become the payout target.
        "buyer_invoice": invoice,
    }
    if node_config().bonds_apply_to("take"):
        bond_request_for_take(order=order, taker=taker, fields=fields, with_escrow=invoice is not None, atomic=atomic)
        return order
    if invoice is None:
        won = _commit_take(
            order, taker=taker, to_status=OrderStatus.WAITING_BUYER_INVOICE, fields=fields, atomic=atomic
        )
    else:
        won = _commit_take_with_escrow(order, taker=taker, fields=fields, atomic=atomic)
    if not won:
        raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
    return order


def order_take_buy(
    *,
    order_id: UUID | str | None,
    taker: Taker,
    fiat_amount: int | None,
    atomic: Atomic = transaction.atomic,
    loaded: Order | None = None,
) -> Order:
    """A seller takes a buy order: the hold invoice is issued at once (`loaded`: as in `order_take_sell`)."""
    order = _checked_order(order_id=order_id, taker=taker, kind=OrderKind.BUY, loaded=loaded)
    if _resent_bond(order, taker=taker, atomic=atomic):
        return order
    _fix_amounts(order, fiat_amount=fiat_amount)
    _check_policies(order, taker)
    _require_trade_index(taker)
    fields = {
        **_amount_fields(order),
        "seller_pubkey": taker.sender,
        "master_seller_pubkey": taker.identity,
        "trade_index_seller": taker.stored_index,
    }
    if node_config().bonds_apply_to("take"):
        bond_request_for_take(order=order, taker=taker, fields=fields, with_escrow=True, atomic=atomic)
        return order
    if not _commit_take_with_escrow(order, taker=taker, fields=fields, atomic=atomic):
        # Spec quirk (docs/PROTOCOL.md §Take): every take-buy failure after the checks is silent.
        raise SilentDrop(f"take-buy of order {order.pk} lost a concurrent state change")
    return order


def _resent_bond(order: Order, *, taker: Taker, atomic: Atomic) -> bool:
    """Step 7 (docs/PROTOCOL.md §Take): refused while a taker bond is locked (whatever the
    settings say now); the sender's own unpaid bond is sent again and the take stops there."""
    # A one-column probe first: nearly every take finds no open taker bond, and loading the
    # gate's bond rows (33 columns, even when none match) cost four times the probe on SQLite.
    if not exists_where(Bond, where={"order_id": order.pk, "role": BondRole.TAKER, "state__in": _OPEN_BOND_STATES}):
        return False
    own = bond_take_gate(order=order, sender=taker.sender)
    if own is None:
        return False
    bond_resend(bond=own, order=order, atomic=atomic)
    return True


def order_take_resume(*, bond_id: int) -> bool:
    """The take of a taker whose bond just locked, from the context its take stored.

    True when the order moved on. Idempotent: once the order left the book, or the bond is
    no longer locked (the taker canceled meanwhile), nothing happens.
    """
    bond = Bond.objects.filter(pk=bond_id, role=BondRole.TAKER, state=BondState.LOCKED).first()
    order = order_get(order_id=bond.order_id) if bond is not None else None
    if bond is None or order is None or order.status not in PRE_TRADE_STATUSES:
        return False
    fields = dict(bond.take_context["fields"])
    for name in ("fiat_amount", "amount_sats", "fee_sats", "dev_fee_sats"):
        setattr(order, name, fields[name])
    taker = Taker(sender=bond.pubkey, identity=bond.identity, trade_index=bond.trade_index, request_id=bond.request_id)
    if bond.take_context["with_escrow"]:
        return _commit_take_with_escrow(order, taker=taker, fields=fields, atomic=transaction.atomic, bond_id=bond.pk)
    return _commit_take(
        order,
        taker=taker,
        to_status=OrderStatus.WAITING_BUYER_INVOICE,
        fields=fields,
        atomic=transaction.atomic,
        bond_id=bond.pk,
    )


def take_price_ready(*, order_id: UUID | str | None) -> Order | None:
    """A take of a market order whose currency has no stored price waits for a price fetch
    (`market_price_ready`); before the trade-index gate, so the retry is not refused.
    Returns the order as read (None: no such order), for the take's own checks."""
    order = order_get(order_id=order_id)
    if order is not None and order.amount_sats == 0 and order.status in PRE_TRADE_STATUSES:
        market_price_ready(order.fiat_code)
    return order


def _checked_order(
    *, order_id: UUID | str | None, taker: Taker, kind: str, now: datetime | None = None, loaded: Order | None = None
) -> Order:
    """Steps 1–5 of docs/PROTOCOL.md §Take in order; returns the order as read (or as `loaded`:
    the same order read moments before, outside any transaction as this read would be; the
    guarded transition decides on the stored row either way)."""
    order = loaded if loaded is not None and str(loaded.pk) == str(order_id) else order_get(order_id=order_id)
    if order is None:
        raise CantDo(CantDoReason.NOT_FOUND)
    has_pending = buyer_has_pending_order if kind == OrderKind.SELL else seller_has_pending_order
    if has_pending(identity=taker.identity):
        raise CantDo(CantDoReason.PENDING_ORDER_EXISTS)
    if order.kind != kind:
        raise CantDo(CantDoReason.INVALID_ORDER_KIND)
    if order.status not in PRE_TRADE_STATUSES:
        raise CantDo(CantDoReason.INVALID_ORDER_STATUS)
    if order.expires_at <= (now or timezone.now()):
        raise CantDo(CantDoReason.INVALID_ORDER_STATUS)
    if taker.sender == order.maker_pubkey:
        raise CantDo(CantDoReason.INVALID_PUBKEY)
    maker_identity = order.master_seller_pubkey if order.kind == OrderKind.SELL else order.master_buyer_pubkey
    if taker.identity != taker.sender and taker.identity == maker_identity:
        # One identity on both sides with a second trade key could rate itself (this node's
        # check, docs/PROTOCOL.md §Take step 5): refused like taking with the maker's own key.
        raise CantDo(CantDoReason.INVALID_PUBKEY)
    return order


def _fix_amounts(order: Order, *, fiat_amount: int | None) -> None:
    """Steps 8–9: the traded fiat amount, then sats/fee/dev fee (in memory; stored at commit)."""
    bounds = order.fiat_range
    if bounds is not None:
        if fiat_amount is None or not bounds[0] <= fiat_amount <= bounds[1]:
            raise CantDo(CantDoReason.OUT_OF_RANGE_SATS_AMOUNT)  # sic, the daemon's reason
        order.fiat_amount = fiat_amount
    config = node_config()
    if order.amount_sats == 0:
        amount = market_amount_sats(
            fiat_amount=order.fiat_amount, price=btc_price_for_trade(order.fiat_code), premium=order.premium
        )
        if amount <= 0:
            # Deliberate refusal (the daemon does not re-check): a premium ≥ 100 % or a dust
            # fiat amount would otherwise ask for an amountless or negative escrow.
            raise CantDo(CantDoReason.INVALID_AMOUNT)
        order.amount_sats = amount
        order.fee_sats = fee_sats(amount_sats=amount, fee_rate=config.fee)
    escrow = seller_escrow_sats(amount_sats=order.amount_sats, fee_sats=order.fee_sats)
    if escrow > config.max_order_amount_sats:
        # The maximum bounds what the seller's escrow will really hold, at the price of this take
        # (the premium and the fee included): the new-order check ran at an older price.
        raise CantDo(CantDoReason.OUT_OF_RANGE_SATS_AMOUNT)
    order.dev_fee_sats = dev_fee_sats(fee_sats=order.fee_sats, dev_fee_percentage=config.dev_fee_percentage)


def _check_policies(order: Order, taker: Taker) -> None:
    """The operator's limits and taker requirements (docs/OPERATIONS.md §Policies), on the
    amount this take trades, before any invoice lookup or hold invoice."""
    policy_check_taker(key=taker.identity, amount_sats=order.amount_sats, config=node_config(), now=timezone.now())


def _require_trade_index(taker: Taker) -> None:
    if taker.identity != taker.sender and taker.trade_index is None:
        raise SilentDrop("reputation mode without trade_index")


def _amount_fields(order: Order) -> dict[str, Any]:
    return {
        "fiat_amount": order.fiat_amount,
        "amount_sats": order.amount_sats,
        "fee_sats": order.fee_sats,
        "dev_fee_sats": order.dev_fee_sats,
    }


def _commit_take(
    order: Order, *, taker: Taker, to_status: str, fields: dict, atomic: Atomic, bond_id: int | None = None
) -> bool:
    """take-sell without invoice: → waiting-buyer-invoice; the buyer is asked for an invoice."""
    with atomic():
        # Stored even when the race is lost: every check passed (docs/PROTOCOL.md §Trade-index).
        trader_bump_trade_index(
            identity=taker.identity, sender=taker.sender, trade_index=taker.trade_index, returning=False
        )
        won = _transition(order, taker=taker, to_status=to_status, fields=fields, bond_id=bond_id)
        if won:
            view = order_payload(
                order,
                amount_sats=buyer_payout_sats(amount_sats=order.amount_sats, fee_sats=order.fee_sats),
                include_expires_at=False,
            )
            request_id = taker.request_id
            send(
                order.buyer_pubkey,
                Action.ADD_INVOICE,
                order,
                request_id=request_id,
                trade_index=order.trade_index_buyer,
                payload=view,
            )
            send(
                order.seller_pubkey,
                Action.WAITING_BUYER_INVOICE,
                order,
                request_id=request_id,
                trade_index=order.trade_index_seller,
            )
            publish_order_event(order, fresh=True)
    return won


def _commit_take_with_escrow(
    order: Order, *, taker: Taker, fields: dict, atomic: Atomic, bond_id: int | None = None
) -> bool:
    """take-sell with invoice, or take-buy: hold invoice first (LND), then → waiting-payment."""
    escrow: EscrowInvoice = escrow_create_hold_invoice(order=order)
    fields = {**fields, **escrow.order_fields(request_id=taker.request_id)}
    try:
        with atomic():
            trader_bump_trade_index(
                identity=taker.identity, sender=taker.sender, trade_index=taker.trade_index, returning=False
            )
            won = _transition(order, taker=taker, to_status=OrderStatus.WAITING_PAYMENT, fields=fields, bond_id=bond_id)
            if won:
                escrow_watch_on_commit(payment_hash_hex=escrow.payment_hash_hex)
                notify_pay_invoice(order, request_id=taker.request_id)
                # In-progress for buy orders; nothing for sell (docs/PROTOCOL.md §Take).
                publish_order_event(order, fresh=True)
    except Exception:
        escrow_cancel_unused(invoice=escrow, order_id=order.pk)  # rolled back: nobody will see it
        raise
    if not won:
        escrow_cancel_unused(invoice=escrow, order_id=order.pk)
        logger.info("take of order %s by %s lost the race", order.pk, taker.sender[:16])
    else:
        kill_point("take-committed")
    return won


def _transition(order: Order, *, taker: Taker, to_status: str, fields: dict, bond_id: int | None = None) -> bool:
    """The take's transition; a won one leaves `order` as it stands after it (as `order_refresh`)."""
    if bond_id is not None and not Bond.objects.select_for_update().filter(pk=bond_id, state=BondState.LOCKED).exists():
        return False  # the bonded taker canceled (its bond released) before its take resumed
    return transition_order(
        order_id=order.pk,
        from_statuses=PRE_TRADE_STATUSES,
        to_status=to_status,
        actor=taker.sender,
        reason=f"taken by {taker.sender[:16]}",
        # The waiting timeout runs from here (docs/PROTOCOL.md §Waiting-timeout).
        set_fields={**fields, "taken_at": timezone.now()},
        reload=order,
    )
