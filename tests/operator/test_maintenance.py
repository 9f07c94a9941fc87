"""Maintenance mode: the switch service, the drain counters and `manage.py maintenance`
(docs/PROTOCOL.md §Maintenance, docs/OPERATIONS.md "Maintenance mode")."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from devfee.models import DevFeePayment, DevFeeStatus
from mostro_site.models import MaintenanceState, SettingsAuditEntry
from mostro_site.operator.maintenance import maintenance_set, maintenance_status
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.nip01 import Event
from orders.bonds.models import Bond, BondState
from orders.selectors import DrainCounters, drain_counters
from tests.foundation.factories import make_order

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node", "fake_ln")]

REASON = "moving to the new LND box"


def _info_tags() -> dict[str, str]:
    event = Event.from_json(OutboundMessage.objects.filter(kind=38385).latest("pk").event_json)
    return {tag[0]: tag[1] for tag in event.tags}


def _switch(capture, **kwargs) -> bool:
    with capture(execute=True):
        return maintenance_set(**kwargs)


def test_switching_on_stores_audits_and_republishes_without_the_reason(
    operator_user, django_capture_on_commit_callbacks
):
    assert _switch(
        django_capture_on_commit_callbacks, enabled=True, reason=f"  {REASON} ", user=operator_user, via="dashboard"
    )

    state = MaintenanceState.objects.get()
    assert (state.enabled, state.reason, state.since is not None) == (True, REASON, True)
    audit = SettingsAuditEntry.objects.get()
    assert (audit.user, audit.field, audit.before, audit.after) == (
        operator_user,
        "maintenance_mode",
        "off",
        f"on: {REASON} (via dashboard)",
    )
    assert _info_tags()["maintenance_mode"] == "true"
    assert not OutboundMessage.objects.filter(event_json__contains="LND box").exists()


def test_switching_on_again_keeps_since_and_only_a_new_reason_is_audited(django_capture_on_commit_callbacks):
    _switch(django_capture_on_commit_callbacks, enabled=True, reason=REASON, via="api")
    since = MaintenanceState.objects.get().since
    info_rows = OutboundMessage.objects.filter(kind=38385).count()

    assert _switch(django_capture_on_commit_callbacks, enabled=True, reason=REASON, via="api") is False
    assert SettingsAuditEntry.objects.count() == 1
    assert OutboundMessage.objects.filter(kind=38385).count() == info_rows

    assert _switch(django_capture_on_commit_callbacks, enabled=True, reason="longer", via="api") is True
    state = MaintenanceState.objects.get()
    assert (state.reason, state.since) == ("longer", since)
    assert OutboundMessage.objects.filter(kind=38385).count() == info_rows  # same tags: not repeated


def test_switching_off_clears_reason_and_since_and_republishes(django_capture_on_commit_callbacks):
    _switch(django_capture_on_commit_callbacks, enabled=True, reason=REASON, via="command line")
    assert _switch(django_capture_on_commit_callbacks, enabled=False, via="command line")

    state = MaintenanceState.objects.get()
    assert (state.enabled, state.reason, state.since) == (False, "", None)
    assert list(SettingsAuditEntry.objects.order_by("pk").values_list("before", "after")) == [
        ("off", f"on: {REASON} (via command line)"),
        (f"on: {REASON}", "off (via command line)"),
    ]
    assert _info_tags()["maintenance_mode"] == "false"


def test_off_when_never_switched_changes_nothing():
    assert maintenance_set(enabled=False, via="api") is False
    assert (MaintenanceState.objects.count(), SettingsAuditEntry.objects.count()) == (1, 0)
    assert not OutboundMessage.objects.exists()


def test_an_overlong_reason_is_refused_and_nothing_changes():
    with pytest.raises(ValueError, match="500 characters"):
        maintenance_set(enabled=True, reason="x" * 501, via="api")
    assert (MaintenanceState.objects.count(), SettingsAuditEntry.objects.count()) == (0, 0)


def test_drain_counters_use_mostrods_predicates():
    hashes = iter(f"{n:064x}" for n in range(1, 100))
    make_order(status="pending")
    make_order(status="pending")
    make_order(status="waiting-payment", hold_invoice_hash=next(hashes))
    make_order(status="active", hold_invoice_hash=next(hashes))
    make_order(status="dispute", hold_invoice_hash=next(hashes))
    make_order(status="success", hold_invoice_hash=next(hashes))  # terminal
    make_order(status="canceled", hold_invoice_hash=next(hashes))  # terminal
    paying = make_order(status="settled-hold-invoice", hold_invoice_hash=next(hashes), payout_payment_hash=next(hashes))
    # failed, no payment in flight: not counted; a failed one with a hash still is
    make_order(status="settled-hold-invoice", hold_invoice_hash=next(hashes), failed_payment=True)
    make_order(
        status="settled-hold-invoice",
        hold_invoice_hash=next(hashes),
        failed_payment=True,
        payout_payment_hash=next(hashes),
    )
    done = make_order(status="success", hold_invoice_hash=next(hashes))
    other = make_order(status="success", hold_invoice_hash=next(hashes))
    DevFeePayment.objects.create(
        order=done, amount_sats=5, destination="d@x", status=DevFeeStatus.IN_FLIGHT, payment_hash=next(hashes)
    )
    DevFeePayment.objects.create(
        order=other, amount_sats=5, destination="d@x", status=DevFeeStatus.PAID, payment_hash=next(hashes)
    )
    DevFeePayment.objects.create(order=paying, amount_sats=5, destination="d@x", status=DevFeeStatus.CLAIMED)

    counters = drain_counters()

    assert counters == DrainCounters(
        escrowed_orders=5,
        inflight_payouts=2,
        inflight_dev_fees=1,
        open_bonds=0,
        pending_bond_payouts=0,
        pending_orders=2,
    )
    assert counters.drained is False


def test_drain_counters_treat_the_legacy_admin_statuses_as_ended():
    # Imported from a mostrod database, never written here: their escrow is gone (mostrod's list).
    make_order(status="settled-by-admin", hold_invoice_hash="a1" * 32)
    make_order(status="completed-by-admin", hold_invoice_hash="a2" * 32)
    make_order(status="fiat-sent", hold_invoice_hash="a3" * 32)

    assert drain_counters().escrowed_orders == 1


def _bond(order, n: int, state: str, *, role: str = "taker", payout_hash: str | None = None) -> Bond:
    return Bond.objects.create(
        order=order,
        role=role,
        pubkey=f"{n:064x}",
        identity=f"{n:064x}",
        state=state,
        amount_sats=1_000,
        hash=f"{n + 500:064x}",
        preimage=f"{n + 900:064x}",
        payment_request="lnbcrt-bond",
        invoice_expires_at=timezone.now(),
        payout_hash=payout_hash,
    )


def test_drain_counters_count_open_bonds_and_bond_payouts_in_flight():
    waiting, taken, slashed = make_order(status="pending"), make_order(status="active"), make_order(status="success")
    _bond(waiting, 1, BondState.REQUESTED)
    _bond(waiting, 2, BondState.REQUESTED)  # a second taker's invoice, not paid yet
    _bond(taken, 3, BondState.LOCKED, role="maker")
    _bond(taken, 4, BondState.RELEASED)
    _bond(slashed, 5, BondState.PENDING_PAYOUT, payout_hash="ee" * 32)
    _bond(slashed, 6, BondState.PENDING_PAYOUT, role="maker")  # no invoice yet: nothing in flight
    _bond(slashed, 7, BondState.FORFEITED)

    counters = drain_counters()

    assert (counters.open_bonds, counters.pending_bond_payouts) == (3, 1)
    assert counters.drained is False


def test_drain_counters_tell_owed_payouts_from_paid_and_abandoned_ones():
    hashes = iter(f"{n:064x}" for n in range(200, 300))
    owed = make_order(status="settled-hold-invoice", hold_invoice_hash=next(hashes))  # released, payout not sent
    for _ in range(2):  # failed, no payment in flight: the sats are the node's balance now
        make_order(status="settled-hold-invoice", hold_invoice_hash=next(hashes), failed_payment=True)
    make_order(  # failed once, a new payment in flight
        status="settled-hold-invoice",
        hold_invoice_hash=next(hashes),
        failed_payment=True,
        payout_payment_hash=next(hashes),
    )
    paid = make_order(status="success", hold_invoice_hash=next(hashes), payout_payment_hash=next(hashes))
    for order, status in ((owed, DevFeeStatus.OWED), (paid, DevFeeStatus.FAILED)):
        DevFeePayment.objects.create(order=order, amount_sats=5, destination="d@x", status=status)
    _bond(paid, 8, BondState.SLASHED, payout_hash="ef" * 32)  # its share was paid
    _bond(paid, 9, BondState.PENDING_PAYOUT, role="maker")  # no invoice yet
    _bond(owed, 10, BondState.PENDING_PAYOUT, role="maker")  # no invoice yet

    counters = drain_counters()

    assert (counters.escrowed_orders, counters.inflight_payouts, counters.inflight_dev_fees) == (2, 1, 0)
    assert (counters.open_bonds, counters.pending_bond_payouts, counters.drained) == (0, 0, False)


def test_pending_orders_alone_leave_the_node_drained():
    make_order(status="pending")
    make_order(status="success", hold_invoice_hash="ab" * 32)
    counters = drain_counters()
    assert (counters.pending_orders, counters.drained) == (1, True)


def test_status_command_prints_the_counters_and_exits_zero():
    make_order(status="active", hold_invoice_hash="ab" * 32)
    out = StringIO()
    call_command("maintenance", "status", stdout=out)  # raises SystemExit on a non-zero exit
    assert out.getvalue().splitlines() == [
        "maintenance: off",
        "reason: ",
        "since: ",
        "escrowed_orders: 1",
        "inflight_payouts: 0",
        "inflight_dev_fees: 0",
        "open_bonds: 0",
        "pending_bond_payouts: 0",
        "pending_orders: 0",
        "drained: no",
    ]


def test_on_and_off_commands_switch_and_say_when_drained(django_capture_on_commit_callbacks):
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("maintenance", "on", "--reason", REASON, stdout=out)
    lines = out.getvalue().splitlines()
    since = MaintenanceState.objects.get().since
    assert lines[:3] == ["maintenance on", "maintenance: on", f"reason: {REASON}"]
    assert lines[3] == f"since: {since.isoformat()}"
    assert lines[-2:] == ["drained: yes", "drained: safe to stop the node or change the Lightning node"]
    assert SettingsAuditEntry.objects.get().after == f"on: {REASON} (via command line)"
    assert _info_tags()["maintenance_mode"] == "true"

    out = StringIO()
    call_command("maintenance", "on", stdout=out)  # again without a reason: the stored one stays
    assert out.getvalue().splitlines()[:3] == ["maintenance already on", "maintenance: on", f"reason: {REASON}"]
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("maintenance", "off", stdout=out)
    assert out.getvalue().splitlines()[:2] == ["maintenance off", "maintenance: off"]
    assert maintenance_status().enabled is False
    out = StringIO()
    call_command("maintenance", "off", stdout=out)
    assert out.getvalue().splitlines()[0] == "maintenance already off"
