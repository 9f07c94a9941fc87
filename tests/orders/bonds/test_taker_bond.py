"""The taker's bond through the real pipeline and the fake LND (docs/PROTOCOL.md §Bonds, §Take, §Cancel)."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from lightning.types import InvoiceState
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.bonds.jobs import reconcile_bonds
from orders.bonds.models import Bond
from orders.jobs import expire_pending_orders
from orders.models import Order
from tests.orders.bonds.support import buy_order, history, htlc_accepted, lnd_calls, sell_order
from tests.orders.services.support import assert_refused, configure, mint_invoice, published_statuses, snapshot
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("bonds")]
BOND_SATS = 1000  # max(round(0.01 × 7851) = 79, base 1000)


def _take_buy(order, taker, *, index=2, request_id=12):
    return taker.send(Action.TAKE_BUY, index=index, order_id=order.id, request_id=request_id)


def test_take_asks_for_the_bond_first_and_leaves_the_book_untouched(alice, bob, fake_ln):
    order = buy_order(alice)
    before = snapshot(order)
    replies = _take_buy(order, bob)

    bond = Bond.objects.get(order=order)
    assert [r.action for r in replies] == ["pay-bond-invoice"]
    body = replies[0].json["order"]
    assert (body["request_id"], body["trade_index"], body["id"], body["action"]) == (
        12,
        2,
        str(order.id),
        "pay-bond-invoice",
    )
    view, bolt11, amount = body["payload"]["payment_request"]
    assert view == {
        "id": str(order.id), "kind": "buy", "status": "pending", "amount": BOND_SATS, "fiat_code": "VES",
        "min_amount": None, "max_amount": None, "fiat_amount": 100, "payment_method": "face to face", "premium": 1,
        "created_at": None, "expires_at": None,
    }  # fmt: skip
    assert (bolt11, amount) == (bond.payment_request, None)
    assert alice.replies() == []
    [hold] = lnd_calls(fake_ln, "add_hold_invoice")
    assert (hold["amount_sats"], hold["memo"], hold["expiry_seconds"]) == (
        BOND_SATS,
        f"mostro bond order_id={order.id}",
        300,
    )
    assert (bond.state, bond.role, bond.pubkey, bond.amount_sats, bond.request_id, bond.trade_index) == (
        "requested", "taker", bob.pubkey(2), BOND_SATS, 12, 2,
    )  # fmt: skip
    assert bond.take_context["fields"] == {
        "fiat_amount": 100, "amount_sats": 7851, "fee_sats": 24, "dev_fee_sats": 14,
        "seller_pubkey": bob.pubkey(2), "master_seller_pubkey": bob.identity.public_key_hex, "trade_index_seller": 2,
    }  # fmt: skip
    after = snapshot(order)
    assert after["status"] == "waiting-taker-bond"
    # The book keeps the maker's terms until a bond locks (mostrod #986).
    assert {k: v for k, v in after.items() if k not in ("status", "status_changes", "event_id")} == {
        k: v for k, v in before.items() if k not in ("status", "status_changes", "event_id")
    }
    assert published_statuses(order.id) == ["pending", "pending"]


def test_bond_lock_resumes_the_take_with_its_request_id(alice, bob, fake_ln):
    order = buy_order(alice)
    _take_buy(order, bob, request_id=12)
    bond = Bond.objects.get(order=order)
    htlc_accepted(fake_ln, bond)

    order.refresh_from_db()
    bond.refresh_from_db()
    assert (order.status, order.seller_pubkey, order.amount_sats, order.fee_sats) == (
        "waiting-payment",
        bob.pubkey(2),
        7851,
        24,
    )
    assert bond.state == "locked"
    assert history(bond) == [("requested", "locked")]
    assert [(r.action, r.message.request_id) for r in bob.replies()] == [("pay-invoice", 12)]
    assert [(r.action, r.message.request_id) for r in alice.replies()] == [("waiting-seller-to-pay", 12)]
    escrow = [c for c in lnd_calls(fake_ln, "add_hold_invoice") if c["memo"].startswith("Escrow")]
    assert [c["amount_sats"] for c in escrow] == [7851 + 24]
    assert published_statuses(order.id) == ["pending", "pending", "in-progress"]
    # LND replays the accepted state on resubscription: nothing happens twice.
    from orders.bonds.lock import bond_on_update

    assert bond_on_update(payment_hash_hex=bond.hash, state=InvoiceState.ACCEPTED)
    assert (bob.replies(), alice.replies()) == ([], [])


def test_two_bonds_accepted_together_exactly_one_wins_the_other_is_refunded_and_told(alice, bob, carol, fake_ln):
    order = buy_order(alice)
    _take_buy(order, bob, request_id=12)
    _take_buy(order, carol, index=5, request_id=13)
    bob.replies(), carol.replies()
    bob_bond, carol_bond = Bond.objects.get(pubkey=bob.pubkey(2)), Bond.objects.get(pubkey=carol.pubkey(5))
    fake_ln.mark_accepted(bob_bond.hash)  # both wallets paid before the watcher reported either
    htlc_accepted(fake_ln, carol_bond)
    from orders.bonds.lock import bond_on_update

    assert bond_on_update(payment_hash_hex=bob_bond.hash, state=InvoiceState.ACCEPTED)

    bob_bond.refresh_from_db(), carol_bond.refresh_from_db(), order.refresh_from_db()
    assert (carol_bond.state, bob_bond.state) == ("locked", "released")
    assert (order.status, order.seller_pubkey) == ("waiting-payment", carol.pubkey(5))
    assert [(r.action, r.message.payload) for r in bob.replies()] == [("canceled", None)]
    assert [r.action for r in carol.replies()] == ["pay-invoice"]
    assert fake_ln.invoice_state(bob_bond.hash) is InvoiceState.CANCELED  # refunded
    assert fake_ln.invoice_state(carol_bond.hash) is InvoiceState.ACCEPTED  # held
    assert bob_bond.htlc_resolved_at is not None


def test_losers_still_unpaid_are_canceled_and_told_when_the_first_bond_locks(alice, bob, carol, fake_ln):
    order = buy_order(alice)
    _take_buy(order, bob)
    _take_buy(order, carol, index=5)
    bob.replies(), carol.replies()
    htlc_accepted(fake_ln, Bond.objects.get(pubkey=carol.pubkey(5)))
    loser = Bond.objects.get(pubkey=bob.pubkey(2))
    assert loser.state == "released"
    assert [r.action for r in bob.replies()] == ["canceled"]
    assert fake_ln.invoice_state(loser.hash) is InvoiceState.CANCELED


def test_retake_by_the_same_key_resends_the_same_invoice(alice, fake_ln):
    """Full privacy (no trade index to spend): the same key taking again gets its invoice again."""
    order = buy_order(alice)
    dave = TradeClient("dave", full_privacy=True)
    first = _take_buy(order, dave, index=3, request_id=12)
    again = _take_buy(order, dave, index=3, request_id=14)
    assert [r.action for r in again] == ["pay-bond-invoice"]
    assert again[0].json["order"]["payload"] == first[0].json["order"]["payload"]
    assert len(lnd_calls(fake_ln, "add_hold_invoice")) == 1
    assert Bond.objects.filter(order=order).count() == 1


def test_a_locked_taker_bond_refuses_other_takers_and_changes_nothing(alice, bob, carol, fake_ln):
    order = buy_order(alice)
    _take_buy(order, bob)
    bond = Bond.objects.get(order=order)
    fake_ln.mark_accepted(bond.hash)
    # Locked but the take not resumed yet (LND unreachable for the escrow): the order is still on the book.
    fake_ln.set_unavailable(True)
    from orders.bonds.lock import bond_on_accepted

    bond_on_accepted(bond=bond)
    fake_ln.set_unavailable(False)
    order.refresh_from_db()
    assert (order.status, Bond.objects.get(pk=bond.pk).state) == ("waiting-taker-bond", "locked")
    bonds_before = list(Bond.objects.values_list("pk", "state"))
    assert_refused(
        carol,
        Action.TAKE_BUY,
        index=5,
        order_id=order.id,
        reason="pending_order_exists",
        fake_ln=fake_ln,
        orders=[order],
    )
    assert list(Bond.objects.values_list("pk", "state")) == bonds_before
    # The sweep resumes the take once LND answers.
    assert reconcile_bonds()["resumed"] == 1
    order.refresh_from_db()
    assert (order.status, order.seller_pubkey) == ("waiting-payment", bob.pubkey(2))


def test_bonded_taker_cancel_before_lock_puts_the_order_back_on_the_book(alice, bob, fake_ln):
    order = buy_order(alice)
    _take_buy(order, bob, request_id=12)
    bob.replies()
    bond = Bond.objects.get(order=order)
    replies = bob.send(Action.CANCEL, index=2, order_id=order.id, request_id=15)
    assert [(r.action, r.message.request_id) for r in replies] == [("canceled", 15)]
    assert [(r.action, r.message.request_id) for r in alice.replies()] == [("new-order", 15)]
    order.refresh_from_db(), bond.refresh_from_db()
    assert (order.status, bond.state) == ("pending", "released")
    assert fake_ln.invoice_state(bond.hash) is InvoiceState.CANCELED
    assert published_statuses(order.id) == ["pending", "pending", "pending"]


def test_bonded_taker_cancel_while_others_race_only_tells_that_taker(alice, bob, carol, fake_ln):
    order = buy_order(alice)
    _take_buy(order, bob)
    _take_buy(order, carol, index=5)
    bob.replies(), carol.replies()
    replies = bob.send(Action.CANCEL, index=2, order_id=order.id, request_id=15)
    assert [r.action for r in replies] == ["canceled"]
    assert (alice.replies(), carol.replies()) == ([], [])
    order.refresh_from_db()
    assert order.status == "waiting-taker-bond"
    assert list(Bond.objects.order_by("pk").values_list("state", flat=True)) == ["released", "requested"]


def test_maker_cancel_releases_every_bond_and_tells_every_bonded_taker(alice, bob, carol, fake_ln):
    order = buy_order(alice)
    _take_buy(order, bob)
    _take_buy(order, carol, index=5)
    bob.replies(), carol.replies()
    replies = alice.send(Action.CANCEL, index=2, order_id=order.id, request_id=16)
    assert [(r.action, r.message.request_id) for r in replies] == [("canceled", 16)]
    assert [(r.action, r.message.payload) for r in bob.replies() + carol.replies()] == [("canceled", None)] * 2
    assert list(Bond.objects.values_list("state", flat=True)) == ["released", "released"]
    assert {fake_ln.invoice_state(b.hash) for b in Bond.objects.all()} == {InvoiceState.CANCELED}
    assert Order.objects.get(pk=order.pk).status == "canceled"


def test_taker_cancel_after_the_take_releases_the_locked_bond(alice, bob, fake_ln):
    order = buy_order(alice)
    _take_buy(order, bob)
    bond = Bond.objects.get(order=order)
    htlc_accepted(fake_ln, bond)
    bob.replies(), alice.replies()
    bob.send(Action.CANCEL, index=2, order_id=order.id, request_id=17)
    order.refresh_from_db(), bond.refresh_from_db()
    assert (order.status, bond.state) == ("pending", "released")
    assert fake_ln.invoice_state(bond.hash) is InvoiceState.CANCELED
    assert history(bond) == [("requested", "locked"), ("locked", "released")]


def test_expiry_of_the_order_releases_the_bonds(alice, bob, fake_ln):
    order = buy_order(alice)
    _take_buy(order, bob)
    bond = Bond.objects.get(order=order)
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    expire_pending_orders()
    bond.refresh_from_db()
    assert (Order.objects.get(pk=order.pk).status, bond.state) == ("expired", "released")
    assert fake_ln.invoice_state(bond.hash) is InvoiceState.CANCELED


def test_unpaid_bond_invoice_is_released_at_its_deadline_and_the_order_goes_back(alice, bob, fake_ln):
    order = buy_order(alice)
    _take_buy(order, bob)
    bob.replies()
    bond = Bond.objects.get(order=order)
    assert reconcile_bonds()["expired"] == 0  # not yet
    later = bond.invoice_expires_at + timedelta(seconds=1)
    assert reconcile_bonds(now=later)["expired"] == 1
    bond.refresh_from_db(), order.refresh_from_db()
    assert (bond.state, order.status) == ("released", "pending")
    assert fake_ln.invoice_state(bond.hash) is InvoiceState.CANCELED
    assert [r.action for r in alice.replies()] == ["new-order"]


def test_take_sell_with_an_invoice_keeps_it_for_the_resumed_take(alice, bob, fake_ln, settings):
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_AMOUNT_PCT=0.2)
    order = sell_order(alice)
    invoice = mint_invoice(amount_sats=7851 - 24)
    replies = bob.send(
        Action.TAKE_SELL, index=2, order_id=order.id, request_id=21, payload=PaymentRequestPayload(None, invoice, None)
    )
    bond = Bond.objects.get(order=order)
    assert bond.amount_sats == 1570  # round(0.2 × 7851) = 1570 > base 1000
    assert json.loads(replies[0].message.to_json())["order"]["payload"]["payment_request"][0]["amount"] == 1570
    htlc_accepted(fake_ln, bond)
    order.refresh_from_db()
    assert (order.status, order.buyer_invoice, order.buyer_pubkey) == ("waiting-payment", invoice, bob.pubkey(2))
    assert [r.action for r in alice.replies()] == ["pay-invoice"]
