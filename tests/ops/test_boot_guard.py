"""The boot guard (docs/OPERATIONS.md "Changing the Lightning node"), against two simnet LND nodes:
the node trades on "mostro"; "alice" plays the replacement node."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from mostro_site.operator.lnstatus import lightning_status
from mostro_site.ops.lnd_identity import NodeChangeRefused, lnd_node_guard
from mostro_site.ops.models import RecordedLightningNode
from nostrbridge.log_context import process_role, set_process_role
from tests.foundation.factories import make_order

pytestmark = pytest.mark.django_db


def _guard(simnet, name: str, *, allow_change: bool = False):
    with override_settings(**simnet.lnd_settings(name)):
        status = lightning_status()
    assert status.available, status.error
    return lnd_node_guard(pubkey=status.pubkey, alias=status.alias, network=status.network, allow_change=allow_change)


def _recorded() -> str:
    return RecordedLightningNode.objects.get().pubkey


def test_first_start_records_and_the_same_node_passes(simnet):
    mostro = simnet.node("mostro")["pubkey"]
    first = _guard(simnet, "mostro")
    again = _guard(simnet, "mostro")
    assert (first.outcome, again.outcome, _recorded()) == ("recorded", "same", mostro)
    assert RecordedLightningNode.objects.get().network == "regtest"


def test_another_node_with_open_escrow_is_refused_and_the_record_stays(simnet):
    mostro, alice = simnet.node("mostro")["pubkey"], simnet.node("alice")["pubkey"]
    _guard(simnet, "mostro")
    make_order(status="active", hold_invoice_hash="ab" * 32)
    recorded_at = RecordedLightningNode.objects.get().recorded_at

    with pytest.raises(NodeChangeRefused) as refusal:
        _guard(simnet, "alice")

    assert (refusal.value.recorded_pubkey, refusal.value.pubkey) == (mostro, alice)
    assert refusal.value.counters.escrowed_orders == 1
    assert "LND_ALLOW_NODE_CHANGE=true" in str(refusal.value)
    assert (_recorded(), RecordedLightningNode.objects.get().recorded_at) == (mostro, recorded_at)


def test_the_override_starts_but_keeps_the_old_record(simnet):
    mostro = simnet.node("mostro")["pubkey"]
    _guard(simnet, "mostro")
    make_order(status="settled-hold-invoice", hold_invoice_hash="ab" * 32, payout_payment_hash="cd" * 32)

    verdict = _guard(simnet, "alice", allow_change=True)

    assert (verdict.outcome, verdict.recorded_pubkey, _recorded()) == ("overridden", mostro, mostro)


def test_a_drained_node_may_change_its_lightning_node(simnet):
    alice = simnet.node("alice")["pubkey"]
    _guard(simnet, "mostro")
    make_order(status="success", hold_invoice_hash="ab" * 32)  # finished: nothing tied to the old node
    make_order(status="pending")  # informational only

    verdict = _guard(simnet, "alice")

    assert (verdict.outcome, _recorded()) == ("changed", alice)
    assert RecordedLightningNode.objects.get().recorded_at <= timezone.now()


@pytest.fixture
def _keep_process_role():
    role = process_role()  # the command names its process "node"; later tests expect this one's
    yield
    set_process_role(role)


@pytest.mark.usefixtures("_keep_process_role")
def test_mostrod_refuses_to_start_on_another_node_with_open_escrow(simnet, settings):
    """The real command, stopped before it serves anything."""
    RecordedLightningNode.objects.create(
        pubkey=simnet.node("mostro")["pubkey"], alias="mostro", recorded_at=timezone.now()
    )
    make_order(status="waiting-payment", hold_invoice_hash="ab" * 32)
    settings.LND_ALLOW_NODE_CHANGE = False
    with override_settings(**simnet.lnd_settings("alice")), pytest.raises(CommandError, match="escrow is on"):
        call_command("mostrod", "--no-migrate", "--no-cluster", "--no-bridge", "--no-watcher")
    assert _recorded() == simnet.node("mostro")["pubkey"]
