"""A range maker's bond (docs/PROTOCOL.md §Bonds, Range makers): one HTLC for every slice, a slash
on one slice takes that slice's share, the HTLC is settled once when the range ends and the rest
goes back to the maker through `add-bond-invoice`.

alice sells a 10–50 VES range with a 1,000 sat maker bond locked by hand at the fake LND (as in
test_bond_slash.py); bob takes slices. A 15 VES slice's share is round(1000 × 15 / 50) = 300.
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
from orders.bonds.payout import process_bond_payouts
from orders.bonds.ranges import slice_share_sats
from orders.bonds.selectors import bond_figures, bond_ledger
from orders.models import Order
from orders.services.escrow import escrow_on_accepted
from orders.services.timeouts import order_timeout
from tests.disputes.support import register, solver_client, take
from tests.orders.services.support import configure, mint_invoice
from tests.orders.trade_states import KEYS, active_sell_trade, reset_seen

pytestmark = pytest.mark.django_db(transaction=True)
BOND = 1000


@pytest.fixture
def bonds_on(node, settings):
    """Maker bonds on, once the order exists (the bond is then locked by hand)."""
    return lambda: configure(settings, MOSTRO_ANTI_ABUSE_BOND_ENABLED=True, MOSTRO_ANTI_ABUSE_BOND_APPLY_TO="make")


def _range_trade(fake_ln, bonds_on, *, take: int = 15):
    """The 10–50 range taken for `take` VES, active; the maker's bond locked on it."""
    trade = active_sell_trade(fake_ln, range_take=take)
    bonds_on()
    invoice = bond_invoice_create(order_id=trade.order.pk, amount_sats=BOND, expiry_seconds=900)
    bond = Bond.objects.create(
        order=trade.order, role="maker", pubkey=trade.seller_key, identity=trade.seller.identity.public_key_hex,
        amount_sats=BOND, hash=invoice.payment_hash_hex, preimage=invoice.preimage_hex,
        payment_request=invoice.payment_request, invoice_expires_at=timezone.now() + timedelta(seconds=900),
    )  # fmt: skip
    fake_ln.mark_accepted(bond.hash)
    Bond.objects.filter(pk=bond.pk).update(state="locked", locked_at=timezone.now())
    bond.refresh_from_db()
    return trade, bond


def _dispute(trade):
    trade.buyer.send(Action.FIAT_SENT, index=trade.buyer_index, order_id=trade.order.id, request_id=4)
    trade.buyer.send(Action.DISPUTE, index=trade.buyer_index, order_id=trade.order.id, request_id=5)
    solver = register(solver_client())
    take(solver, trade.order.dispute)
    reset_seen(trade.seller, trade.buyer, solver)
    return solver


def _slash_seller():
    return BondResolutionPayload(BondResolution(slash_seller=True, slash_buyer=False))


def _parts(bond):
    rows = Bond.objects.filter(parent_bond=bond).order_by("pk")
    return [(b.part, b.order_id, b.pubkey, b.state, b.amount_sats, b.node_share_sats, b.payout_sats) for b in rows]


@pytest.mark.parametrize(
    ("_case", "bond_sats", "slice_fiat", "max_fiat", "already", "share"),
    [
        ("proportional", 1000, 15, 50, 0, 300),
        ("half rounds away from zero", 1001, 25, 50, 0, 501),
        ("below half rounds down", 1000, 1, 3, 0, 333),
        ("clamped to what is left", 1000, 40, 50, 700, 300),
        ("nothing left", 1000, 10, 50, 1000, 0),
    ],
)
def test_slice_share(_case, bond_sats, slice_fiat, max_fiat, already, share):
    assert (
        slice_share_sats(bond_sats=bond_sats, slice_fiat=slice_fiat, max_fiat=max_fiat, already_sats=already) == share
    )


def test_solver_slash_of_the_range_maker_takes_the_slice_share_and_refunds_the_rest(bonds_on, fake_ln):
    trade, bond = _range_trade(fake_ln, bonds_on)
    solver = _dispute(trade)
    order = trade.order

    solver.send(Action.ADMIN_CANCEL, index=0, order_id=order.id, payload=_slash_seller(), request_id=44)

    order.refresh_from_db()
    bond.refresh_from_db()
    assert order.status == "canceled-by-admin"
    # The slice: 300, floor(300 × 0.5) = 150 to the node, 150 to bob; the range ended: 700 back to alice.
    assert _parts(bond) == [
        ("slice", order.id, trade.seller_key, "pending-payout", 300, 150, 150),
        ("refund", order.id, trade.seller_key, "pending-payout", 700, 0, 700),
    ]
    recipients = list(Bond.objects.filter(parent_bond=bond).order_by("pk").values_list("payout_recipient", flat=True))
    assert recipients == [trade.buyer_key, trade.seller_key]
    assert (bond.state, fake_ln.invoice_state(bond.hash)) == ("slashed", InvoiceState.SETTLED)
    assert bond.htlc_resolved_at is not None
    slashed = [
        r.json["order"]["payload"]["order"]["amount"] for r in trade.seller.replies() if r.action == "bond-slashed"
    ]
    assert slashed == [300]

    assert process_bond_payouts() == {"asked": 2}
    asks = {r.recipient: r.json["order"]["payload"]["bond_payout_request"]["order"]["amount"]
            for r in trade.seller.replies() + trade.buyer.replies() if r.action == "add-bond-invoice"}  # fmt: skip
    assert asks == {trade.buyer_key: 150, trade.seller_key: 700}
    for client, key_index, amount in ((trade.buyer, trade.buyer_index, 150), (trade.seller, trade.seller_index, 700)):
        invoice = mint_invoice(amount_sats=amount)
        replies = client.send(
            Action.ADD_BOND_INVOICE,
            index=key_index,
            order_id=order.id,
            payload=PaymentRequestPayload(None, invoice, None),
        )
        assert [r.action for r in replies] == ["bond-invoice-accepted", "bond-payout-completed"]
    assert process_bond_payouts() == {}
    assert [p[3] for p in _parts(bond)] == ["slashed", "slashed"]
    ledger = bond_ledger()
    assert (ledger["total"], ledger["node"], ledger["paid"], ledger["owed"], ledger["problems"]) == (
        BOND,
        150,
        850,
        0,
        0,
    )
    figures = bond_figures()
    assert (figures.slashed_count, figures.node_kept_sats, figures.paid_out_sats, figures.owed_sats) == (1, 150, 850, 0)


def test_a_released_slice_keeps_the_bond_for_the_child_and_the_range_end_releases_it_whole(bonds_on, fake_ln):
    trade, bond = _range_trade(fake_ln, bonds_on)
    trade.buyer.send(Action.FIAT_SENT, index=trade.buyer_index, order_id=trade.order.id, request_id=4)
    next_key = KEYS["alice-trade-4"]["pk"]
    trade.seller.send(
        Action.RELEASE, index=trade.seller_index, order_id=trade.order.id, payload=NextTradePayload(next_key, 4)
    )
    trade.refresh()
    child = Order.objects.get(range_parent=trade.order)
    assert (trade.order.status, child.status) == ("success", "pending")
    bond.refresh_from_db()
    assert (bond.state, fake_ln.invoice_state(bond.hash)) == ("locked", InvoiceState.ACCEPTED)

    trade.seller.send(Action.CANCEL, index=4, order_id=child.id, request_id=9)  # the maker ends the range

    bond.refresh_from_db()
    assert (Order.objects.get(pk=child.pk).status, bond.state) == ("canceled", "released")
    assert fake_ln.invoice_state(bond.hash) is InvoiceState.CANCELED
    assert _parts(bond) == []


def test_a_slash_on_a_later_slice_takes_that_slices_share(bonds_on, fake_ln):
    trade, bond = _range_trade(fake_ln, bonds_on)
    trade.buyer.send(Action.FIAT_SENT, index=trade.buyer_index, order_id=trade.order.id, request_id=4)
    next_key = KEYS["alice-trade-4"]["pk"]
    trade.seller.send(
        Action.RELEASE, index=trade.seller_index, order_id=trade.order.id, payload=NextTradePayload(next_key, 4)
    )
    child = Order.objects.get(range_parent=trade.order)
    invoice = mint_invoice(amount_sats=0)
    trade.buyer.send(
        Action.TAKE_SELL, index=2, order_id=child.id, payload=PaymentRequestPayload(None, invoice, 20), request_id=6
    )
    child.refresh_from_db()
    fake_ln.mark_accepted(child.hold_invoice_hash)
    assert escrow_on_accepted(payment_hash_hex=child.hold_invoice_hash)
    trade.buyer.send(Action.FIAT_SENT, index=2, order_id=child.id, request_id=7)
    trade.buyer.send(Action.DISPUTE, index=2, order_id=child.id, request_id=8)
    solver = register(solver_client())
    take(solver, child.dispute)
    reset_seen(trade.seller, trade.buyer, solver)

    solver.send(Action.ADMIN_SETTLE, index=0, order_id=child.id, payload=_slash_seller(), request_id=45)

    child.refresh_from_db()
    bond.refresh_from_db()
    # round(1000 × 20 / 50) = 400: 200 to the node, 200 to bob's second key; 600 back to alice's first key.
    assert _parts(bond) == [
        ("slice", child.id, next_key, "pending-payout", 400, 200, 200),
        ("refund", trade.order.id, trade.seller_key, "pending-payout", 600, 0, 600),
    ]
    assert (bond.state, fake_ln.invoice_state(bond.hash)) == ("slashed", InvoiceState.SETTLED)
    to_maker = [
        (r.recipient, r.action) for r in trade.seller.replies() if r.action in ("admin-settled", "bond-slashed")
    ]
    assert to_maker == [(next_key, "bond-slashed"), (next_key, "admin-settled")]
    assert Bond.objects.get(parent_bond=bond, part="slice").slashed_reason == "lost-dispute"
    ledger = bond_ledger()
    assert (ledger["total"], ledger["node"], ledger["owed"], ledger["held"], ledger["problems"]) == (
        BOND,
        200,
        800,
        0,
        0,
    )


def test_the_range_makers_waiting_timeout_slashes_the_slice_share(bonds_on, fake_ln, settings):
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_SLASH_ON_WAITING_TIMEOUT=True)
    order, bond = _waiting_payment_range(fake_ln, bonds_on)
    assert order_timeout(order_id=order.id, now=order.taken_at + timedelta(seconds=901)) == "maker-canceled"
    bond.refresh_from_db()
    order.refresh_from_db()
    assert order.status == "canceled"
    # The seller (maker) owed the escrow: its share of this 15 VES slice is slashed, the range ends.
    assert [(p[0], p[3], p[4], p[5], p[6]) for p in _parts(bond)] == [
        ("slice", "pending-payout", 300, 150, 150),
        ("refund", "pending-payout", 700, 0, 700),
    ]
    assert Bond.objects.get(parent_bond=bond, part="slice").slashed_reason == "timeout"
    assert (bond.state, fake_ln.invoice_state(bond.hash)) == ("slashed", InvoiceState.SETTLED)


def _waiting_payment_range(fake_ln, bonds_on):
    """bob takes 15 of alice's 10–50 range; alice (maker, seller) never pays the escrow."""
    from tests.orders.services.support import make_order, set_price
    from tests.orders.trade_states import vector_client

    seller, buyer = vector_client("alice"), vector_client("bob")
    set_price()
    order = make_order(seller, index=1, kind="sell", fiat_amount=0, min_amount=10, max_amount=50,
                       payment_method="face to face")  # fmt: skip
    bonds_on()
    invoice = bond_invoice_create(order_id=order.pk, amount_sats=BOND, expiry_seconds=900)
    bond = Bond.objects.create(
        order=order, role="maker", pubkey=seller.pubkey(1), identity=seller.identity.public_key_hex,
        amount_sats=BOND, hash=invoice.payment_hash_hex, preimage=invoice.preimage_hex,
        payment_request=invoice.payment_request, invoice_expires_at=timezone.now() + timedelta(seconds=900),
        state="locked", locked_at=timezone.now(),
    )  # fmt: skip
    fake_ln.mark_accepted(bond.hash)
    buyer.send(Action.TAKE_SELL, index=1, order_id=order.id,
               payload=PaymentRequestPayload(None, mint_invoice(amount_sats=0), 15), request_id=3)  # fmt: skip
    order.refresh_from_db()
    assert order.status == "waiting-payment"
    return order, bond


def test_console_confirmation_shows_the_slice_share_and_the_makers_refund(bonds_on, fake_ln):
    from django.urls import reverse

    from tests.disputes.web import browser, make_user

    trade, bond = _range_trade(fake_ln, bonds_on)
    trade.buyer.send(Action.FIAT_SENT, index=trade.buyer_index, order_id=trade.order.id, request_id=4)
    trade.buyer.send(Action.DISPUTE, index=trade.buyer_index, order_id=trade.order.id, request_id=5)
    dispute = trade.order.dispute
    client = browser(make_user("op", "operator"))
    cancel = reverse("admin:disputes_dispute_refund", args=[dispute.pk])
    client.post(reverse("admin:disputes_dispute_take", args=[dispute.pk]), {"post": "yes"})
    page = client.get(cancel).content.decode().replace("&#x27;", "'")
    assert "The seller's bond: 1000 sats, locked." in page
    assert (
        "Slash the seller: their 1000-sat range bond gives up this slice's share, 300 sats; the node keeps 150 "
        "sats and the buyer is offered 150 sats (add-bond-invoice); the range ends and the seller is offered back "
        "the rest, 700 sats." in page
    )
    client.post(cancel, {"post": "yes", "slash": "seller"}, follow=True)
    assert [(p[0], p[4], p[5], p[6]) for p in _parts(bond)] == [("slice", 300, 150, 150), ("refund", 700, 0, 700)]


def test_a_slice_already_slashed_is_refused_before_anything_moves(bonds_on, fake_ln):
    from orders.bonds.slash import BondSlashRefused, SlashChoice, bond_slash_check
    from tests.orders.services.support import ln_writes, snapshot

    trade, bond = _range_trade(fake_ln, bonds_on)
    solver = _dispute(trade)
    order = trade.order
    Bond.objects.create(
        order=order, role="maker", pubkey=trade.seller_key, identity=bond.identity, state="pending-payout",
        amount_sats=300, parent_bond=bond, part="slice", invoice_expires_at=bond.invoice_expires_at,
        node_share_sats=150, payout_sats=150, payout_recipient=trade.buyer_key, slashed_at=timezone.now(),
    )  # fmt: skip
    with pytest.raises(BondSlashRefused) as refused:
        bond_slash_check(order=order, choice=SlashChoice(slash_seller=True))
    assert str(refused.value) == "the seller was already slashed on this slice of the range"
    before, writes = snapshot(order), ln_writes(fake_ln)

    replies = solver.send(Action.ADMIN_CANCEL, index=0, order_id=order.id, payload=_slash_seller(), request_id=46)

    assert [r.json["cant-do"]["payload"] for r in replies] == [{"cant_do": "invalid_payload"}]
    assert (snapshot(order), ln_writes(fake_ln)) == (before, writes)
    bond.refresh_from_db()
    assert (bond.state, Bond.objects.filter(parent_bond=bond).count()) == ("locked", 1)
    assert fake_ln.invoice_state(bond.hash) is InvoiceState.ACCEPTED
