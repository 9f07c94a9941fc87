"""A range maker's per-slice slash (docs/PROTOCOL.md §Bonds, Range makers): what one slice may
take of the bond when other slices already took some, when nothing is left, and that a range's
taker bond is slashed whole, never as a slice of the maker's.

alice sells a 10–50 VES range with a 1,000 sat maker bond (locked by hand, as in
tests/disputes/test_range_bond_slash.py); bob takes a slice, alice releases it with a next
trade key, the rest of the range is a child order bob takes again. Today every slash of a slice
also ends its range, so a slice of another order slashed while the bond is still locked is
written by hand here (a state only another writer, or mostrod's history, would leave): the
refusals below are what keeps such a state from slashing a slice twice or past the bond.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from lightning.types import InvoiceState
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import BondResolutionPayload, NextTradePayload, PaymentRequestPayload
from nostrbridge.protocol.structs import BondResolution
from orders.bonds.htlc import bond_invoice_create
from orders.bonds.models import Bond
from orders.bonds.release import bonds_finish_htlcs, unfinished_bond_ids
from orders.bonds.selectors import bond_ledger
from orders.bonds.slash import BondSlashRefused, SlashChoice, bond_slash_check, side_bond
from orders.models import Order
from orders.services.timeouts import order_timeout
from tests.disputes.support import register, solver_client, take
from tests.orders.bonds.support import bond_snapshot
from tests.orders.services.support import configure, ln_writes, mint_invoice, outbox_count, snapshot
from tests.orders.trade_states import KEYS, active_sell_trade, reset_seen

pytestmark = pytest.mark.django_db(transaction=True)
BOND = 1000
NEXT_KEY = KEYS["alice-trade-4"]["pk"]
SELLER = SlashChoice(slash_seller=True)


@pytest.fixture(autouse=True)
def _node(node):
    return node


def _locked(fake_ln, order, *, role, pubkey, identity) -> Bond:
    invoice = bond_invoice_create(order_id=order.pk, amount_sats=BOND, expiry_seconds=900)
    bond = Bond.objects.create(
        order=order, role=role, pubkey=pubkey, identity=identity, amount_sats=BOND, hash=invoice.payment_hash_hex,
        preimage=invoice.preimage_hex, payment_request=invoice.payment_request,
        invoice_expires_at=timezone.now() + timedelta(seconds=900), state="locked", locked_at=timezone.now(),
    )  # fmt: skip
    fake_ln.mark_accepted(bond.hash)
    return bond


def _range(fake_ln, settings, *, take: int):
    """The range taken for `take` VES and active; the maker's bond locked on it."""
    trade = active_sell_trade(fake_ln, range_take=take)
    configure(
        settings,
        MOSTRO_ANTI_ABUSE_BOND_ENABLED=True,
        MOSTRO_ANTI_ABUSE_BOND_APPLY_TO="make",
        MOSTRO_ANTI_ABUSE_BOND_SLASH_ON_WAITING_TIMEOUT=True,
    )
    bond = _locked(
        fake_ln, trade.order, role="maker", pubkey=trade.seller_key, identity=trade.seller.identity.public_key_hex
    )
    return trade, bond


def _child_waiting_payment(fake_ln, settings, *, first: int, second: int | None):
    """Slice one (`first` VES) released; bob takes `second` VES of the child (None: a fixed child)
    and alice never pays its escrow."""
    trade, bond = _range(fake_ln, settings, take=first)
    trade.buyer.send(Action.FIAT_SENT, index=trade.buyer_index, order_id=trade.order.id, request_id=4)
    trade.seller.send(
        Action.RELEASE, index=trade.seller_index, order_id=trade.order.id, payload=NextTradePayload(NEXT_KEY, 4)
    )
    child = Order.objects.get(range_parent=trade.order)
    trade.buyer.send(
        Action.TAKE_SELL,
        index=2,
        order_id=child.id,
        payload=PaymentRequestPayload(None, mint_invoice(amount_sats=0), second),
        request_id=6,
    )
    child.refresh_from_db()
    assert child.status == "waiting-payment"
    bond.refresh_from_db()
    assert bond.state == "locked"
    reset_seen(trade.seller, trade.buyer)
    return trade, bond, child


def _earlier_slice(trade, bond, amount_sats: int) -> Bond:
    """Slice one's slash, as another writer would have left it (the bond still locked)."""
    return Bond.objects.create(
        order=trade.order, role="maker", pubkey=trade.seller_key, identity=bond.identity, state="pending-payout",
        amount_sats=amount_sats, parent_bond=bond, part="slice", invoice_expires_at=bond.invoice_expires_at,
        node_share_sats=amount_sats // 2, payout_sats=amount_sats - amount_sats // 2,
        payout_recipient=trade.buyer_key, slashed_at=timezone.now(), slashed_reason="lost-dispute",
    )  # fmt: skip


def _parts(bond):
    rows = Bond.objects.filter(parent_bond=bond).order_by("pk")
    return [(b.part, b.order_id, b.state, b.amount_sats, b.node_share_sats, b.payout_sats) for b in rows]


def _time_out(child) -> str:
    return order_timeout(order_id=child.id, now=child.taken_at + timedelta(seconds=901))


def test_an_earlier_slice_on_another_order_leaves_this_slice_what_is_left_of_the_bond(fake_ln, settings):
    trade, bond, child = _child_waiting_payment(fake_ln, settings, first=15, second=20)
    _earlier_slice(trade, bond, 700)

    # round(1000 × 20 / 50) = 400, clamped to the 300 left; nothing would go back to alice.
    assert bond_slash_check(order=child, choice=SELLER) == [bond]
    assert _time_out(child) == "maker-canceled"

    bond.refresh_from_db()
    assert (Order.objects.get(pk=child.pk).status, bond.state) == ("canceled", "slashed")
    assert _parts(bond) == [
        ("slice", trade.order.id, "pending-payout", 700, 350, 350),
        ("slice", child.id, "pending-payout", 300, 150, 150),
    ]  # no refund part: the slices took the whole bond
    assert fake_ln.invoice_state(bond.hash) is InvoiceState.SETTLED
    slashed = [
        r.json["order"]["payload"]["order"]["amount"] for r in trade.seller.replies() if r.action == "bond-slashed"
    ]
    assert slashed == [300]
    ledger = bond_ledger()
    assert (ledger["total"], ledger["node"], ledger["owed"], ledger["held"], ledger["problems"]) == (
        BOND,
        500,
        500,
        0,
        0,
    )


def test_the_parts_have_no_htlc_of_their_own_for_the_lnd_sweep(fake_ln, settings, caplog):
    trade, bond, child = _child_waiting_payment(fake_ln, settings, first=15, second=20)
    assert _time_out(child) == "maker-canceled"
    part_ids = list(Bond.objects.filter(parent_bond=bond).order_by("pk").values_list("pk", flat=True))
    assert len(part_ids) == 2  # the slice and alice's refund, both pending-payout without a hash
    bond.refresh_from_db()
    assert (bond.state, bond.htlc_resolved_at is not None) == ("slashed", True)
    writes = ln_writes(fake_ln)

    # The parent's settle is confirmed: nothing is left for the reconciliation job, and a sweep
    # given the parts' ids skips them without an LND call or an error.
    assert unfinished_bond_ids() == []
    with caplog.at_level("DEBUG", logger="orders.bonds"):
        assert bonds_finish_htlcs(bond_ids=[*part_ids, bond.pk]) == 0
    # The bond code's own records (a PostgreSQL pass with Redis logs unrelated nudge warnings).
    assert [r for r in caplog.records if r.levelname in ("ERROR", "WARNING") and r.name.startswith("orders.")] == []
    assert ln_writes(fake_ln) == writes


def test_a_slice_may_take_the_last_sat_of_the_bond(fake_ln, settings):
    trade, bond, child = _child_waiting_payment(fake_ln, settings, first=15, second=20)
    _earlier_slice(trade, bond, 999)

    assert bond_slash_check(order=child, choice=SELLER) == [bond]
    assert _time_out(child) == "maker-canceled"

    # One sat left: floor(1 × 50 %) = 0 to the node, 1 to bob.
    assert _parts(bond)[1:] == [("slice", child.id, "pending-payout", 1, 0, 1)]
    assert Bond.objects.get(pk=bond.pk).state == "slashed"


def test_a_slice_with_nothing_left_of_the_bond_is_refused_and_its_timeout_still_cancels(fake_ln, settings):
    # 40 of 10–50 leaves a fixed 10 VES child (not itself a range) on the root's bond.
    trade, bond, child = _child_waiting_payment(fake_ln, settings, first=40, second=None)
    assert (child.is_range, child.fiat_amount) == (False, 10)
    earlier = _earlier_slice(trade, bond, BOND)
    before = (snapshot(child), bond_snapshot(bond), ln_writes(fake_ln), outbox_count(), bond_ledger())

    with pytest.raises(BondSlashRefused) as refused:
        bond_slash_check(order=child, choice=SELLER)

    assert str(refused.value) == "nothing is left of the seller's range bond for this slice"
    assert (snapshot(child), bond_snapshot(bond), ln_writes(fake_ln), outbox_count(), bond_ledger()) == before

    # The waiting timeout finds no share to slash: the order is still canceled and the range ends.
    assert _time_out(child) == "maker-canceled"
    bond.refresh_from_db()
    assert (Order.objects.get(pk=child.pk).status, bond.state) == ("canceled", "slashed")
    assert list(Bond.objects.filter(parent_bond=bond).values_list("pk", flat=True)) == [earlier.pk]
    assert [r.action for r in trade.seller.replies() if r.action == "bond-slashed"] == []


def test_a_slice_already_slashed_is_refused_on_a_child_order(fake_ln, settings):
    trade, bond, child = _child_waiting_payment(fake_ln, settings, first=40, second=None)
    Bond.objects.create(
        order=child, role="maker", pubkey=NEXT_KEY, identity=bond.identity, state="pending-payout", amount_sats=200,
        parent_bond=bond, part="slice", invoice_expires_at=bond.invoice_expires_at, node_share_sats=100,
        payout_sats=100, payout_recipient=trade.buyer_key, slashed_at=timezone.now(),
    )  # fmt: skip

    with pytest.raises(BondSlashRefused) as refused:
        bond_slash_check(order=child, choice=SELLER)

    assert str(refused.value) == "the seller was already slashed on this slice of the range"


def test_the_takers_bond_on_a_range_is_slashed_whole_and_the_makers_range_bond_released(fake_ln, settings):
    trade, maker_bond = _range(fake_ln, settings, take=15)
    order = trade.order
    taker_bond = _locked(fake_ln, order, role="taker", pubkey=trade.buyer_key, identity=trade.buyer_key)
    assert (side_bond(order, "buyer"), side_bond(order, "seller")) == (taker_bond, maker_bond)
    assert bond_slash_check(order=order, choice=SlashChoice(slash_buyer=True)) == [taker_bond]
    trade.buyer.send(Action.FIAT_SENT, index=trade.buyer_index, order_id=order.id, request_id=4)
    trade.buyer.send(Action.DISPUTE, index=trade.buyer_index, order_id=order.id, request_id=5)
    solver = register(solver_client())
    take(solver, order.dispute)
    reset_seen(trade.seller, trade.buyer, solver)
    payload = BondResolutionPayload(BondResolution(slash_seller=False, slash_buyer=True))

    solver.send(Action.ADMIN_SETTLE, index=0, order_id=order.id, payload=payload, request_id=44)

    taker_bond.refresh_from_db()
    maker_bond.refresh_from_db()
    # bob's whole bond: floor(1000 × 50 %) = 500 to the node, 500 to alice; the range ended
    # with no slice slashed, so alice's bond is released whole.
    assert (taker_bond.state, taker_bond.node_share_sats, taker_bond.payout_sats, taker_bond.payout_recipient) == (
        "pending-payout",
        500,
        500,
        trade.seller_key,
    )
    assert (maker_bond.state, fake_ln.invoice_state(maker_bond.hash)) == ("released", InvoiceState.CANCELED)
    assert fake_ln.invoice_state(taker_bond.hash) is InvoiceState.SETTLED
    assert Bond.objects.exclude(part="").count() == 0
    assert [r.action for r in trade.buyer.replies() if r.action == "bond-slashed"] == ["bond-slashed"]
    assert [r.action for r in trade.seller.replies() if r.action == "bond-slashed"] == []
