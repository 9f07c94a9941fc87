"""Which bond a slash takes, and the slash decision itself (docs/PROTOCOL.md §Bonds, Slash).

Single-model tests on rows written directly: a sell order whose seller (the maker) and buyer
(the taker) may each hold bonds; the solver pipeline runs in tests/disputes/test_bond_slash.py.
"""

from dataclasses import FrozenInstanceError
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.db import transaction

import orders.bonds.slash as slash_module
from lightning.types import InvoiceState
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.enums import CantDoReason
from orders.bonds.models import Bond
from orders.bonds.slash import BondSlashRefused, SlashChoice, bond_slash_check, bonds_slash
from tests.foundation.factories import make_order
from tests.orders.bonds.support import bond_row, bond_snapshot
from tests.orders.services.support import configure

pytestmark = pytest.mark.django_db
SELLER, BUYER, CAROL = "a" * 64, "e" * 64, "f" * 64
AT = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


@pytest.fixture
def order():
    return make_order(status="dispute", buyer_pubkey=BUYER)


def _refused(order, **choice) -> BondSlashRefused:
    with pytest.raises(BondSlashRefused) as refused:
        bond_slash_check(order=order, choice=SlashChoice(**choice))
    assert refused.value.reason == CantDoReason.INVALID_PAYLOAD
    return refused.value


def _messages() -> list[tuple[str, str]]:
    return list(OutboundMessage.objects.exclude(action="").order_by("pk").values_list("recipient_pubkey", "action"))


def test_the_side_locked_bond_is_taken_not_its_older_or_newer_released_ones(order):
    bond_row(order, pubkey=BUYER, state="released")
    locked = bond_row(order, pubkey=BUYER, state="locked")
    bond_row(order, pubkey=BUYER, state="released")
    assert bond_slash_check(order=order, choice=SlashChoice(slash_buyer=True)) == [locked]


def test_without_a_locked_bond_the_side_latest_bond_explains_the_refusal(order):
    bond_row(order, pubkey=BUYER, state="locked", role="maker")  # not the buyer's role on a sell order
    bond_row(order, pubkey=BUYER, state="lnd-canceled")
    bond_row(order, pubkey=BUYER, state="released")
    assert _refused(order, slash_buyer=True).message == "the buyer's bond is released, not locked: nothing to slash"


@pytest.mark.parametrize(
    ("_case", "pubkey", "on_this_order"),
    [("another taker of this order", CAROL, True), ("another order", BUYER, False)],
)
def test_a_bond_that_is_not_the_side_own_is_never_slashed(order, _case, pubkey, on_this_order):
    where = order if on_this_order else make_order(status="dispute", buyer_pubkey=BUYER)
    bond = bond_row(where, pubkey=pubkey, state="locked")
    before = bond_snapshot(bond)
    assert _refused(order, slash_buyer=True).message == "the buyer posted no bond on this order: nothing to slash"
    assert bond_snapshot(bond) == before


def test_the_seller_maker_bond_is_the_seller_side(order):
    maker = bond_row(order, role="maker", pubkey=SELLER, state="locked")
    taker = bond_row(order, pubkey=BUYER, state="locked")
    assert bond_slash_check(order=order, choice=SlashChoice(slash_seller=True, slash_buyer=True)) == [taker, maker]


def test_a_slash_choice_cannot_change_after_it_was_checked():
    choice = SlashChoice(slash_buyer=True)
    with pytest.raises(FrozenInstanceError):
        choice.slash_seller = True  # type: ignore[misc]
    assert (choice.sides, SlashChoice().sides) == (["buyer"], [])


def test_slash_freezes_the_split_and_the_recipient_then_settles_after_commit(
    order, fake_ln, settings, monkeypatch, django_capture_on_commit_callbacks
):
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_SLASH_NODE_SHARE_PCT=0.3)
    monkeypatch.setattr(slash_module, "timezone", SimpleNamespace(now=lambda: AT))
    bond = bond_row(order, pubkey=BUYER, state="locked", amount_sats=1001, fake_ln=fake_ln)
    other = bond_row(order, role="maker", pubkey=SELLER, state="locked", fake_ln=fake_ln)
    other_before = bond_snapshot(other)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        assert bonds_slash(order=order, bonds=[bond], actor="solver", reason="lost-dispute") == [bond.pk]
    bond.refresh_from_db()
    # floor(1001 × 0.3) = 300 to the node, 701 to the seller.
    assert (bond.state, bond.decided_at, bond.slashed_at, bond.slashed_reason) == (
        "pending-payout", AT, AT, "lost-dispute",
    )  # fmt: skip
    assert (bond.node_share_sats, bond.payout_sats, bond.payout_recipient) == (300, 701, SELLER)
    assert (fake_ln.invoice_state(bond.hash), bond.htlc_resolved_at is not None) == (InvoiceState.SETTLED, True)
    assert _messages() == [(BUYER, "bond-slashed")]
    assert bond_snapshot(other) == other_before
    assert fake_ln.invoice_state(other.hash) is InvoiceState.ACCEPTED


def test_a_bond_released_meanwhile_is_not_slashed_and_nothing_is_sent(
    order, fake_ln, django_capture_on_commit_callbacks
):
    bond = bond_row(order, pubkey=BUYER, state="locked", fake_ln=fake_ln)
    stale = Bond.objects.get(pk=bond.pk)  # what the check read
    Bond.objects.filter(pk=bond.pk).update(state="released")  # another writer, first
    before = bond_snapshot(bond)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(BondSlashRefused) as refused:
        with transaction.atomic():
            bonds_slash(order=order, bonds=[stale], actor="solver", reason="lost-dispute")
    assert refused.value.message == "the buyer's bond changed meanwhile; nothing was slashed"
    assert (bond_snapshot(bond), _messages(), callbacks) == (before, [], [])


def test_slashing_nobody_leaves_nothing_for_after_the_commit(order, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        assert bonds_slash(order=order, bonds=[], actor="solver", reason="lost-dispute") == []
    assert (callbacks, _messages()) == ([], [])
