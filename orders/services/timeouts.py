"""Scheduler-driven expiry and waiting-state timeouts (docs/PROTOCOL.md §Waiting-timeout, §Expiry, §Timers).

Each service handles one order and is safe to run twice at once: the status change is a
guarded transition that re-confirms what was read (status, `taken_at`, hold-invoice hash),
so a concurrent take, cancel, HTLC or second job run makes it lose and skip. The decision is
recorded before LND is asked to refund (`orders.services.escrow_refund`); a refund LND does not
confirm is retried by the sweep.
"""

import logging
from datetime import datetime, timedelta
from uuid import UUID

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from lightning import get_lightning_client
from lightning.errors import InvoiceNotFound, LightningError
from lightning.types import InvoiceState
from mostro_site.config import node_config
from nostrbridge.protocol.enums import Action
from orders.bonds.models import SlashReason
from orders.bonds.slash import BondSlashRefused, SlashChoice, bond_slash_check, bonds_slash
from orders.models import Order
from orders.publish import publish_order_event
from orders.services.cancel import order_reset_fields
from orders.services.escrow import escrow_on_accepted
from orders.services.escrow_refund import escrow_refund_decide, escrow_refund_execute
from orders.status import WAITING_STATUSES, OrderKind, OrderStatus
from orders.transitions import transition_order
from orders.wire import order_payload, send

logger = logging.getLogger(__name__)

ACTOR = "scheduler"
S = OrderStatus
EXPIRABLE_STATUSES = (S.PENDING, S.WAITING_TAKER_BOND, S.WAITING_MAKER_BOND)

# Outcomes, also the keys of the jobs' count dicts.
EXPIRED = "expired"
TAKER_RESET = "taker-reset"
MAKER_CANCELED = "maker-canceled"
ESCROW_PAID = "escrow-paid"
SKIPPED = "skipped"


# --- pending-order expiry (docs/PROTOCOL.md §Expiry) ------------------------------------------


def expired_order_ids(*, now: datetime, limit: int) -> list[UUID]:
    """Pre-trade orders whose `expires_at` has passed, oldest first."""
    query = Order.objects.filter(status__in=EXPIRABLE_STATUSES, expires_at__lt=now).order_by("expires_at")
    return list(query.values_list("pk", flat=True)[:limit])


def order_expire(*, order_id: UUID | str, now: datetime | None = None) -> bool:
    """`pending`/`waiting-*-bond` past `expires_at` → `expired`. No DM is sent.

    The 38383 revision says `canceled`, except for `waiting-maker-bond` orders, which were
    never published. True when this call expired the order.
    """
    now = now or timezone.now()
    order = Order.objects.filter(pk=order_id).first()
    if order is None or order.status not in EXPIRABLE_STATUSES:
        return False
    with transaction.atomic(durable=True):
        won = transition_order(
            order_id=order.pk,
            from_statuses=[order.status],
            to_status=S.EXPIRED,
            actor=ACTOR,
            reason="expired",
            guard=Q(expires_at__lt=now),  # a re-read order must still be past its lifetime
        )
        if won and order.status != S.WAITING_MAKER_BOND:
            publish_order_event(order, now=int(now.timestamp()))
    if won:
        logger.info("order %s expired (was %s)", order.pk, order.status)
    return won


# --- waiting-state timeouts (docs/PROTOCOL.md §Waiting-timeout) ------------------------------


def timed_out_order_ids(*, now: datetime, limit: int) -> list[UUID]:
    """Waiting orders whose current duty started more than `expiration_seconds` ago."""
    cutoff = now - timedelta(seconds=node_config().expiration_seconds)
    query = Order.objects.filter(status__in=WAITING_STATUSES, taken_at__lt=cutoff).order_by("taken_at")
    return list(query.values_list("pk", flat=True)[:limit])


def taker_is_at_fault(order: Order) -> bool:
    """The taker owes the current duty: a sell order's buyer invoice or a buy order's escrow."""
    if order.kind == OrderKind.SELL:
        return order.status == S.WAITING_BUYER_INVOICE
    return order.status == S.WAITING_PAYMENT


def order_timeout(*, order_id: UUID | str, now: datetime | None = None) -> str:
    """Act on one timed-out waiting order; returns one of the outcome constants.

    Taker at fault → back to `pending` and republished, `new-order` to the maker, `canceled`
    to the taker. Maker at fault → `canceled` for both. `dev_fee_sats` is reset to 0 either way.
    """
    now = now or timezone.now()
    order = Order.objects.filter(pk=order_id).first()
    if order is None or not _still_timed_out(order, now):
        return SKIPPED
    blocked = _escrow_precheck(order)
    if blocked is not None:
        return blocked
    taker_fault = taker_is_at_fault(order)
    # The decision first (status + refund row, one transaction), then LND: an add-invoice or
    # an HTLC that lands in between finds the order moved and loses its own guard.
    with transaction.atomic(durable=True):
        slashed = _slash_on_timeout(order)
        won = _reset_to_pending(order, now) if taker_fault else _cancel_for_maker(order, now)
        if not won and slashed:
            transaction.set_rollback(True)  # the order moved: the slash is undone with it
        refund = escrow_refund_decide(order=order, reason="waiting timeout") if won else None
    if not won:
        logger.info("order %s changed before its timeout could apply; skipped", order.pk)
        return SKIPPED
    escrow_refund_execute(refund)
    outcome = TAKER_RESET if taker_fault else MAKER_CANCELED
    logger.info("order %s timed out in %s: %s", order.pk, order.status, outcome)
    return outcome


def _slash_on_timeout(order: Order) -> list[int]:
    """With `slash_on_waiting_timeout`, the bond of the party that owed the duty is slashed
    (docs/PROTOCOL.md §Bonds, Slash): the buyer owes the invoice, the seller the escrow. The
    other bonds are then released (or kept, the maker's on a republish) by the transition."""
    if not node_config().bond_slash_on_waiting_timeout:
        return []
    side = "buyer" if order.status == S.WAITING_BUYER_INVOICE else "seller"
    try:
        bonds = bond_slash_check(order=order, choice=SlashChoice(**{f"slash_{side}": True}))
    except BondSlashRefused as exc:  # no locked bond on that side (or none of a range's left): no slash
        logger.debug("order %s: no timeout slash (%s)", order.pk, exc)
        return []
    return bonds_slash(order=order, bonds=bonds, actor=ACTOR, reason=SlashReason.TIMEOUT)


def _still_timed_out(order: Order, now: datetime) -> bool:
    if order.status not in WAITING_STATUSES or order.taken_at is None:
        return False
    return order.taken_at < now - timedelta(seconds=node_config().expiration_seconds)


def _escrow_precheck(order: Order) -> str | None:
    """An outcome when the timeout must not apply this tick, else None.

    A seller whose HTLC is already accepted has done the duty; the invoice watcher may just be
    behind. The HTLC is handed to the escrow service (idempotent) instead of refunding a
    payment that arrived. A node that cannot be asked skips the order until the next tick.
    """
    if order.status != S.WAITING_PAYMENT or not order.hold_invoice_hash or order.invoice_held_at:
        return None
    try:
        update = get_lightning_client().lookup_invoice(payment_hash=bytes.fromhex(order.hold_invoice_hash))
    except InvoiceNotFound:
        return None
    except LightningError as exc:
        logger.warning("order %s: cannot look up its hold invoice (%s); timeout retried later", order.pk, exc)
        return SKIPPED
    if update.state is not InvoiceState.ACCEPTED:
        return None
    logger.info("order %s: escrow accepted at LND before the timeout; recording it", order.pk)
    escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash)
    return ESCROW_PAID


def _reconfirm(order: Order) -> Q:
    # Nothing moved since the read: same duty anchor, same escrow, same HTLC state.
    return Q(
        taken_at=order.taken_at,
        hold_invoice_hash=order.hold_invoice_hash,
        invoice_held_at__isnull=order.invoice_held_at is None,
    )


def _reset_to_pending(order: Order, now: datetime) -> bool:
    taker = order.taker_pubkey
    won = transition_order(
        order_id=order.pk,
        from_statuses=[order.status],
        to_status=S.PENDING,
        actor=ACTOR,
        reason="taker timeout: back on the book",
        set_fields={**order_reset_fields(order), "dev_fee_sats": 0},
        guard=_reconfirm(order),
    )
    if not won:
        return False
    current = Order.objects.get(pk=order.pk)
    publish_order_event(current, now=int(now.timestamp()))
    send(current.maker_pubkey, Action.NEW_ORDER, current, payload=order_payload(current, include_maker_pubkey=True))
    send(taker, Action.CANCELED, current)
    return True


def _cancel_for_maker(order: Order, now: datetime) -> bool:
    won = transition_order(
        order_id=order.pk,
        from_statuses=[order.status],
        to_status=S.CANCELED,
        actor=ACTOR,
        reason="maker timeout: canceled",
        set_fields={"dev_fee_sats": 0},
        guard=_reconfirm(order),
    )
    if not won:
        return False
    current = Order.objects.get(pk=order.pk)
    publish_order_event(current, now=int(now.timestamp()))
    send(current.maker_pubkey, Action.CANCELED, current)
    send(current.taker_pubkey, Action.CANCELED, current)
    return True
