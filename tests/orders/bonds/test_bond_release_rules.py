"""Which order moves release which bonds, and finishing decided bonds at LND (docs/PROTOCOL.md §Bonds, Release).

Single-model tests: bonds are written directly with their hold invoices at the fake LND, the
order's move is announced to `bonds_on_order_transition` as `transition_order` does, and the
post-commit LND work runs through `django_capture_on_commit_callbacks`. A second order's
bonds are in the same states everywhere and must never move.
"""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.db import transaction

import orders.bonds.release as release_module
from lightning.types import InvoiceState
from nostrbridge.models import OutboundMessage
from orders.bonds.models import Bond
from orders.bonds.release import (
    bonds_finish_htlcs,
    bonds_on_order_transition,
    bonds_release,
    bonds_trade_end,
    unfinished_bond_ids,
)
from orders.models import Order
from tests.foundation.factories import make_order
from tests.guards.support import after_first_call
from tests.orders.bonds.support import bond_row, bond_snapshot, lnd_calls

pytestmark = pytest.mark.django_db
AT = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
MAKER, BOB, CAROL = "a" * 64, "e" * 64, "d" * 64  # valid x-only keys: the takers get messages
SETTLED = ("pending-payout", "slashed", "forfeited", "failed")


@pytest.fixture
def clock(monkeypatch):
    """The release module's clock: AT, then one second later at every reading."""
    ticks = iter(range(1000))
    monkeypatch.setattr(release_module, "timezone", SimpleNamespace(now=lambda: AT + timedelta(seconds=next(ticks))))


@pytest.fixture
def two_orders(node, fake_ln):
    """Order A (on trial) and order B, each with a locked maker bond, bob's locked and carol's requested taker bond."""

    def bonds(order):
        return {
            "maker": bond_row(order, role="maker", pubkey=MAKER, state="locked", fake_ln=fake_ln),
            "bob": bond_row(order, pubkey=BOB, state="locked", fake_ln=fake_ln),
            "carol": bond_row(order, pubkey=CAROL, state="requested", fake_ln=fake_ln),
        }

    a, b = make_order(status="pending"), make_order(status="pending")
    return SimpleNamespace(a=a, b=b, bonds=bonds(a), others=bonds(b))


def _announce(order, from_status, to_status, callbacks_fixture) -> None:
    with callbacks_fixture(execute=True), transaction.atomic():
        bonds_on_order_transition(order_id=order.pk, from_status=from_status, to_status=to_status, actor="mover")


def _messages() -> list[tuple[str, str]]:
    return list(OutboundMessage.objects.exclude(action="").order_by("pk").values_list("recipient_pubkey", "action"))


def _states(bonds: dict) -> dict:
    return {name: Bond.objects.get(pk=bond.pk).state for name, bond in bonds.items()}


def test_a_trade_end_releases_every_open_bond_of_that_order_and_cancels_them_after_commit(
    two_orders, fake_ln, clock, django_capture_on_commit_callbacks
):
    slashed = bond_row(two_orders.a, pubkey="9" * 64, state="pending-payout", fake_ln=fake_ln)
    untouched = [bond_snapshot(b) for b in [slashed, *two_orders.others.values()]]
    _announce(two_orders.a, "active", "success", django_capture_on_commit_callbacks)
    assert _states(two_orders.bonds) == {"maker": "released", "bob": "released", "carol": "released"}
    was = {"maker": "locked", "bob": "locked", "carol": "requested"}
    for name, bond in two_orders.bonds.items():
        bond.refresh_from_db()
        change = bond.changes.get()
        assert (bond.decided_at, change.from_state, change.to_state, change.actor, change.reason) == (
            AT, was[name], "released", "mover", "order success",
        )  # fmt: skip
        assert (fake_ln.invoice_state(bond.hash), bond.htlc_resolved_at is not None) == (InvoiceState.CANCELED, True)
    assert [bond_snapshot(b) for b in [slashed, *two_orders.others.values()]] == untouched
    assert _messages() == []  # a trade that ran tells no taker `canceled` from here


def test_the_maker_cancel_on_the_book_tells_each_racing_taker(two_orders, django_capture_on_commit_callbacks):
    _announce(two_orders.a, "waiting-taker-bond", "canceled", django_capture_on_commit_callbacks)
    assert _states(two_orders.bonds) == {"maker": "released", "bob": "released", "carol": "released"}
    assert _messages() == [(BOB, "canceled"), (CAROL, "canceled")]
    assert set(OutboundMessage.objects.exclude(action="").values_list("order_id", flat=True)) == {two_orders.a.pk}


@pytest.mark.parametrize(("from_status", "to_status"), [("active", "canceled"), ("pending", "expired")])
def test_other_ends_release_without_telling_the_takers(
    two_orders, from_status, to_status, django_capture_on_commit_callbacks
):
    _announce(two_orders.a, from_status, to_status, django_capture_on_commit_callbacks)
    assert _states(two_orders.bonds) == {"maker": "released", "bob": "released", "carol": "released"}
    assert _messages() == []


def test_a_taker_put_back_on_the_book_loses_its_bond_and_the_maker_keeps_hers(
    two_orders, django_capture_on_commit_callbacks
):
    _announce(two_orders.a, "waiting-payment", "pending", django_capture_on_commit_callbacks)
    assert _states(two_orders.bonds) == {"maker": "locked", "bob": "released", "carol": "released"}
    assert _states(two_orders.others) == {"maker": "locked", "bob": "locked", "carol": "requested"}


@pytest.mark.parametrize(
    ("from_status", "to_status"),
    [
        ("waiting-payment", "active"),
        ("waiting-buyer-invoice", "waiting-payment"),
        ("active", "fiat-sent"),
        ("waiting-maker-bond", "pending"),
        ("waiting-taker-bond", "pending"),
    ],
)
def test_moves_that_end_nothing_release_nothing(
    two_orders, fake_ln, from_status, to_status, django_capture_on_commit_callbacks
):
    before = {name: bond_snapshot(b) for name, b in two_orders.bonds.items()}
    fake_ln.calls.clear()
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        bonds_on_order_transition(order_id=two_orders.a.pk, from_status=from_status, to_status=to_status, actor="m")
    assert ({name: bond_snapshot(b) for name, b in two_orders.bonds.items()}, callbacks, fake_ln.calls) == (
        before,
        [],
        [],
    )


def test_a_bond_released_meanwhile_is_not_released_again(two_orders, fake_ln, django_capture_on_commit_callbacks):
    stale = Bond.objects.get(pk=two_orders.bonds["carol"].pk)  # what the caller read
    Bond.objects.filter(pk=stale.pk).update(state="released")  # another writer, first
    before = bond_snapshot(stale)
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        assert bonds_release(bonds=[stale], actor="m", reason="r", notify_takers=True) == []
    assert (bond_snapshot(stale), callbacks, _messages()) == (before, [], [])


def test_finishing_cancels_released_settles_slashed_and_leaves_the_rest(node, fake_ln, clock):
    order = make_order()
    bonds = {state: bond_row(order, state=state, fake_ln=fake_ln) for state in ("released", *SETTLED)}
    bonds["locked"] = bond_row(order, state="locked", fake_ln=fake_ln)
    bonds["requested"] = bond_row(order, state="requested", fake_ln=fake_ln)
    bonds["done"] = bond_row(order, state="released", fake_ln=fake_ln, htlc_resolved_at=AT - timedelta(days=1))
    other = bond_row(order, state="released", fake_ln=fake_ln)  # not asked for
    fake_ln.calls.clear()
    assert bonds_finish_htlcs(bond_ids=[b.pk for b in bonds.values()]) == 5
    assert lnd_calls(fake_ln, "cancel_invoice") == [{"payment_hash": bonds["released"].hash}]
    assert lnd_calls(fake_ln, "settle_invoice") == [{"payment_hash": bonds[state].hash} for state in SETTLED]
    resolved = {name: Bond.objects.get(pk=b.pk).htlc_resolved_at for name, b in bonds.items()}
    assert resolved == {
        "released": AT, "pending-payout": AT + timedelta(seconds=1), "slashed": AT + timedelta(seconds=2),
        "forfeited": AT + timedelta(seconds=3), "failed": AT + timedelta(seconds=4), "locked": None,
        "requested": None, "done": AT - timedelta(days=1),
    }  # fmt: skip
    assert (Bond.objects.get(pk=other.pk).htlc_resolved_at, fake_ln.invoice_state(other.hash)) == (
        None, InvoiceState.ACCEPTED,
    )  # fmt: skip


def test_an_htlc_lnd_refuses_stays_unfinished_and_the_next_one_is_still_done(node, fake_ln, clock):
    order = make_order()
    settled_at_lnd = bond_row(order, state="released", fake_ln=fake_ln)
    fake_ln.settle_invoice(preimage=bytes.fromhex(settled_at_lnd.preimage))  # cannot be canceled any more
    fine = bond_row(order, state="released", fake_ln=fake_ln)
    assert bonds_finish_htlcs(bond_ids=[settled_at_lnd.pk, fine.pk]) == 1
    assert [Bond.objects.get(pk=b.pk).htlc_resolved_at for b in (settled_at_lnd, fine)] == [None, AT]


def test_a_second_sweep_between_the_lnd_call_and_the_record_keeps_the_first_record(node, fake_ln, clock, monkeypatch):
    bond = bond_row(make_order(), state="released", fake_ln=fake_ln)
    ran = after_first_call(
        monkeypatch, release_module, "bond_htlc_cancel", lambda: bonds_finish_htlcs(bond_ids=[bond.pk])
    )
    assert bonds_finish_htlcs(bond_ids=[bond.pk]) == 1
    assert ran == [1]
    assert Bond.objects.get(pk=bond.pk).htlc_resolved_at == AT  # the competitor's, read first


def test_the_sweep_lists_decided_bonds_lnd_has_not_confirmed_oldest_first():
    order = make_order()
    states = ("requested", "locked", "released", *SETTLED, "lnd-canceled")
    bonds = {state: bond_row(order, state=state).pk for state in states}
    wanted = [bonds[state] for state in ("released", *SETTLED)]
    bond_row(order, state="released", htlc_resolved_at=AT)
    assert unfinished_bond_ids() == wanted
    assert unfinished_bond_ids(limit=2) == wanted[:2]


def test_the_sweep_takes_a_hundred_at_a_time():
    order = make_order()
    ids = [bond_row(order, state="released").pk for _ in range(101)]
    assert unfinished_bond_ids() == ids[:100]


def test_the_trade_end_of_an_order_that_does_not_exist_raises_and_moves_nothing(two_orders):
    """The plain-SQL read keeps `Order.objects.get`'s contract: an unknown id is DoesNotExist
    (not an AttributeError deep in the range check), and no bond moves."""
    before = [bond_snapshot(bond) for bond in Bond.objects.order_by("pk")]
    with transaction.atomic(), pytest.raises(Order.DoesNotExist):
        bonds_trade_end(order_id="0f5e1f27-5c83-4f0c-9d86-6a5e1a3f2b11", actor="node", reason="trade over")
    assert (len(before), [bond_snapshot(bond) for bond in Bond.objects.order_by("pk")]) == (6, before)
