"""`admin-settle` and `admin-cancel` (docs/PROTOCOL.md §Admin-settle, §Admin-cancel).

Shape: checks in the daemon's order → one short transaction with the guarded transition (the
arbiter against a concurrent release or cooperative cancel: the loser never reaches LND), the
refund decision, the dispute closure, the events and the replies → after the commit, LND
settles or cancels the escrow; the buyer payout (settle only) settles first if that failed.
"""

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from django.db import transaction

from disputes.models import OPEN_DISPUTE_STATUSES, Dispute, DisputeStatus
from disputes.services.authz import ensure_may_finalize, ensure_not_a_party, is_node
from disputes.services.auto_ban import auto_ban_after_resolution
from disputes.services.errors import DisputeConflict
from disputes.transitions import dispute_close
from mostro_site.config.faults import kill_point
from nostrbridge.context import Atomic
from nostrbridge.outbox import enqueue_message
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.payloads import BondResolutionPayload, Payload
from nostrbridge.statements import select_where
from orders.bonds.models import Bond, SlashReason
from orders.bonds.release import bonds_trade_end
from orders.bonds.slash import SlashChoice, bond_slash_check, bonds_slash
from orders.models import Order
from orders.publish import publish_order_event
from orders.services.admin_cancel import order_admin_cancel_pretrade
from orders.services.escrow_reconcile import escrow_ensure_held, escrow_settle_after
from orders.services.escrow_refund import escrow_refund_decide, escrow_refund_execute
from orders.services.lookup import order_get_or_not_found
from orders.services.payout import payout_schedule
from orders.status import PRE_TRADE_STATUSES, OrderStatus
from orders.transitions import transition_order
from orders.wire import order_message, send


class Resolution(enum.StrEnum):
    SETTLED = "settled"  # escrow settled, buyer payout scheduled
    REFUNDED = "seller-refunded"  # escrow canceled, order canceled-by-admin
    ALREADY_COOPERATIVELY_CANCELED = "cooperatively-canceled"  # nothing moved
    PRETRADE_CANCELED = "pretrade-canceled"  # a not-yet-taken order canceled by the node key


@dataclass(frozen=True, slots=True)
class _Request:
    """Who resolves, and where the answers go (the same for a settle and a cancel)."""

    order_id: UUID | str | None
    actor_pubkey: str
    label: str  # the audit name: the actor's pubkey, or `admin:<username>` from the console
    trade_pubkey: str | None  # the Nostr message's trade key (None from the console and REST)
    request_id: int | None
    trade_index: int | None
    reply_to: str | None  # the solver's copy; None for the node key itself
    atomic: Atomic


def dispute_resolve(
    *,
    outcome: Resolution,
    order_id: UUID | str | None,
    actor_pubkey: str,
    actor_label: str | None = None,
    actor_trade_pubkey: str | None = None,
    request_id: int | None = None,
    trade_index: int | None = None,
    payload: Payload | None = None,
    reply_to: str | None = None,
    atomic: Atomic = transaction.atomic,
) -> Resolution:
    """`outcome` SETTLED: the escrow goes to the buyer (`settled-hold-invoice`, dispute
    `settled`, payout). REFUNDED: the seller gets it back (hold invoice canceled, dispute
    `seller-refunded`, `canceled-by-admin`). Returns what happened."""
    label = actor_label or actor_pubkey
    request = _Request(order_id, actor_pubkey, label, actor_trade_pubkey, request_id, trade_index, reply_to, atomic)
    if outcome is Resolution.SETTLED:
        return _resolve(request, payload, wrong_status=CantDoReason.INVALID_ORDER_STATUS, apply=_settle)
    if outcome is Resolution.REFUNDED:
        pretrade = _pretrade_cancel(request)
        if pretrade is not None:
            return pretrade
        return _resolve(request, payload, wrong_status=CantDoReason.NOT_ALLOWED_BY_STATUS, apply=_cancel)
    raise ValueError(f"a dispute is settled or refunded, not {outcome}")


# `admin-settle` and `admin-cancel`: the same keyword arguments as `dispute_resolve`.
dispute_settle = functools.partial(dispute_resolve, outcome=Resolution.SETTLED)
dispute_cancel = functools.partial(dispute_resolve, outcome=Resolution.REFUNDED)


def _pretrade_cancel(request: _Request) -> Resolution | None:
    """`admin-cancel` of an order nobody took (no dispute): the node key cancels it (mostrod
    0.18.7's `CancelOrder`), a solver gets `not_authorized`; None for every other order."""
    order = Order.objects.filter(pk=request.order_id).first() if request.order_id is not None else None
    if order is None or order.status not in PRE_TRADE_STATUSES:
        return None
    if not is_node(request.actor_pubkey):
        raise CantDo(CantDoReason.NOT_AUTHORIZED)
    order_admin_cancel_pretrade(
        order_id=order.id,
        actor_label=request.label,
        request_id=request.request_id,
        trade_index=request.trade_index,
        reply_to=request.reply_to,
        atomic=request.atomic,
    )
    return Resolution.PRETRADE_CANCELED


def _resolve(
    request: _Request,
    payload: Payload | None,
    *,
    wrong_status: CantDoReason,
    apply: Callable[[Order, Dispute, _Request, list[Bond]], Resolution],
) -> Resolution:
    """The checks both resolutions share, in mostrod's order; then `apply` moves the money."""
    order = order_get_or_not_found(request.order_id)
    dispute = ensure_may_finalize(Dispute.objects.filter(order_id=order.id).first(), request.actor_pubkey)
    ensure_not_a_party(order, request.actor_pubkey, request.trade_pubkey)
    if order.status == OrderStatus.COOPERATIVELY_CANCELED:
        return _already_canceled(order, request)
    if order.status != OrderStatus.DISPUTE:
        raise CantDo(wrong_status)
    # Refused before anything moves (docs/PROTOCOL.md §Bonds, Slash).
    slashed = bond_slash_check(order=order, choice=slash_choice(payload))
    return apply(order, dispute, request, slashed)


def _settle(order: Order, dispute: Dispute, request: _Request, slashed: list[Bond]) -> Resolution:
    # A read: LND already refunded the seller → `cant-do` (never silence), the dispute stays.
    escrow_ensure_held(order=order)
    label, request_id, trade_index = request.label, request.request_id, request.trade_index
    # Decide, commit, settle at LND, then wake the payout; a failed settle is retried by the payout.
    with escrow_settle_after(order=order, atomic=request.atomic):
        bonds_slash(order=order, bonds=slashed, actor=label, reason=SlashReason.LOST_DISPUTE)
        moved = transition_order(
            order_id=order.id,
            from_statuses=[OrderStatus.DISPUTE],
            to_status=OrderStatus.SETTLED_HOLD_INVOICE,
            actor=label,
            reason="admin-settle",
            set_fields={"payout_request_id": request_id},
        )
        if not moved:
            raise DisputeConflict("the order left `dispute` before the settle")
        # The ruling ends the trade for the bonds (mostrod releases them at the resolution; a
        # range maker's bond ends with its range: a settled dispute publishes no child order).
        bonds_trade_end(order_id=order.id, actor=label, reason="admin-settle")
        order.refresh_from_db()
        publish_order_event(order)  # settled-hold-invoice is not a published bucket: a no-op today
        dispute_close(dispute=dispute, to_status=DisputeStatus.SETTLED, actor=label)
        if request.reply_to:
            send(request.reply_to, Action.ADMIN_SETTLED, order, request_id=request_id, trade_index=trade_index)
        send(order.seller_pubkey, Action.ADMIN_SETTLED, order, trade_index=trade_index)
        send(order.buyer_pubkey, Action.ADMIN_SETTLED, order, trade_index=trade_index)
        payout_schedule(order_id=order.id, request_id=request_id)
    auto_ban_after_resolution(order=order, loser="seller")  # committed first: it cannot undo the settle
    kill_point("solver-settled")
    return Resolution.SETTLED


def _cancel(order: Order, dispute: Dispute, request: _Request, slashed: list[Bond]) -> Resolution:
    label = request.label
    with request.atomic():
        bonds_slash(order=order, bonds=slashed, actor=label, reason=SlashReason.LOST_DISPUTE)
        moved = transition_order(
            order_id=order.id,
            from_statuses=[OrderStatus.DISPUTE],
            to_status=OrderStatus.CANCELED_BY_ADMIN,
            actor=label,
            reason="admin-cancel",
        )
        if not moved:
            raise DisputeConflict("the order left `dispute` before the cancel")
        refund = escrow_refund_decide(order=order, reason="admin-cancel")
        order.refresh_from_db()
        dispute_close(dispute=dispute, to_status=DisputeStatus.SELLER_REFUNDED, actor=label)
        publish_order_event(order)
        # One message, sent alike to the solver, the seller and the buyer (docs/PROTOCOL.md §Admin-cancel).
        message = order_message(
            Action.ADMIN_CANCELED, order.id, request_id=request.request_id, trade_index=request.trade_index
        )
        for recipient in (request.reply_to, order.seller_pubkey, order.buyer_pubkey):
            if recipient:
                enqueue_message(recipient_pubkey=recipient, message=message, order_id=order.id)
    escrow_refund_execute(refund)
    auto_ban_after_resolution(order=order, loser="buyer")  # committed first: it cannot undo the refund
    kill_point("solver-canceled")
    return Resolution.REFUNDED


def _already_canceled(order: Order, request: _Request) -> Resolution:
    """The parties canceled cooperatively first: say so to the solver's identity and stop."""
    with request.atomic():
        if request.reply_to:
            send(
                request.actor_pubkey,
                Action.COOPERATIVE_CANCEL_ACCEPTED,
                order,
                request_id=request.request_id,
                trade_index=request.trade_index,
            )
    return Resolution.ALREADY_COOPERATIVELY_CANCELED


def slash_choice(payload: Payload | None) -> SlashChoice:
    """`null` (no slash, as mostrix sends it) or `bond_resolution` with both keys."""
    if isinstance(payload, BondResolutionPayload):
        return SlashChoice(slash_buyer=payload.resolution.slash_buyer, slash_seller=payload.resolution.slash_seller)
    return SlashChoice()


# The order's fate → the status its open dispute closes with, when the parties end the trade.
_CLOSED_BY_PARTIES: dict[str, str] = {
    # mostrod #967 / #968: no longer `settled` / `seller-refunded`, which now mean a solver's ruling.
    OrderStatus.SETTLED_HOLD_INVOICE: DisputeStatus.RELEASED,  # the seller released
    OrderStatus.COOPERATIVELY_CANCELED: DisputeStatus.COOPERATIVELY_CANCELED,
}


def dispute_close_by_parties(*, order_id: UUID | str, order_status: str, actor: str) -> Dispute | None:
    """Close the order's open dispute after the parties settled it themselves (docs/PROTOCOL.md §Dispute).

    Called by orders (through the composition root) inside the transaction of the release or
    cooperative cancel; publishes the 38386 revision there. None when no dispute was open.
    """
    # Plain SQL: every release asks (docs/PERFORMANCE.md); the ORM's `.first()` orders by pk as well.
    open_disputes = select_where(Dispute, where={"order_id": order_id, "status": sorted(OPEN_DISPUTE_STATUSES)})
    dispute = open_disputes[0] if open_disputes else None
    if dispute is None:
        return None
    closed = dispute_close(dispute=dispute, to_status=_CLOSED_BY_PARTIES[order_status], actor=actor)
    return dispute if closed else None
