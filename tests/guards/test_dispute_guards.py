"""Dispute take and resolution guards made to decide (03-actions.md §8.2–§8.4)."""

import pytest

from disputes.models import DisputeLog
from disputes.services import resolve, take
from disputes.services.errors import DisputeConflict
from disputes.services.resolve import dispute_cancel, dispute_settle
from disputes.services.take import dispute_take
from nostrbridge.keys import node_pubkey
from nostrbridge.protocol.keys import Keys
from orders.services.cancel import order_cancel
from orders.services.release import order_release
from tests.disputes.support import READ, READ_WRITE, disputed_trade
from tests.guards.support import actions, after_first_call, audit_trail, loses_to, payout_tasks, row_state
from tests.orders.services.support import snapshot

pytestmark = pytest.mark.django_db


def _solver(category: int = READ_WRITE) -> str:
    from disputes.services import solver_grant

    key = Keys.generate().public_key_hex
    solver_grant(actor_pubkey=node_pubkey(), pubkey=key, category=category)
    return key


def _logs(dispute) -> list[tuple[str, str]]:
    return list(DisputeLog.objects.filter(dispute=dispute).order_by("pk").values_list("action", "actor"))


@pytest.fixture
def trade(node, fake_ln):
    return disputed_trade(fake_ln, fresh=True)


# --- take ------------------------------------------------------------------------------------------


def test_two_solvers_taking_at_once_one_wins(trade, monkeypatch):
    first, second = _solver(), _solver()
    dispute_id = trade.dispute.id
    after_first_call(monkeypatch, take, "may_take", lambda: dispute_take(dispute_id=dispute_id, actor_pubkey=second))

    with pytest.raises(DisputeConflict):
        dispute_take(dispute_id=dispute_id, actor_pubkey=first)

    dispute = trade.refresh_dispute()
    assert (dispute.status, dispute.solver_pubkey) == ("in-progress", second)
    assert [a for a in _logs(dispute) if a[0] == "taken"] == [("taken", second)]
    assert actions(trade.buyer) == ["admin-took-dispute"]


def test_two_takeovers_from_a_read_only_solver_one_wins(trade, monkeypatch):
    reader, first, second = _solver(READ), _solver(), _solver()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=reader)
    dispute_id = trade.dispute.id
    after_first_call(monkeypatch, take, "may_take", lambda: dispute_take(dispute_id=dispute_id, actor_pubkey=second))

    with pytest.raises(DisputeConflict):
        dispute_take(dispute_id=dispute_id, actor_pubkey=first)

    assert trade.refresh_dispute().solver_pubkey == second


def test_taking_one_dispute_leaves_another_initiated_dispute_alone(trade, fake_ln):
    other = disputed_trade(fake_ln, fresh=True)
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=_solver())
    assert (other.refresh_dispute().status, other.dispute.solver_pubkey) == ("initiated", None)


# --- settle and cancel -------------------------------------------------------------------------


def test_admin_settle_losing_to_the_sellers_release_pays_once(trade, monkeypatch, django_capture_on_commit_callbacks):
    solver = _solver()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=solver)
    trade.buyer.replies(), trade.seller.replies()
    order_id, seller = trade.order.id, trade.seller_key
    with django_capture_on_commit_callbacks() as callbacks:
        loses_to(
            monkeypatch,
            resolve,
            "escrow_settle",
            lambda: order_release(order_id=order_id, sender=seller, request_id=9),
            lambda: dispute_settle(order_id=order_id, actor_pubkey=solver, request_id=10),
            DisputeConflict,
        )

    assert payout_tasks(callbacks) == 1
    assert audit_trail(trade.order)[-1] == ("dispute", "settled-hold-invoice")
    assert row_state(trade.order, "payout_request_id")[0] == 9
    assert actions(trade.buyer) == ["released"]
    assert trade.refresh_dispute().status == "settled"
    assert [a for a, _ in _logs(trade.dispute)] == ["opened", "taken"]


def test_admin_cancel_losing_to_a_cooperative_cancel_changes_nothing_more(trade, monkeypatch):
    solver = _solver()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=solver)
    order_id = trade.order.id
    order_cancel(order_id=order_id, sender=trade.buyer_key, request_id=51)
    trade.buyer.replies(), trade.seller.replies()
    after_first_call(
        monkeypatch,
        resolve,
        "escrow_cancel",
        lambda: order_cancel(order_id=order_id, sender=trade.seller_key, request_id=52),
    )

    with pytest.raises(DisputeConflict):
        dispute_cancel(order_id=order_id, actor_pubkey=solver, request_id=11)

    assert audit_trail(trade.order)[-1] == ("dispute", "cooperatively-canceled")
    assert trade.refresh_dispute().status == "seller-refunded"
    assert actions(trade.buyer) == ["cooperative-cancel-accepted"]
    assert [a for a, _ in _logs(trade.dispute)] == ["opened", "taken"]


@pytest.mark.parametrize(
    ("resolve_one", "order_status", "dispute_status"),
    [(dispute_settle, "settled-hold-invoice", "settled"), (dispute_cancel, "canceled-by-admin", "seller-refunded")],
    ids=["settle", "refund"],
)
def test_resolving_one_dispute_leaves_another_open_dispute_alone(
    resolve_one, order_status, dispute_status, trade, fake_ln
):
    other = disputed_trade(fake_ln, fresh=True)
    solver = _solver()
    for t in (trade, other):
        dispute_take(dispute_id=t.dispute.id, actor_pubkey=solver)
    before = snapshot(other.order)

    resolve_one(order_id=trade.order.id, actor_pubkey=solver, request_id=12)

    assert (trade.refresh().status, trade.refresh_dispute().status) == (order_status, dispute_status)
    assert (snapshot(other.order), other.refresh_dispute().status) == (before, "in-progress")
