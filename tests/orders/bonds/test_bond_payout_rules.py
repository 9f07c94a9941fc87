"""The payout of a slashed bond's counterparty share (docs/PROTOCOL.md §Bonds, Payout), service by service.

Slashed bonds are written directly (the slash itself: test_bond_slash_rules.py; the whole flow
through the solver: tests/disputes/test_bond_slash.py). Two orders exist in every test, and
the guards are made to decide by a competitor run between a step's read and its write
(tests/guards/support.py). Defaults: window 300 s, 5 attempts, claim window 15 days.
"""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import transaction
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage

import orders.bonds.payout as payout_module
from lightning.bolt11 import decode_invoice
from mostro_site.config import clear_node_config_cache
from mostro_site.models import NodeSettings
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.errors import CantDo
from orders.bonds.models import Bond
from orders.bonds.payout import bond_pay, bond_payout_invoice_accept, bond_payout_step, process_bond_payouts
from tests.foundation.factories import make_order
from tests.guards.support import after_first_call, before_first_transaction
from tests.orders.bonds.support import bond_row, bond_snapshot, history, lnd_calls
from tests.orders.services.support import mint_invoice

pytestmark = pytest.mark.django_db
SELLER, BUYER = "a" * 64, "e" * 64


@pytest.fixture
def order(node, fake_ln):
    make_order(status="success", buyer_pubkey="9" * 64)  # a second order: every lookup must name its own
    return make_order(status="success", buyer_pubkey=BUYER)


def owed(order, *, amount=1001, share=501, recipient=SELLER, state="pending-payout", **fields) -> Bond:
    """A bond of `order` slashed now, its HTLC settled and confirmed by LND: `share` owed to
    `recipient`, the rest the node's."""
    now = timezone.now()
    values = {
        "node_share_sats": amount - share, "payout_sats": share, "payout_recipient": recipient,
        "slashed_at": now, "decided_at": now, "slashed_reason": "lost-dispute", "htlc_resolved_at": now,
    }  # fmt: skip
    return bond_row(order, pubkey=BUYER, state=state, amount_sats=amount, **(values | fields))


def accept(order, invoice, *, sender=SELLER) -> Bond:
    return bond_payout_invoice_accept(order_id=order.pk, sender=sender, invoice=invoice, atomic=transaction.atomic)


def refused(order, invoice, reason, *, sender=SELLER, bonds=()) -> None:
    before = [bond_snapshot(b) for b in bonds]
    messages = OutboundMessage.objects.count()
    with pytest.raises(CantDo) as refusal:
        accept(order, invoice, sender=sender)
    assert refusal.value.reason == reason
    assert [bond_snapshot(b) for b in bonds] == before
    assert OutboundMessage.objects.count() == messages


def messages() -> list[tuple[str, str]]:
    return list(OutboundMessage.objects.exclude(action="").order_by("pk").values_list("recipient_pubkey", "action"))


def row(bond, *fields) -> tuple:
    bond.refresh_from_db()
    return tuple(getattr(bond, name) for name in fields)


def invoice_hash(invoice: str) -> str:
    return decode_invoice(invoice).payment_hash_hex


# -- the job: ask, settle a zero share, forfeit ----------------------------------------------------


def test_the_recipient_is_asked_once_per_window_and_again_when_it_ends(order):
    bond = owed(order)
    first = bond.slashed_at + timedelta(seconds=1)
    assert process_bond_payouts(now=first) == {"asked": 1}
    assert row(bond, "payout_asked_at") == (first,)
    assert process_bond_payouts(now=first + timedelta(seconds=299)) == {"waiting": 1}
    assert process_bond_payouts(now=first + timedelta(seconds=300)) == {"asked": 1}
    assert row(bond, "payout_asked_at") == (first + timedelta(seconds=300),)
    assert messages() == [(SELLER, "add-bond-invoice"), (SELLER, "add-bond-invoice")]


def test_a_zero_share_goes_straight_to_slashed_without_asking(order, fake_ln):
    bond = owed(order, amount=1000, share=0)
    assert process_bond_payouts() == {"settled_without_share": 1}
    assert (row(bond, "state"), history(bond), messages(), fake_ln.calls) == (
        ("slashed",), [("pending-payout", "slashed")], [], [],
    )  # fmt: skip


def test_one_sweep_takes_fifty_bonds(order):
    bonds = [owed(order, amount=1000, share=0) for _ in range(51)]
    assert process_bond_payouts() == {"settled_without_share": 50}
    assert [b.state for b in Bond.objects.order_by("pk")] == ["slashed"] * 50 + ["pending-payout"]
    assert Bond.objects.get(pk=bonds[-1].pk).state == "pending-payout"


def test_no_ask_once_the_invoice_arrived_after_the_sweep_read_the_bond(order):
    bond = owed(order)
    stale = Bond.objects.get(pk=bond.pk)
    accept(order, mint_invoice(amount_sats=501))  # the winner was quicker than the sweep
    before, sent = bond_snapshot(bond), messages()
    bond_payout_step(bond=stale, now=timezone.now())
    assert (bond_snapshot(bond), messages()) == (before, sent)


def test_a_payment_in_flight_at_the_end_of_the_claim_window_is_asked_of_lnd_not_forfeited(order, fake_ln):
    bond = owed(order, payout_invoice=mint_invoice(amount_sats=501))
    fake_ln.leave_next_payment_in_flight()
    assert bond_pay(bond_id=bond.pk) == "waiting"
    deadline = bond.slashed_at + timedelta(days=15)
    assert process_bond_payouts(now=deadline) == {"waiting": 1}
    assert row(bond, "state") == ("pending-payout",)
    fake_ln.resolve_payment(invoice_hash(bond.payout_invoice), succeed=True)
    assert process_bond_payouts(now=deadline + timedelta(days=1)) == {"paid": 1}
    assert (row(bond, "state"), history(bond)) == (("slashed",), [("pending-payout", "slashed")])
    assert messages() == [(SELLER, "bond-payout-completed")]


def test_a_forfeit_loses_to_a_payment_claimed_after_the_sweep_read_the_bond(order, fake_ln):
    bond = owed(order, payout_invoice=mint_invoice(amount_sats=501))
    stale = Bond.objects.get(pk=bond.pk)  # the sweep's read, before the payout task claimed
    fake_ln.leave_next_payment_in_flight()
    assert bond_pay(bond_id=bond.pk) == "waiting"
    before = bond_snapshot(bond)
    assert bond_payout_step(bond=stale, now=bond.slashed_at + timedelta(days=15)) == "waiting"
    assert bond_snapshot(bond) == before


def test_an_unclaimed_share_is_forfeited_at_the_end_of_the_claim_window(order, fake_ln):
    bond = owed(order, state="failed")
    deadline = bond.slashed_at + timedelta(days=15)
    assert process_bond_payouts(now=deadline - timedelta(microseconds=1)) == {"asked": 1}
    assert process_bond_payouts(now=deadline) == {"forfeited": 1}
    assert (row(bond, "state"), history(bond), fake_ln.calls) == (("forfeited",), [("failed", "forfeited")], [])


# -- add-bond-invoice from the winner --------------------------------------------------------------


@pytest.mark.parametrize("invoice", ["", None])
def test_an_empty_invoice_is_invalid_before_anything_is_looked_up(order, invoice):
    refused(order, invoice, CantDoReason.INVALID_INVOICE, sender="7" * 64)


def test_an_invoice_for_another_order_is_refused(order):
    bond = owed(order)
    elsewhere = make_order(status="success", buyer_pubkey=BUYER)
    refused(elsewhere, mint_invoice(amount_sats=501), CantDoReason.NOT_ALLOWED_BY_STATUS, bonds=[bond])


def test_the_first_owed_bond_without_an_invoice_gets_it(order):
    """Two slashed takers of one order owe the maker; a zero share and a given invoice are skipped."""
    zero = owed(order, amount=1000, share=0)
    given = owed(order, payout_invoice=mint_invoice(amount_sats=501))
    bond = owed(order, amount=1201, share=601)
    untouched = [bond_snapshot(zero), bond_snapshot(given)]
    invoice = mint_invoice(amount_sats=601)
    assert accept(order, invoice).pk == bond.pk
    assert row(bond, "state", "payout_invoice") == ("pending-payout", invoice)
    assert [bond_snapshot(zero), bond_snapshot(given)] == untouched
    assert messages() == [(SELLER, "bond-invoice-accepted")]


def test_a_one_sat_share_is_owed_and_a_zero_share_is_not(order):
    zero = owed(order, amount=1000, share=0)
    refused(order, mint_invoice(amount_sats=1), CantDoReason.NOT_ALLOWED_BY_STATUS, bonds=[zero])
    bond = owed(order, amount=1000, share=1)
    invoice = mint_invoice(amount_sats=1)
    accept(order, invoice)
    assert row(bond, "payout_invoice") == (invoice,)


def test_the_claim_window_ends_at_its_last_instant(order, monkeypatch):
    bond = owed(order)
    deadline = bond.slashed_at + timedelta(days=15)
    monkeypatch.setattr(payout_module, "timezone", SimpleNamespace(now=lambda: deadline))
    refused(order, mint_invoice(amount_sats=501), CantDoReason.NOT_ALLOWED_BY_STATUS, bonds=[bond])
    monkeypatch.setattr(payout_module, "timezone", SimpleNamespace(now=lambda: deadline - timedelta(microseconds=1)))
    accept(order, invoice := mint_invoice(amount_sats=501))
    assert row(bond, "payout_invoice") == (invoice,)


@pytest.mark.parametrize(
    ("_case", "invoice"),
    [
        ("amountless", lambda: mint_invoice(amount_sats=0)),
        ("short of the share", lambda: mint_invoice(amount_sats=500)),
    ],
)
def test_an_invoice_for_not_exactly_the_share_is_invalid(order, _case, invoice):
    bond = owed(order)
    refused(order, invoice(), CantDoReason.INVALID_INVOICE, bonds=[bond])


def test_while_lnd_has_not_told_its_network_no_invoice_is_taken(order, monkeypatch):
    bond = owed(order)
    monkeypatch.setattr("nostrbridge.event_settings.invoice_network", lambda: None)
    refused(order, mint_invoice(amount_sats=501), CantDoReason.INVALID_INVOICE, bonds=[bond])


def test_a_new_invoice_revives_a_failed_bond_with_its_attempts_reset(order):
    bond = owed(order, state="failed", payout_attempts=5)
    invoice = mint_invoice(amount_sats=501)
    accept(order, invoice)
    assert row(bond, "state", "payout_invoice", "payout_attempts") == ("pending-payout", invoice, 0)
    assert history(bond) == [("failed", "pending-payout")]


def test_a_second_invoice_between_the_read_and_the_write_does_not_replace_the_first(order, monkeypatch):
    bond = owed(order)
    first, second = mint_invoice(amount_sats=501), mint_invoice(amount_sats=501)
    after_first_call(monkeypatch, payout_module, "_check_invoice", lambda: accept(order, first))
    with pytest.raises(CantDo) as refusal:
        accept(order, second)
    assert refusal.value.reason == CantDoReason.NOT_ALLOWED_BY_STATUS
    assert row(bond, "payout_invoice") == (first,)
    assert messages() == [(SELLER, "bond-invoice-accepted")]


# -- the payment task ------------------------------------------------------------------------------


def test_the_payment_runs_in_the_cluster_in_the_same_transaction_with_a_real_broker(
    order, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", "default")
    bond = owed(order)
    with django_capture_on_commit_callbacks() as callbacks:
        accept(order, mint_invoice(amount_sats=501))
    [task] = [SignedPackage.loads(queued.payload) for queued in OrmQ.objects.all()]
    assert (task["func"], task["kwargs"], task["name"], task["save"]) == (
        "orders.bonds.payout.bond_pay", {"bond_id": bond.pk}, f"bond-payout-{bond.pk}", False,
    )  # fmt: skip
    assert [c for c in callbacks if getattr(c, "__qualname__", "").startswith("_pay_in_background")] == []


def test_a_synchronous_cluster_pays_after_the_commit_and_a_queue_error_loses_nothing(
    order, monkeypatch, django_capture_on_commit_callbacks
):
    bond = owed(order)
    calls = []

    def broken_queue(*args, **kwargs):
        calls.append((args, kwargs))
        raise ConnectionError("queue down")

    monkeypatch.setattr("django_q.tasks.async_task", broken_queue)
    with django_capture_on_commit_callbacks(execute=True):
        accept(order, invoice := mint_invoice(amount_sats=501))
    assert calls == [
        (("orders.bonds.payout.bond_pay",), {"bond_id": bond.pk, "task_name": f"bond-payout-{bond.pk}", "save": False})
    ]
    assert row(bond, "payout_invoice") == (invoice,)  # the next sweep pays it


@pytest.fixture
def big_share(order):
    """3001 sats slashed: 1501 owed, above the small-payment fee floor; the operator's cap 1 %."""
    NodeSettings.objects.create(pk=1, max_routing_fee=0.01)
    clear_node_config_cache()
    yield owed(order, amount=3001, share=1501, payout_invoice=mint_invoice(amount_sats=1501))
    clear_node_config_cache()


def test_the_payment_is_claimed_before_it_is_sent_then_recorded(big_share, fake_ln, monkeypatch):
    bond, invoice = big_share, big_share.payout_invoice
    at = timezone.now() - timedelta(minutes=1)
    monkeypatch.setattr(payout_module, "timezone", SimpleNamespace(now=lambda: at))
    seen = []
    real_send = fake_ln.send_payment
    claim = ("payout_hash", "payout_claimed_at")
    monkeypatch.setattr(fake_ln, "send_payment", lambda **kw: seen.append(row(bond, *claim)) or real_send(**kw))
    assert bond_pay(bond_id=bond.pk) == "paid"
    assert seen == [(invoice_hash(invoice), at)]
    # floor(1501 × 0.01) = 15 sats of routing fee at most (the operator's setting, not the env's 0.002).
    assert lnd_calls(fake_ln, "send_payment") == [
        {"payment_request": invoice, "max_fee_sats": 15, "timeout_seconds": 60, "amount_sats": None}
    ]
    assert row(bond, "state", "payout_hash", "payout_attempts", "payout_paid_at") == (
        "slashed", invoice_hash(invoice), 0, at,
    )  # fmt: skip
    assert messages() == [(SELLER, "bond-payout-completed")]


@pytest.mark.parametrize(
    ("_case", "fields"),
    [
        ("already paid", {"state": "slashed", "payout_paid_at": timezone.now()}),
        ("failed, no invoice", {"state": "failed", "payout_invoice": None}),
        ("owed, no invoice yet", {"payout_invoice": None}),
    ],
)
def test_a_task_for_a_bond_with_nothing_to_pay_calls_nobody(big_share, fake_ln, _case, fields):
    Bond.objects.filter(pk=big_share.pk).update(**fields)
    before = bond_snapshot(big_share)
    fake_ln.calls.clear()
    assert bond_pay(bond_id=big_share.pk) == "waiting"
    assert (bond_snapshot(big_share), fake_ln.calls, messages()) == (before, [], [])


def test_an_unknown_outcome_keeps_the_claim_and_the_next_task_asks_lnd(big_share, fake_ln):
    bond, hash_hex = big_share, invoice_hash(big_share.payout_invoice)
    fake_ln.leave_next_payment_in_flight()
    assert bond_pay(bond_id=bond.pk) == "waiting"
    assert row(bond, "state", "payout_hash", "payout_attempts") == ("pending-payout", hash_hex, 0)
    fake_ln.resolve_payment(hash_hex, succeed=True)
    assert bond_pay(bond_id=bond.pk) == "paid"
    assert (len(lnd_calls(fake_ln, "send_payment")), lnd_calls(fake_ln, "track_payment")) == (
        2, [{"payment_hash": hash_hex}],
    )  # fmt: skip  # the second send is refused by LND as a duplicate, then tracked
    assert row(bond, "state") == ("slashed",)


def test_a_second_task_between_the_read_and_the_claim_does_not_pay_again(big_share, fake_ln, monkeypatch):
    bond = big_share
    fake_ln.leave_next_payment_in_flight()
    ran = []
    before_first_transaction(monkeypatch, payout_module, lambda: ran.append(bond_pay(bond_id=bond.pk)))
    assert bond_pay(bond_id=bond.pk) == "waiting"
    assert ran == ["waiting"]
    assert [c["payment_request"] for c in lnd_calls(fake_ln, "send_payment")] == [bond.payout_invoice]
    assert lnd_calls(fake_ln, "track_payment") == []


def test_an_invoice_replaced_between_the_read_and_the_claim_is_not_paid(big_share, fake_ln, monkeypatch):
    """The competitor's payment of the first invoice fails its fifth attempt (failed); the winner
    then sends a new invoice (pending-payout again): the stale task must not pay the old one."""
    bond, old, new = big_share, big_share.payout_invoice, mint_invoice(amount_sats=1501)
    Bond.objects.filter(pk=bond.pk).update(payout_attempts=4)

    def competitor():
        fake_ln.fail_next_payment()
        return bond_pay(bond_id=bond.pk), accept(bond.order, new).pk

    ran = []
    before_first_transaction(monkeypatch, payout_module, lambda: ran.append(competitor()))
    assert bond_pay(bond_id=bond.pk) == "waiting"
    assert ran == [("failed", bond.pk)]
    assert [c["payment_request"] for c in lnd_calls(fake_ln, "send_payment")] == [old]
    assert row(bond, "state", "payout_invoice", "payout_hash", "payout_attempts") == ("pending-payout", new, None, 0)


def test_an_invoice_already_claimed_by_another_bond_is_not_paid_twice(big_share, fake_ln):
    """The winner sends the same invoice for both bonds it is owed on the order."""
    first = big_share
    assert bond_pay(bond_id=first.pk) == "paid"
    second = owed(first.order, amount=3001, share=1501, payout_invoice=first.payout_invoice)
    before = bond_snapshot(second)
    assert bond_pay(bond_id=second.pk) == "waiting"
    assert bond_snapshot(second) == before
    assert len(lnd_calls(fake_ln, "send_payment")) == 1


def test_a_failed_attempt_drops_its_claim_and_the_last_one_asks_for_a_new_invoice(big_share, fake_ln, settings):
    bond, invoice = big_share, big_share.payout_invoice
    Bond.objects.filter(pk=bond.pk).update(payout_asked_at=bond.slashed_at)
    fake_ln.fail_next_payment()
    assert bond_pay(bond_id=bond.pk) == "failed"
    fields = ("state", "payout_invoice", "payout_hash", "payout_claimed_at", "payout_attempts", "payout_asked_at")
    assert row(bond, *fields) == ("pending-payout", invoice, None, None, 1, bond.slashed_at)
    Bond.objects.filter(pk=bond.pk).update(payout_attempts=4)
    fake_ln.fail_next_payment()
    assert bond_pay(bond_id=bond.pk) == "failed"
    assert row(bond, *fields) == ("failed", None, None, None, 5, None)
    assert history(bond) == [("pending-payout", "failed")]
    assert process_bond_payouts(now=bond.slashed_at + timedelta(seconds=1)) == {"asked": 1}  # within the window


def test_nothing_moves_before_lnd_confirmed_the_slashed_htlc_settled(order, fake_ln):
    """The slash is decided before LND settles the bond (docs/PROTOCOL.md §Bonds): until LND
    confirmed it (`htlc_resolved_at`) the winner is neither asked nor paid, nor the share forfeited."""
    bond = owed(order, htlc_resolved_at=None, payout_invoice=mint_invoice(amount_sats=501))
    before = bond_snapshot(bond)
    late = timezone.now() + timedelta(days=30)  # past the claim window too
    assert process_bond_payouts(now=late) == {"awaiting-settle": 1}
    assert bond_pay(bond_id=bond.pk) == "awaiting-settle"
    assert bond_snapshot(bond) == before
    assert (OutboundMessage.objects.count(), lnd_calls(fake_ln, "send_payment")) == (0, [])
