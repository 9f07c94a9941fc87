"""Slash on the waiting timeout (docs/PROTOCOL.md §Bonds, Slash; §Waiting-timeout)."""

from datetime import timedelta

import pytest

from lightning.types import InvoiceState
from nostrbridge.protocol.enums import Action
from orders.bonds.lock import bond_on_update
from orders.bonds.models import Bond
from orders.models import EscrowRefund, Order
from orders.services import timeouts
from orders.services.escrow import escrow_on_accepted
from orders.services.timeouts import order_timeout
from tests.guards.support import before_first_call
from tests.orders.bonds.support import buy_order, history, htlc_accepted, lnd_calls, sell_order
from tests.orders.services.support import configure, order_terms, set_price

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("bonds")]


def _taken_and_late(alice, bob, fake_ln) -> tuple[Order, Bond]:
    """bob takes alice's buy order, locks his bond, then never pays the escrow."""
    order = buy_order(alice)
    bob.send(Action.TAKE_BUY, index=2, order_id=order.id, request_id=12)
    bond = Bond.objects.get(order=order)
    htlc_accepted(fake_ln, bond)
    order.refresh_from_db()
    assert order.status == "waiting-payment"
    alice.replies(), bob.replies()
    return order, bond


def test_timeout_slashes_the_taker_who_did_not_pay_and_the_maker_gets_the_share(alice, bob, fake_ln, settings):
    configure(
        settings, MOSTRO_ANTI_ABUSE_BOND_SLASH_ON_WAITING_TIMEOUT=True, MOSTRO_ANTI_ABUSE_BOND_SLASH_NODE_SHARE_PCT=0.3
    )
    order, bond = _taken_and_late(alice, bob, fake_ln)
    assert order_timeout(order_id=order.id, now=order.taken_at + timedelta(seconds=901)) == "taker-reset"
    bond.refresh_from_db()
    # floor(1000 × 0.3) = 300 to the node, 700 to alice.
    assert (bond.state, bond.slashed_reason, bond.node_share_sats, bond.payout_sats, bond.payout_recipient) == (
        "pending-payout", "timeout", 300, 700, alice.pubkey(2),
    )  # fmt: skip
    assert fake_ln.invoice_state(bond.hash) is InvoiceState.SETTLED
    assert [r.action for r in bob.replies()] == ["bond-slashed", "canceled"]
    assert Order.objects.get(pk=order.pk).status == "pending"


def test_timeout_without_the_switch_releases_the_bond(alice, bob, fake_ln):
    order, bond = _taken_and_late(alice, bob, fake_ln)
    assert order_timeout(order_id=order.id, now=order.taken_at + timedelta(seconds=901)) == "taker-reset"
    bond.refresh_from_db()
    assert (bond.state, fake_ln.invoice_state(bond.hash)) == ("released", InvoiceState.CANCELED)
    assert [r.action for r in bob.replies()] == ["canceled"]


def test_cancel_before_the_timeout_never_slashes(alice, bob, fake_ln, settings):
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_SLASH_ON_WAITING_TIMEOUT=True)
    order, bond = _taken_and_late(alice, bob, fake_ln)
    bob.send(Action.CANCEL, index=2, order_id=order.id, request_id=13)
    bond.refresh_from_db()
    assert (bond.state, bond.node_share_sats) == ("released", None)


def test_the_slash_and_the_refund_are_decided_before_lightning_is_asked(alice, bob, fake_ln, settings, monkeypatch):
    """Decision first (docs/PROTOCOL.md §Bonds, Slash; §Escrow): when LND is asked to settle the
    bond or to cancel the escrow, the reset, the slash and the refund row are already committed."""
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_SLASH_ON_WAITING_TIMEOUT=True)
    order, bond = _taken_and_late(alice, bob, fake_ln)
    seen = []

    def spying(name):
        call = getattr(fake_ln, name)

        def spy(*args, **kwargs):
            row = Order.objects.get(pk=order.pk)
            refunds = list(EscrowRefund.objects.filter(order=order).values_list("hold_invoice_hash", "reason"))
            seen.append((name, row.status, Bond.objects.get(pk=bond.pk).state, refunds))
            return call(*args, **kwargs)

        return spy

    for name in ("settle_invoice", "cancel_invoice"):
        monkeypatch.setattr(fake_ln, name, spying(name))
    escrow_hash = order.hold_invoice_hash
    assert order_timeout(order_id=order.id, now=order.taken_at + timedelta(seconds=901)) == "taker-reset"
    refunded = [(escrow_hash, "waiting timeout")]
    assert seen == [
        ("settle_invoice", "pending", "pending-payout", refunded),
        ("cancel_invoice", "pending", "pending-payout", refunded),
    ]


LATE = timedelta(seconds=901)  # past MOSTRO_EXPIRATION_SECONDS (900)


def test_timeout_slashes_the_buyer_who_sent_no_invoice(alice, bob, fake_ln, settings):
    # A sell order taken without an invoice: the buyer (taker) owes it, so the buyer's bond goes.
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_SLASH_ON_WAITING_TIMEOUT=True)
    order = sell_order(alice)
    bob.send(Action.TAKE_SELL, index=2, order_id=order.id, request_id=21)
    bond = Bond.objects.get(order=order)
    htlc_accepted(fake_ln, bond)
    order.refresh_from_db()
    assert order.status == "waiting-buyer-invoice"

    assert order_timeout(order_id=order.id, now=order.taken_at + LATE) == "taker-reset"

    bond.refresh_from_db()
    assert (bond.state, bond.slashed_reason, bond.payout_recipient) == ("pending-payout", "timeout", alice.pubkey(2))
    assert Order.objects.get(pk=order.pk).status == "pending"


def test_slash_is_undone_when_the_escrow_arrives_before_the_timeout_decides(alice, bob, fake_ln, settings, monkeypatch):
    # The seller's HTLC is recorded between the timeout's read and its decision: the reset
    # loses its guard, and the slash decided in the same transaction is rolled back with it.
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_SLASH_ON_WAITING_TIMEOUT=True)
    order, bond = _taken_and_late(alice, bob, fake_ln)

    def escrow_paid():
        fake_ln.mark_accepted(order.hold_invoice_hash)
        assert escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash) is True

    before_first_call(monkeypatch, timeouts, "taker_is_at_fault", escrow_paid)
    fake_ln.calls.clear()

    assert order_timeout(order_id=order.id, now=order.taken_at + LATE) == "skipped"

    bond.refresh_from_db()
    assert (bond.state, bond.slashed_at, history(bond)) == ("locked", None, [("requested", "locked")])
    assert lnd_calls(fake_ln, "settle_invoice") == []
    assert Order.objects.get(pk=order.pk).status == "waiting-buyer-invoice"
    assert "bond-slashed" not in [r.action for r in bob.replies()]


def test_bond_lnd_canceled_meanwhile_is_not_slashed_and_the_timeout_applies(alice, bob, fake_ln, settings):
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_SLASH_ON_WAITING_TIMEOUT=True)
    order, bond = _taken_and_late(alice, bob, fake_ln)
    fake_ln.cancel_invoice(payment_hash=bytes.fromhex(bond.hash))
    assert bond_on_update(payment_hash_hex=bond.hash, state=InvoiceState.CANCELED) is True

    assert order_timeout(order_id=order.id, now=order.taken_at + LATE) == "taker-reset"

    bond.refresh_from_db()
    assert (bond.state, bond.slashed_at) == ("lnd-canceled", None)
    assert Order.objects.get(pk=order.pk).status == "pending"


def test_late_party_without_a_bond_is_reset_without_a_slash(alice, bob, fake_ln, settings):
    # Bonds asked of makers only: the late taker posted none, and the timeout still applies.
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_SLASH_ON_WAITING_TIMEOUT=True, MOSTRO_ANTI_ABUSE_BOND_APPLY_TO="make")
    set_price()
    alice.send(Action.NEW_ORDER, index=2, payload=order_terms(kind="buy"), request_id=31)
    order = Order.objects.get()
    maker_bond = Bond.objects.get(order=order)
    htlc_accepted(fake_ln, maker_bond)
    alice.replies()
    bob.send(Action.TAKE_BUY, index=2, order_id=order.id, request_id=12)
    order.refresh_from_db()
    assert (order.status, Bond.objects.filter(order=order).count()) == ("waiting-payment", 1)

    assert order_timeout(order_id=order.id, now=order.taken_at + LATE) == "taker-reset"

    maker_bond.refresh_from_db()
    assert (maker_bond.state, maker_bond.slashed_at) == ("locked", None)
    assert Order.objects.get(pk=order.pk).status == "pending"
