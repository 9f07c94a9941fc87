"""The watcher's bond events (docs/PROTOCOL.md §Bonds, Taker bond; `orders/bonds/lock.py`), on rows written directly.

The first taker HTLC accepted locks; the take then resumes (recorded here, not run: the take
flow itself is in test_taker_bond.py). Every test has a second order whose bonds are in the
same states and must not move; the guards are made to decide by a stale read or a competitor
slipped between the check and the write (tests/guards/support.py).
"""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from uuid import UUID

import pytest
from django.db.models.query import QuerySet

import orders.bonds.lock as lock_module
import orders.bonds.release as release_module
import orders.services.take as take_module
from lightning.types import InvoiceState
from nostrbridge.models import OutboundMessage
from orders.bonds.lock import bond_hashes_watched, bond_on_accepted, bond_on_update
from orders.bonds.models import Bond
from tests.foundation.factories import make_order
from tests.guards.support import after_first_call
from tests.orders.bonds.support import bond_row, bond_snapshot, history, lnd_calls

pytestmark = pytest.mark.django_db
AT = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
BOB, CAROL, DAVE = "e" * 64, "d" * 64, "7" * 64  # valid x-only keys: the takers get messages


@pytest.fixture
def resumed(node, fake_ln, monkeypatch):
    """The takes resumed (bond ids), in order; the take flow itself is not run."""
    calls: list[int] = []
    monkeypatch.setattr(take_module, "order_take_resume", lambda *, bond_id: calls.append(bond_id) or True)
    monkeypatch.setattr(lock_module, "timezone", SimpleNamespace(now=lambda: AT))
    monkeypatch.setattr(release_module, "timezone", SimpleNamespace(now=lambda: AT))
    return calls


@pytest.fixture
def race(fake_ln):
    """Order A on the book (`waiting-taker-bond`), its maker's bond locked (`apply_to` both), bob's and
    carol's requested; order B, dave's locked."""
    # B sorts first (its id): a lookup that forgot the order's id would find B, still on the book.
    b = make_order(status="waiting-taker-bond", id=UUID(int=1))
    a = make_order(status="waiting-taker-bond", id=UUID(int=2**128 - 1))
    return SimpleNamespace(
        a=a,
        maker=bond_row(a, role="maker", pubkey="a" * 64, state="locked", fake_ln=fake_ln),
        bob=bond_row(a, pubkey=BOB, fake_ln=fake_ln),
        carol=bond_row(a, pubkey=CAROL, fake_ln=fake_ln),
        dave=bond_row(b, pubkey=DAVE, state="locked", fake_ln=fake_ln),  # B's race is over: not A's
    )


def _accepted(fake_ln, bond) -> bool:
    fake_ln.mark_accepted(bond.hash)
    return bond_on_update(payment_hash_hex=bond.hash, state=InvoiceState.ACCEPTED)


def _messages() -> list[tuple[str, str]]:
    """(recipient, action) of the messages, all about order A."""
    rows = OutboundMessage.objects.exclude(action="").order_by("pk")
    assert {str(order_id) for order_id in rows.values_list("order_id", flat=True)} <= {str(UUID(int=2**128 - 1))}
    return list(rows.values_list("recipient_pubkey", "action"))


def _state(bond) -> str:
    return Bond.objects.get(pk=bond.pk).state


def test_the_watcher_follows_unpaid_and_locked_bonds_only():
    order = make_order()
    follow = [bond_row(order, state=s).hash for s in ("requested", "locked")]
    for state in ("released", "pending-payout", "slashed", "forfeited", "failed", "lnd-canceled"):
        bond_row(order, state=state)
    follow.append(bond_row(order, state="requested").hash)
    assert bond_hashes_watched() == follow


@pytest.mark.parametrize("state", [InvoiceState.ACCEPTED, InvoiceState.CANCELED, InvoiceState.OPEN])
def test_a_hash_that_is_no_bond_is_left_to_the_escrow(race, resumed, fake_ln, state):
    before = bond_snapshot(race.bob)
    fake_ln.calls.clear()
    assert bond_on_update(payment_hash_hex="5" * 64, state=state) is False
    assert (bond_snapshot(race.bob), resumed, fake_ln.calls, _messages()) == (before, [], [], [])


@pytest.mark.parametrize("state", [InvoiceState.OPEN, InvoiceState.SETTLED])
def test_other_invoice_states_change_nothing(race, resumed, state):
    before = bond_snapshot(race.bob)
    assert bond_on_update(payment_hash_hex=race.bob.hash, state=state) is True
    assert (bond_snapshot(race.bob), resumed, _messages()) == (before, [], [])


def test_the_first_taker_htlc_locks_and_the_others_of_that_order_are_released_and_told(race, resumed, fake_ln):
    dave_before = bond_snapshot(race.dave)
    assert _accepted(fake_ln, race.bob) is True
    bob = Bond.objects.get(pk=race.bob.pk)
    assert (bob.state, bob.locked_at, history(bob)) == ("locked", AT, [("requested", "locked")])
    assert (_state(race.carol), fake_ln.invoice_state(race.carol.hash)) == ("released", InvoiceState.OPEN)
    assert resumed == [race.bob.pk]
    assert _messages() == [(CAROL, "canceled")]
    assert bond_snapshot(race.dave) == dave_before
    assert _state(race.maker) == "locked"


def test_the_lock_releases_only_its_own_orders_racing_takers(race, resumed, fake_ln):
    """Another order on the book with a taker still paying its bond: bob's lock on A is none of
    its business (the losers' query is by order)."""
    other = make_order(status="waiting-taker-bond")
    erin = bond_row(other, pubkey="6" * 64, fake_ln=fake_ln)
    erin_before = bond_snapshot(erin)

    assert _accepted(fake_ln, race.bob) is True

    assert (_state(race.bob), _state(race.carol)) == ("locked", "released")
    assert (bond_snapshot(erin), fake_ln.invoice_state(erin.hash)) == (erin_before, InvoiceState.OPEN)
    assert _messages() == [(CAROL, "canceled")]


def test_a_second_taker_htlc_after_the_lock_is_released_and_told(race, resumed, fake_ln):
    _accepted(fake_ln, race.bob)
    OutboundMessage.objects.all().delete()
    resumed.clear()
    Bond.objects.filter(pk=race.carol.pk).update(state="requested")  # still racing when its HTLC arrives
    assert _accepted(fake_ln, race.carol) is True
    assert (_state(race.bob), _state(race.carol), resumed, _messages()) == (
        "locked",
        "released",
        [],
        [(CAROL, "canceled")],
    )


@pytest.mark.parametrize(
    ("_case", "status", "told"),
    [("canceled by its maker", "canceled", True), ("taken meanwhile without bond", "waiting-payment", False)],
)
def test_an_htlc_after_the_order_left_the_book_is_released(race, resumed, fake_ln, _case, status, told):
    type(race.a).objects.filter(pk=race.a.pk).update(status=status)
    assert _accepted(fake_ln, race.bob) is True
    assert (_state(race.bob), _state(race.carol), resumed) == ("released", "requested", [])
    assert _messages() == ([(BOB, "canceled")] if told else [])


def test_a_replayed_accept_of_the_winner_releases_nothing(race, resumed, fake_ln):
    """LND reports ACCEPTED twice; the second event read the bond before the first locked it."""
    stale = Bond.objects.get(pk=race.bob.pk)
    _accepted(fake_ln, race.bob)
    OutboundMessage.objects.all().delete()
    before = bond_snapshot(race.bob)
    bond_on_accepted(bond=stale)
    assert (bond_snapshot(race.bob), resumed, _messages()) == (before, [race.bob.pk], [])


def test_a_lock_slipped_in_after_the_check_is_refused_by_the_database(race, resumed, fake_ln, monkeypatch):
    fake_ln.mark_accepted(race.bob.hash)
    after_first_call(
        monkeypatch, QuerySet, "exists", lambda: Bond.objects.filter(pk=race.carol.pk).update(state="locked")
    )
    bond_on_update(payment_hash_hex=race.bob.hash, state=InvoiceState.ACCEPTED)
    assert (_state(race.bob), _state(race.carol), resumed, _messages()) == ("requested", "locked", [], [])


def test_an_htlc_paid_after_its_release_is_refunded_at_once(race, resumed, fake_ln):
    Bond.objects.filter(pk=race.bob.pk).update(state="released")
    fake_ln.calls.clear()
    assert _accepted(fake_ln, race.bob) is True
    assert lnd_calls(fake_ln, "cancel_invoice") == [{"payment_hash": race.bob.hash}]
    assert fake_ln.invoice_state(race.bob.hash) is InvoiceState.CANCELED
    assert (_state(race.bob), resumed) == ("released", [])


def test_a_locked_bond_canceled_at_lnd_is_recorded_as_such(race, resumed, fake_ln):
    Bond.objects.filter(pk=race.bob.pk).update(state="locked")
    assert bond_on_update(payment_hash_hex=race.bob.hash, state=InvoiceState.CANCELED) is True
    bob = Bond.objects.get(pk=race.bob.pk)
    assert (bob.state, bob.lnd_canceled_at, bob.htlc_resolved_at, history(bob)) == (
        "lnd-canceled", AT, AT, [("locked", "lnd-canceled")],
    )  # fmt: skip


def test_an_unpaid_bond_expired_at_lnd_is_released_and_confirmed(race, resumed):
    assert bond_on_update(payment_hash_hex=race.bob.hash, state=InvoiceState.CANCELED) is True
    bob = Bond.objects.get(pk=race.bob.pk)
    assert (bob.state, bob.decided_at, bob.htlc_resolved_at, _state(race.carol)) == ("released", AT, AT, "requested")


def test_the_cancel_of_a_bond_released_here_is_confirmed_once(race, resumed):
    earlier = AT - timedelta(minutes=5)
    Bond.objects.filter(pk=race.bob.pk).update(state="released")
    Bond.objects.filter(pk=race.carol.pk).update(state="released", htlc_resolved_at=earlier)
    for bond in (race.bob, race.carol):
        bond_on_update(payment_hash_hex=bond.hash, state=InvoiceState.CANCELED)
    assert [Bond.objects.get(pk=b.pk).htlc_resolved_at for b in (race.bob, race.carol)] == [AT, earlier]


def test_a_cancel_report_for_a_slashed_bond_changes_nothing(race, resumed):
    Bond.objects.filter(pk=race.bob.pk).update(state="pending-payout")
    before = bond_snapshot(race.bob)
    assert bond_on_update(payment_hash_hex=race.bob.hash, state=InvoiceState.CANCELED) is True
    assert bond_snapshot(race.bob) == before
