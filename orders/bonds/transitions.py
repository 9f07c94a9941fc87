"""The only code that writes `Bond.state` (docs/PROTOCOL.md §Bonds).

Same shape as `orders/transitions.py`: a conditional UPDATE guarded by the state the caller saw
(plus any invariant), then an audit row, inside the caller's transaction. Zero rows changed
means another writer won. The decision is stored before the Lightning call that carries it out.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from orders.bonds.models import Bond, BondState, BondStateChange
from orders.live import order_changed_on_commit

if TYPE_CHECKING:
    from orders.bonds.htlc import BondInvoice

B = BondState
ALLOWED: dict[str, frozenset[str]] = {
    B.REQUESTED: frozenset({B.LOCKED, B.RELEASED}),
    B.LOCKED: frozenset({B.RELEASED, B.PENDING_PAYOUT, B.LND_CANCELED}),
    B.PENDING_PAYOUT: frozenset({B.SLASHED, B.FORFEITED, B.FAILED}),
    B.FAILED: frozenset({B.PENDING_PAYOUT, B.FORFEITED}),
}
OPEN_STATES = frozenset({B.REQUESTED, B.LOCKED})


class IllegalBondTransition(Exception):
    """A programming error: the bond state machine has no such move."""


def bond_transition(
    *,
    bond_id: int,
    from_states: Iterable[str],
    to_state: str,
    actor: str,
    reason: str,
    set_fields: dict[str, Any] | None = None,
    guard: Q | None = None,
) -> bool:
    """Move the bond to `to_state` if it is in one of `from_states`. True when this call won."""
    if not connection.in_atomic_block:
        raise RuntimeError("bond_transition must run inside transaction.atomic()")
    allowed = set(from_states)
    for state in allowed:
        if to_state not in ALLOWED.get(state, frozenset()):
            raise IllegalBondTransition(f"{state} -> {to_state}")
    row = Bond.objects.select_for_update().filter(pk=bond_id).values_list("state", "order_id").first()
    if row is None or row[0] not in allowed:
        return False
    query = Bond.objects.filter(pk=bond_id, state=row[0])
    if guard is not None:
        query = query.filter(guard)
    if query.update(state=to_state, updated_at=timezone.now(), **(set_fields or {})) == 0:
        return False
    BondStateChange.objects.create(
        bond_id=bond_id, from_state=row[0], to_state=to_state, actor=actor[:80], reason=reason[:200]
    )
    order_changed_on_commit(row[1])
    return True


def bond_update_guarded(
    *, bond_id: int, states: Iterable[str], set_fields: dict[str, Any], guard: Q | None = None
) -> bool:
    """Change non-state columns only while the bond is still in one of `states`."""
    query = Bond.objects.filter(pk=bond_id, state__in=list(states))
    if guard is not None:
        query = query.filter(guard)
    return query.update(updated_at=timezone.now(), **set_fields) == 1


def bond_request_create(
    *,
    order_id: Any,
    role: str,
    party: tuple[str, str, int | None, int | None],
    invoice: "BondInvoice",
    amount_sats: int,
    expires_at: datetime,
    take_context: dict | None = None,
) -> Bond:
    """A bond's first row: its hold invoice issued, nothing locked (`requested`). `party` is
    (trade key, identity, trade index, request id) of the trader asked to lock it."""
    pubkey, identity, trade_index, request_id = party
    return Bond.objects.create(
        order_id=order_id,
        role=role,
        pubkey=pubkey,
        identity=identity,
        trade_index=trade_index,
        request_id=request_id,
        state=BondState.REQUESTED,
        amount_sats=amount_sats,
        hash=invoice.payment_hash_hex,
        preimage=invoice.preimage_hex,
        payment_request=invoice.payment_request,
        take_context=take_context or {},
        invoice_expires_at=expires_at,
    )
