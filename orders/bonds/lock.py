"""Bond HTLC events from the invoice watcher (docs/PROTOCOL.md §Bonds).

Accepted: a taker bond locks only if no other taker bond of the order is locked (checked under
the order's row lock, and the database's partial unique index as the backstop); the other
takers' requested bonds are released and told `canceled`; the winner's take resumes after the
commit. Canceled by LND: a bond we released is confirmed; a *locked* bond nobody here decided
to cancel is recorded as `lnd-canceled` and reported (mostrod #920 records it as a release).
"""

import functools
import logging

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from lightning.types import InvoiceState
from mostro_site.config.faults import kill_point
from nostrbridge.protocol.enums import Action
from nostrbridge.statement_sql import quoted_column, table_name
from nostrbridge.statements import select_one
from orders.bonds.models import Bond, BondRole, BondState
from orders.bonds.release import bonds_finish_htlcs, bonds_release
from orders.bonds.transitions import bond_transition, bond_update_guarded
from orders.models import Order
from orders.selectors import column_values
from orders.status import ALREADY_CANCELED_STATUSES, PRE_TRADE_STATUSES
from orders.wire import send

logger = logging.getLogger(__name__)
ACTOR = "lightning"


def bond_hashes_watched() -> list[str]:
    """Bond invoices whose LND state still matters: unpaid ones and locked ones, in pk order."""
    # Plain SQL, the ORM's rows: the invoice watcher asks at every take, bonds or not (docs/PERFORMANCE.md).
    return column_values(_watched_sql(), [BondState.REQUESTED.value, BondState.LOCKED.value])


@functools.cache
def _watched_sql() -> str:
    column = functools.partial(quoted_column, Bond)
    # Identifiers from the model's metadata; every value is a parameter.
    return (
        f"SELECT {column('hash')} FROM {table_name(Bond)} WHERE {column('state')} IN (%s, %s)"  # noqa: S608
        f" AND {column('hash')} IS NOT NULL ORDER BY {column('id')}"
    )


def bond_on_update(*, payment_hash_hex: str, state: InvoiceState) -> bool:
    """True when the hash is a bond's (the escrow handlers must not see it)."""
    # Plain SQL: every invoice update of every hold invoice asks this first (docs/PERFORMANCE.md).
    bond = select_one(Bond, hash=payment_hash_hex)
    if bond is None:
        return False
    if state is InvoiceState.ACCEPTED:
        bond_on_accepted(bond=bond)
    elif state is InvoiceState.CANCELED:
        bond_on_canceled(bond=bond)
    return True


def bond_on_accepted(*, bond: Bond) -> None:
    if bond.state != BondState.REQUESTED:
        if bond.state == BondState.RELEASED:
            bonds_finish_htlcs(bond_ids=[bond.pk])  # paid after we released it: refund now
        return  # LND replaying a state already recorded
    kill_point("bond-accepted")
    if bond.role == BondRole.TAKER:
        won = _lock_taker(bond)
        if won:
            from orders.services.take import order_take_resume  # the take flow sits above the bond rows

            try:
                order_take_resume(bond_id=bond.pk)
            except Exception:
                # The bond stays locked; the reconciliation job resumes the take.
                logger.exception("take of order %s by bond %s could not resume yet", bond.order_id, bond.pk)
    else:
        from orders.bonds.maker import maker_bond_on_locked

        maker_bond_on_locked(bond=bond)


def _lock_taker(bond: Bond) -> bool:
    now = timezone.now()
    with transaction.atomic(durable=True):
        order = Order.objects.select_for_update().filter(pk=bond.order_id).first()
        takeable = order is not None and order.status in PRE_TRADE_STATUSES
        locked_other = Bond.objects.filter(order_id=bond.order_id, role=BondRole.TAKER, state=BondState.LOCKED)
        if not takeable or locked_other.exclude(pk=bond.pk).exists():
            # Too late: another taker won, or the order left the book. Canceled orders tell
            # the taker; other states just release (docs/PROTOCOL.md §Bonds).
            tell = order is None or order.status in ALREADY_CANCELED_STATUSES or takeable
            released = bonds_release(bonds=[bond], actor=ACTOR, reason="lost the race or the order left the book")
            if tell and released:  # the winner's lock may have released (and told) this one already
                send(bond.pubkey, Action.CANCELED, Order(pk=bond.order_id))
            return False
        try:
            with transaction.atomic():
                won = bond_transition(
                    bond_id=bond.pk,
                    from_states=[BondState.REQUESTED],
                    to_state=BondState.LOCKED,
                    actor=ACTOR,
                    reason="bond HTLC accepted",
                    set_fields={"locked_at": now},
                )
        except IntegrityError:
            won = False  # the partial unique index: another taker bond locked first
        if not won:
            return False
        losers = Bond.objects.filter(order_id=bond.order_id, role=BondRole.TAKER, state=BondState.REQUESTED)
        bonds_release(
            bonds=list(losers), actor=ACTOR, reason="another taker's bond locked first", notify_takers=Action.CANCELED
        )
    logger.info("taker bond %s of order %s locked", bond.pk, bond.order_id)
    return True


def bond_on_canceled(*, bond: Bond) -> None:
    now = timezone.now()
    with transaction.atomic(durable=True):
        if bond.state == BondState.LOCKED:
            if bond_transition(
                bond_id=bond.pk,
                from_states=[BondState.LOCKED],
                to_state=BondState.LND_CANCELED,
                actor=ACTOR,
                reason="LND canceled the locked HTLC; nobody here decided it",
                set_fields={"lnd_canceled_at": now, "htlc_resolved_at": now},
            ):
                logger.error(
                    "OPERATOR: LND canceled the locked %s bond %s of order %s (%s sats): it can no longer be slashed",
                    bond.role,
                    bond.pk,
                    bond.order_id,
                    bond.amount_sats,
                )
            return
        if bond.state == BondState.REQUESTED:
            # Never paid; its invoice expired at LND: a release.
            bonds_release(bonds=[bond], actor=ACTOR, reason="bond invoice canceled or expired at LND")
        bond_update_guarded(
            bond_id=bond.pk,
            states=[BondState.RELEASED],
            set_fields={"htlc_resolved_at": now},
            guard=Q(htlc_resolved_at__isnull=True),
        )
