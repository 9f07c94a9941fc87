"""disputes/transitions.py: the one writer of disputes (table, guard, log row, 38386)."""

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Q

from disputes.models import Dispute, DisputeLog, DisputeStatus
from disputes.transitions import (
    ALLOWED_TRANSITIONS,
    IllegalDisputeTransition,
    dispute_close,
    dispute_create,
    transition_dispute,
)
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.nip01 import Event
from tests.foundation.factories import make_order

pytestmark = pytest.mark.django_db

S = DisputeStatus
SOLVER = "5" * 64


@pytest.fixture
def dispute() -> Dispute:
    order = make_order(status="dispute", buyer_pubkey="d" * 64)
    with transaction.atomic():
        return dispute_create(
            order_id=order.id,
            initiator="buyer",
            initiator_pubkey="d" * 64,
            order_previous_status="fiat-sent",
            actor="d" * 64,
        )


def _log(dispute: Dispute) -> list[tuple[str, str]]:
    return list(DisputeLog.objects.filter(dispute=dispute).values_list("action", "actor"))


def _event_statuses(dispute: Dispute) -> list[str]:
    rows = OutboundMessage.objects.filter(kind=38386, order_id=dispute.order_id).order_by("pk")
    return [Event.from_json(row.event_json).tag_value("s") for row in rows]


def test_the_allowed_transitions_are_exactly_these():
    assert ALLOWED_TRANSITIONS == {
        S.INITIATED: {S.IN_PROGRESS, S.SETTLED, S.SELLER_REFUNDED, S.RELEASED, S.COOPERATIVELY_CANCELED},
        S.IN_PROGRESS: {S.IN_PROGRESS, S.SETTLED, S.SELLER_REFUNDED, S.RELEASED, S.COOPERATIVELY_CANCELED},
        S.SETTLED: {S.INITIATED},
        S.SELLER_REFUNDED: {S.INITIATED},
        S.RELEASED: {S.INITIATED},
        S.COOPERATIVELY_CANCELED: {S.INITIATED},
    }


def test_creation_is_logged_and_published(dispute):
    assert (dispute.status, _log(dispute), _event_statuses(dispute)) == (
        "initiated",
        [("opened", "d" * 64)],
        ["initiated"],
    )


def test_a_second_dispute_for_the_order_fails_and_leaves_the_transaction_usable(dispute):
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            dispute_create(
                order_id=dispute.order_id,
                initiator="seller",
                initiator_pubkey="a" * 64,
                order_previous_status="active",
                actor="a" * 64,
            )
        assert Dispute.objects.filter(order_id=dispute.order_id).count() == 1
    assert (len(_log(dispute)), _event_statuses(dispute)) == (1, ["initiated"])


def test_a_won_transition_changes_logs_and_publishes_once(dispute):
    with transaction.atomic():
        won = transition_dispute(
            dispute=dispute,
            from_statuses=[S.INITIATED],
            to_status=S.IN_PROGRESS,
            actor="admin:alice",
            set_fields={"solver_pubkey": SOLVER},
            guard=Q(solver_pubkey=None),
        )
    assert (won, dispute.status, dispute.solver_pubkey) == (True, "in-progress", SOLVER)
    assert _log(dispute) == [("opened", "d" * 64), ("taken", "admin:alice")]
    assert _event_statuses(dispute) == ["initiated", "in-progress"]


@pytest.mark.parametrize(
    ("_case", "from_statuses", "guard"),
    [("status moved on", [S.IN_PROGRESS], None), ("guard no longer holds", [S.INITIATED], Q(solver_pubkey=SOLVER))],
)
def test_a_lost_transition_writes_nothing(dispute, _case, from_statuses, guard):
    with transaction.atomic():
        won = transition_dispute(
            dispute=dispute, from_statuses=from_statuses, to_status=S.SETTLED, actor="x", guard=guard
        )
    dispute.refresh_from_db()
    assert (won, dispute.status, dispute.resolved_at) == (False, "initiated", None)
    assert (len(_log(dispute)), _event_statuses(dispute)) == (1, ["initiated"])


def test_a_move_outside_the_table_is_refused_before_any_write(dispute):
    with transaction.atomic(), pytest.raises(IllegalDisputeTransition, match="initiated -> initiated"):
        transition_dispute(dispute=dispute, from_statuses=[S.INITIATED], to_status=S.INITIATED, actor="x")
    assert (len(_log(dispute)), _event_statuses(dispute)) == (1, ["initiated"])


@pytest.mark.django_db(transaction=True)  # no test-case transaction around it
def test_writes_outside_a_transaction_are_refused(dispute):
    with pytest.raises(RuntimeError, match="transaction"):
        dispute_close(dispute=dispute, to_status=S.SETTLED, actor="x")
    dispute.refresh_from_db()
    assert dispute.status == "initiated"


def test_close_stamps_resolved_at_and_only_closes_open_disputes(dispute):
    with transaction.atomic():
        assert dispute_close(dispute=dispute, to_status=S.SELLER_REFUNDED, actor="b" * 64) is True
    with transaction.atomic():
        assert dispute_close(dispute=dispute, to_status=S.SETTLED, actor="c" * 64) is False
    dispute.refresh_from_db()
    assert (dispute.status, dispute.resolved_at is not None) == ("seller-refunded", True)
    assert _log(dispute) == [("opened", "d" * 64), ("refunded", "b" * 64)]
    assert _event_statuses(dispute) == ["initiated", "seller-refunded"]
