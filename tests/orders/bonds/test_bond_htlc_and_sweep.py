"""The bond's hold invoice at LND and the bond sweep (docs/PROTOCOL.md §Bonds; `orders/bonds/htlc.py`, `jobs.py`)."""

import hashlib
from dataclasses import FrozenInstanceError
from datetime import timedelta

import pytest
from django.utils import timezone

import orders.bonds.jobs as jobs_module
import orders.services.take as take_module
from lightning.errors import AlreadySettledOrCanceled
from lightning.types import HoldInvoice, InvoiceState
from nostrbridge.models import OutboundMessage
from orders.bonds.htlc import BondHtlcError, bond_htlc_cancel, bond_htlc_settle, bond_invoice_create
from orders.bonds.jobs import bonds_expire_unpaid, bonds_resume_takes, reconcile_bonds
from orders.bonds.models import Bond
from orders.bonds.release import bonds_release
from orders.models import Order
from tests.foundation.factories import make_order
from tests.guards.support import before_first_transaction
from tests.orders.bonds.support import bond_row, bond_snapshot, lnd_calls

pytestmark = pytest.mark.django_db
MAKER, BOB = "a" * 64, "e" * 64  # valid x-only keys: they get messages


# -- the hold invoice --------------------------------------------------------------------------------


def test_a_bond_invoice_is_a_hold_invoice_for_the_bond_with_the_node_cltv(node, fake_ln, settings):
    order = make_order()
    invoice = bond_invoice_create(order_id=order.pk, amount_sats=1, expiry_seconds=300)
    assert hashlib.sha256(bytes.fromhex(invoice.preimage_hex)).hexdigest() == invoice.payment_hash_hex
    assert len(invoice.preimage_hex) == 64
    assert lnd_calls(fake_ln, "add_hold_invoice") == [
        {"amount_sats": 1, "payment_hash": invoice.payment_hash_hex, "memo": f"mostro bond order_id={order.pk}",
         "cltv_expiry": settings.LND_HOLD_INVOICE_CLTV_DELTA, "expiry_seconds": 300}
    ]  # fmt: skip
    assert fake_ln.invoice_state(invoice.payment_hash_hex) is InvoiceState.OPEN
    with pytest.raises(FrozenInstanceError):
        invoice.preimage_hex = "0" * 64  # type: ignore[misc]


@pytest.mark.parametrize("amount_sats", [0, -1])
def test_no_bond_invoice_without_sats(node, fake_ln, amount_sats):
    with pytest.raises(BondHtlcError, match=f"refusing a bond of {amount_sats} sats"):
        bond_invoice_create(order_id="o", amount_sats=amount_sats, expiry_seconds=300)
    assert fake_ln.calls == []


def test_an_invoice_lnd_made_for_another_hash_is_refused(node, fake_ln, monkeypatch):
    other = HoldInvoice(payment_request="lnbcrt1", payment_hash_hex="5" * 64, add_index=1)
    monkeypatch.setattr(fake_ln, "add_hold_invoice", lambda **kwargs: other)
    with pytest.raises(BondHtlcError, match="LND returned hash 5{64} for a bond of order o"):
        bond_invoice_create(order_id="o", amount_sats=1000, expiry_seconds=300)


def test_an_uppercase_hash_from_lnd_is_the_same_hash(node, fake_ln, monkeypatch):
    real = fake_ln.add_hold_invoice

    def upper(**kwargs):
        hold = real(**kwargs)
        return HoldInvoice(hold.payment_request, hold.payment_hash_hex.upper(), hold.add_index)

    monkeypatch.setattr(fake_ln, "add_hold_invoice", upper)
    invoice = bond_invoice_create(order_id="o", amount_sats=1000, expiry_seconds=300)
    assert invoice.payment_hash_hex == invoice.payment_hash_hex.lower()


def test_release_cancels_and_a_cancel_is_done_once_canceled_or_unknown(node, fake_ln):
    bond = bond_row(make_order(), state="locked", fake_ln=fake_ln)
    bond_htlc_cancel(payment_hash_hex=bond.hash)
    assert fake_ln.invoice_state(bond.hash) is InvoiceState.CANCELED
    bond_htlc_cancel(payment_hash_hex=bond.hash)  # again: LND's cancel is idempotent
    bond_htlc_cancel(payment_hash_hex="5" * 64)  # unknown to LND: nothing to cancel
    assert [c["payment_hash"] for c in lnd_calls(fake_ln, "cancel_invoice")] == [bond.hash, bond.hash, "5" * 64]


@pytest.mark.parametrize(
    ("details", "raises"), [("invoice already canceled", False), ("invoice already settled", True)]
)
def test_a_cancel_refused_as_already_settled_is_an_error(node, fake_ln, monkeypatch, details, raises):
    def refused(**kwargs):
        raise AlreadySettledOrCanceled(details, code="UNKNOWN", details=details)

    monkeypatch.setattr(fake_ln, "cancel_invoice", refused)
    if raises:
        with pytest.raises(BondHtlcError, match="is already settled"):
            bond_htlc_cancel(payment_hash_hex="5" * 64)
    else:
        bond_htlc_cancel(payment_hash_hex="5" * 64)


def test_slash_settles_and_a_settle_is_done_once_settled_but_not_once_canceled(node, fake_ln):
    bond = bond_row(make_order(), state="pending-payout", fake_ln=fake_ln)
    bond_htlc_settle(preimage_hex=bond.preimage)
    assert fake_ln.invoice_state(bond.hash) is InvoiceState.SETTLED
    bond_htlc_settle(preimage_hex=bond.preimage)  # already settled: done
    canceled = bond_row(make_order(), state="pending-payout", fake_ln=fake_ln)
    fake_ln.cancel_invoice(payment_hash=bytes.fromhex(canceled.hash))
    with pytest.raises(BondHtlcError, match="canceled before it could be settled"):
        bond_htlc_settle(preimage_hex=canceled.preimage)


def test_lnd_unreachable_is_an_error_for_both(node, fake_ln):
    bond = bond_row(make_order(), state="locked", fake_ln=fake_ln)
    fake_ln.set_unavailable()
    with pytest.raises(BondHtlcError, match="canceling bond invoice .* failed"):
        bond_htlc_cancel(payment_hash_hex=bond.hash)
    with pytest.raises(BondHtlcError, match="settling a bond failed"):
        bond_htlc_settle(preimage_hex=bond.preimage)
    fake_ln.set_unavailable(False)
    assert fake_ln.invoice_state(bond.hash) is InvoiceState.ACCEPTED


# -- the sweep ---------------------------------------------------------------------------------------


@pytest.fixture
def book(node, fake_ln):
    """Two orders waiting for taker bonds, bob's requested bond on each; a hidden order waiting for its maker's."""
    now = timezone.now()
    a = make_order(status="waiting-taker-bond", creator_pubkey=MAKER, seller_pubkey=MAKER)
    b = make_order(status="waiting-taker-bond", creator_pubkey=MAKER, seller_pubkey=MAKER)
    hidden = make_order(status="waiting-maker-bond", creator_pubkey=MAKER, seller_pubkey=MAKER)
    return {
        "a": bond_row(a, pubkey=BOB, fake_ln=fake_ln, invoice_expires_at=now - timedelta(seconds=1)),
        "b": bond_row(b, pubkey=BOB, fake_ln=fake_ln, invoice_expires_at=now + timedelta(seconds=60)),
        "maker": bond_row(
            hidden, role="maker", pubkey=MAKER, fake_ln=fake_ln, invoice_expires_at=now - timedelta(seconds=1)
        ),
    }


def _status(bond) -> str:
    return Order.objects.get(pk=bond.order_id).status


def test_unpaid_bonds_past_their_invoice_are_released_and_their_orders_move_on(
    book, fake_ln, django_capture_on_commit_callbacks
):
    locked_late = bond_row(Order.objects.get(pk=book["b"].order_id), pubkey="7" * 64, state="locked",
                           invoice_expires_at=timezone.now() - timedelta(days=1))  # fmt: skip
    before = [bond_snapshot(book["b"]), bond_snapshot(locked_late)]
    with django_capture_on_commit_callbacks(execute=True):
        assert bonds_expire_unpaid(now=timezone.now()) == 2
    assert [Bond.objects.get(pk=book[k].pk).state for k in ("a", "maker")] == ["released", "released"]
    assert [fake_ln.invoice_state(book[k].hash) for k in ("a", "maker")] == [InvoiceState.CANCELED] * 2
    assert (_status(book["a"]), _status(book["maker"]), _status(book["b"])) == (
        "pending",
        "expired",
        "waiting-taker-bond",
    )
    assert [bond_snapshot(book["b"]), bond_snapshot(locked_late)] == before
    assert list(OutboundMessage.objects.exclude(action="").values_list("recipient_pubkey", "action", "order_id")) == [
        (MAKER, "new-order", book["a"].order_id)
    ]


def test_an_invoice_expiring_this_instant_is_not_yet_expired(book):
    expires = Bond.objects.get(pk=book["b"].pk).invoice_expires_at
    assert bonds_expire_unpaid(now=expires) == 2
    assert Bond.objects.get(pk=book["b"].pk).state == "requested"
    assert bonds_expire_unpaid(now=expires + timedelta(microseconds=1)) == 1


def test_a_bond_canceled_by_its_taker_meanwhile_is_not_counted_and_moves_no_order(book, monkeypatch):
    def taker_cancel_first():
        bonds_release(bonds=[Bond.objects.get(pk=book["a"].pk)], actor=BOB, reason="taker cancel")

    before_first_transaction(monkeypatch, jobs_module, taker_cancel_first)
    Bond.objects.filter(pk=book["maker"].pk).update(invoice_expires_at=timezone.now() + timedelta(days=1))
    assert bonds_expire_unpaid(now=timezone.now()) == 0
    assert (Bond.objects.get(pk=book["a"].pk).state, _status(book["a"])) == ("released", "waiting-taker-bond")


def test_the_sweep_expires_a_hundred_bonds_at_a_time(node):
    order = make_order(status="waiting-taker-bond")
    late = timezone.now() - timedelta(seconds=1)
    bonds = [bond_row(order, pubkey="7" * 64, invoice_expires_at=late) for _ in range(101)]
    assert bonds_expire_unpaid(now=timezone.now()) == 100
    assert Bond.objects.get(pk=bonds[-1].pk).state == "requested"


@pytest.fixture
def resumed(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(take_module, "order_take_resume", lambda *, bond_id: calls.append(bond_id) or len(calls) != 2)
    return calls


def test_takes_whose_bond_locked_on_an_order_still_on_the_book_resume(node, resumed):
    on_book = [make_order(status=s) for s in ("pending", "waiting-taker-bond", "waiting-taker-bond")]
    wanted = [bond_row(order, state="locked").pk for order in on_book]
    bond_row(on_book[0], state="requested")
    bond_row(on_book[1], role="maker", state="locked")
    bond_row(make_order(status="waiting-payment"), state="locked")  # its take already resumed
    assert bonds_resume_takes() == 2  # the second resume found nothing to do
    assert resumed == wanted


def test_reconcile_runs_the_three_passes_with_its_clock(book, fake_ln, resumed, django_capture_on_commit_callbacks):
    finished = bond_row(make_order(), state="released", fake_ln=fake_ln)
    locked = bond_row(make_order(status="pending"), state="locked")
    later = timezone.now() + timedelta(seconds=90)  # bob's bond on order b is past its invoice by then
    assert reconcile_bonds(now=later) == {"expired": 3, "finished": 4, "resumed": 1}  # the 3 released just now too
    assert (Bond.objects.get(pk=book["b"].pk).state, Bond.objects.get(pk=finished.pk).htlc_resolved_at is not None) == (
        "released", True,
    )  # fmt: skip
    assert resumed == [locked.pk]
    assert reconcile_bonds() == {"expired": 0, "finished": 0, "resumed": 0}  # the resume found nothing to do
