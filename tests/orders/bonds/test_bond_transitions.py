"""The bond state machine and its guarded writes (docs/PROTOCOL.md §Bonds; `orders/bonds/transitions.py`).

Rows are written directly (single-model tests); every refusal proves the row and its audit
trail are untouched. The read-then-write guard is made to decide by a competitor slipped in
between the transition's read and its UPDATE (tests/guards/support.py), not by the DB lock.
"""

from datetime import UTC, datetime
from functools import partial
from types import SimpleNamespace

import pytest
from django.db import transaction
from django.db.models import Q
from django.db.models.query import QuerySet

import orders.bonds.transitions as transitions_module
from orders import live
from orders.bonds.htlc import BondInvoice
from orders.bonds.models import Bond, BondState, BondStateChange
from orders.bonds.transitions import (
    IllegalBondTransition,
    bond_request_create,
    bond_transition,
    bond_update_guarded,
)
from tests.foundation.factories import make_order
from tests.guards.support import after_first_call
from tests.orders.bonds.support import bond_row, bond_snapshot, history

pytestmark = pytest.mark.django_db
AT = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
# docs/PROTOCOL.md §Bonds: requested → locked → released | pending-payout → slashed | forfeited | failed,
# plus lnd-canceled from locked, and a failed bond revived by a new invoice.
EDGES = {
    ("requested", "locked"), ("requested", "released"),
    ("locked", "released"), ("locked", "pending-payout"), ("locked", "lnd-canceled"),
    ("pending-payout", "slashed"), ("pending-payout", "forfeited"), ("pending-payout", "failed"),
    ("failed", "pending-payout"), ("failed", "forfeited"),
}  # fmt: skip
PAIRS = [(a, b) for a in BondState.values for b in BondState.values]


@pytest.fixture
def clock(monkeypatch):
    """`timezone.now()` of the transitions module, fixed at AT (the `updated_at` they write)."""
    monkeypatch.setattr(transitions_module, "timezone", SimpleNamespace(now=lambda: AT))


def _move(bond, from_states, to_state, **kwargs) -> bool:
    with transaction.atomic():
        return bond_transition(
            bond_id=bond.pk, from_states=from_states, to_state=to_state, actor="tester", reason="test", **kwargs
        )


@pytest.mark.parametrize(("from_state", "to_state"), PAIRS)
def test_only_the_protocol_edges_move_a_bond(from_state, to_state):
    bond = bond_row(make_order(), state=from_state)
    if (from_state, to_state) in EDGES:
        assert _move(bond, [from_state], to_state) is True
        assert (Bond.objects.get(pk=bond.pk).state, history(bond)) == (to_state, [(from_state, to_state)])
        return
    before = bond_snapshot(bond)
    with pytest.raises(IllegalBondTransition, match=f"^{from_state} -> {to_state}$"):
        _move(bond, [from_state], to_state)
    assert bond_snapshot(bond) == before


def test_a_bond_in_another_state_than_the_caller_saw_is_left_alone():
    order = make_order()
    bond = bond_row(order, state="requested")
    other = bond_row(order, state="locked", pubkey="d" * 64)
    before, other_before = bond_snapshot(bond), bond_snapshot(other)
    assert _move(bond, ["locked"], "released") is False
    assert (bond_snapshot(bond), bond_snapshot(other)) == (before, other_before)


def test_an_unknown_bond_is_not_moved():
    bond = bond_row(make_order(), state="requested")
    before = bond_snapshot(bond)
    assert _move(SimpleNamespace(pk=bond.pk + 1000), ["requested"], "released") is False
    assert (bond_snapshot(bond), BondStateChange.objects.count()) == (before, 0)


def test_a_guard_that_does_not_hold_refuses_the_move():
    bond = bond_row(make_order(), state="failed", payout_invoice="lnbcrt-given")
    before = bond_snapshot(bond)
    assert _move(bond, ["failed"], "pending-payout", guard=Q(payout_invoice__isnull=True)) is False
    assert bond_snapshot(bond) == before


def test_a_writer_between_the_read_and_the_update_wins(monkeypatch):
    """The UPDATE is filtered by the state read: a release slipped in after the read stops the lock."""
    bond = bond_row(make_order(), state="requested")
    after_first_call(monkeypatch, QuerySet, "first", lambda: Bond.objects.filter(pk=bond.pk).update(state="released"))
    assert _move(bond, ["requested"], "locked", set_fields={"locked_at": AT}) is False
    bond.refresh_from_db()
    assert (bond.state, bond.locked_at, history(bond)) == ("released", None, [])


def test_the_move_writes_its_fields_its_audit_row_and_tells_the_staff_view(clock, django_capture_on_commit_callbacks):
    order = make_order()
    bond = bond_row(order, state="locked")
    other = bond_row(order, state="locked", role="maker", pubkey="d" * 64)
    other_before = bond_snapshot(other)
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        won = bond_transition(
            bond_id=bond.pk, from_states=["locked"], to_state="released", actor="a" * 85, reason="r" * 205,
            set_fields={"decided_at": AT},
        )  # fmt: skip
    assert won is True
    bond.refresh_from_db()
    assert (bond.state, bond.decided_at, bond.updated_at) == ("released", AT, AT)
    change = BondStateChange.objects.get()
    assert (change.bond_id, change.from_state, change.to_state, change.actor, change.reason) == (
        bond.pk, "locked", "released", "a" * 80, "r" * 200,
    )  # fmt: skip
    assert [(c.func, c.args) for c in callbacks if isinstance(c, partial)] == [(live._changed, (str(order.pk),))]
    assert bond_snapshot(other) == other_before


def test_a_guarded_update_changes_only_that_bond(clock):
    order = make_order()
    bond = bond_row(order, state="pending-payout")
    other = bond_row(order, state="pending-payout", role="maker", pubkey="d" * 64)
    other_before = bond_snapshot(other)
    assert bond_update_guarded(bond_id=bond.pk, states=["pending-payout"], set_fields={"payout_asked_at": AT}) is True
    bond.refresh_from_db()
    assert (bond.state, bond.payout_asked_at, bond.updated_at, history(bond)) == ("pending-payout", AT, AT, [])
    assert bond_snapshot(other) == other_before


@pytest.mark.parametrize(
    ("_case", "states", "guard"),
    [("state not listed", ["failed"], None), ("guard fails", ["pending-payout"], Q(payout_invoice__isnull=True))],
)
def test_a_guarded_update_refused_changes_nothing(_case, states, guard):
    bond = bond_row(make_order(), state="pending-payout", payout_invoice="lnbcrt-given")
    before = bond_snapshot(bond)
    assert bond_update_guarded(bond_id=bond.pk, states=states, set_fields={"payout_asked_at": AT}, guard=guard) is False
    assert bond_snapshot(bond) == before


@pytest.mark.django_db(transaction=True)
def test_a_transition_outside_a_transaction_is_a_programming_error():
    bond = bond_row(make_order(), state="requested")
    before = bond_snapshot(bond)
    with pytest.raises(RuntimeError, match="must run inside transaction.atomic"):
        bond_transition(bond_id=bond.pk, from_states=["requested"], to_state="locked", actor="t", reason="t")
    assert bond_snapshot(bond) == before


def test_a_requested_bond_row_holds_its_party_its_invoice_and_its_deadline():
    order = make_order()
    make_order()  # another order: the row names its own
    invoice = BondInvoice("lnbcrt-the-bond", "1" * 64, "2" * 64)
    context = {"fields": {"fiat_amount": 100}, "with_escrow": True}
    bond = bond_request_create(
        order_id=order.pk, role="taker", party=("c" * 64, "d" * 64, 3, 12), invoice=invoice, amount_sats=1000,
        expires_at=AT, take_context=context,
    )  # fmt: skip
    stored = Bond.objects.get(pk=bond.pk)
    assert (stored.order_id, stored.role, stored.pubkey, stored.identity, stored.trade_index, stored.request_id) == (
        order.pk, "taker", "c" * 64, "d" * 64, 3, 12,
    )  # fmt: skip
    assert (stored.state, stored.amount_sats, stored.hash, stored.preimage, stored.payment_request) == (
        "requested", 1000, "1" * 64, "2" * 64, "lnbcrt-the-bond",
    )  # fmt: skip
    assert (stored.take_context, stored.invoice_expires_at, history(stored)) == (context, AT, [])
