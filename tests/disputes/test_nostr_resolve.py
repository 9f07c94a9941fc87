"""`admin-settle` and `admin-cancel` through the pipeline (docs/PROTOCOL.md §Admin-settle, §Admin-cancel; D07–D12)."""

import uuid

import pytest

from disputes.models import DisputeLog
from lightning.types import InvoiceState
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.enums import Action, MessageType
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import BondResolutionPayload
from nostrbridge.protocol.structs import BondResolution
from orders.models import OrderStatusChange
from tests.disputes.support import READ, admin_client, dispute_statuses, disputed_trade, register, solver_client, take
from tests.orders.services.support import VECTORS, assert_refused, ln_writes, order_events
from tests.orders.trade_states import vector

pytestmark = pytest.mark.django_db


@pytest.fixture
def trade(node, fake_ln):
    return disputed_trade(fake_ln)


@pytest.fixture
def solver(trade):
    client = register(solver_client())
    take(client, trade.dispute)
    client.replies()
    trade.buyer.replies(), trade.seller.replies()
    return client


def _bond(slash_seller=False, slash_buyer=False):
    return BondResolutionPayload(BondResolution(slash_seller=slash_seller, slash_buyer=slash_buyer))


def _refused(client, action, trade, fake_ln, reason, *, index=0, **send):
    assert_refused(
        client,
        action,
        index=index,
        order_id=trade.order.id,
        reason=reason,
        fake_ln=fake_ln,
        orders=[trade.order],
        **send,
    )


def test_requests_parse_from_the_canonical_vectors(trade):
    for name in ("D07_admin_settle_req", "D08_admin_settle_req_legacy", "D11_admin_cancel_req"):
        text = vector(name, trade.order)
        assert Message.from_json(text).to_json() == text
        assert Message.from_json(text).verify()


@pytest.mark.parametrize("payload", [_bond(), None], ids=["D07-no-slash", "D08-legacy-null"])
def test_settle_pays_the_buyer(trade, solver, fake_ln, payload, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        solver_replies = solver.send(
            Action.ADMIN_SETTLE, index=0, order_id=trade.order.id, payload=payload, request_id=42
        )
    buyer_replies, seller_replies = trade.buyer.replies(), trade.seller.replies()

    order, dispute = trade.refresh(), trade.refresh_dispute()
    assert [(r.recipient, r.message.to_json()) for r in solver_replies] == [
        (solver.identity.public_key_hex, vector("D09_admin_settled_to_solver", order))
    ]
    assert [r.message.to_json() for r in seller_replies] == [vector("D10_admin_settled_to_parties", order)]
    assert [r.message.to_json() for r in buyer_replies] == [
        vector("D10_admin_settled_to_parties", order),
        vector("A19_purchase_completed_to_buyer", order),
        vector("A20_rate_to_buyer", order, **{'"request_id":5': '"request_id":42'}),
    ]
    assert (order.status, dispute.status, dispute.resolved_at is not None) == ("success", "settled", True)
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.SETTLED
    assert list(OrderStatusChange.objects.filter(order=order).values_list("from_status", "to_status", "actor"))[
        -2:
    ] == [
        ("dispute", "settled-hold-invoice", solver.identity.public_key_hex),
        ("settled-hold-invoice", "success", "lightning"),
    ]
    assert dispute_statuses(dispute) == ["initiated", "in-progress", "settled"]
    assert order_events(order.id)[-1].tag_value("s") == "success"
    assert DisputeLog.objects.filter(dispute=dispute).last().action == "settled"


def test_cancel_refunds_the_seller(trade, solver, fake_ln):
    solver_replies = solver.send(Action.ADMIN_CANCEL, index=0, order_id=trade.order.id, request_id=43)
    buyer_replies, seller_replies = trade.buyer.replies(), trade.seller.replies()

    order, dispute = trade.refresh(), trade.refresh_dispute()
    expected = vector("D12_admin_canceled_all", order)
    assert [r.message.to_json() for r in solver_replies + seller_replies + buyer_replies] == [expected] * 3
    assert (order.status, dispute.status) == ("canceled-by-admin", "seller-refunded")
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.CANCELED
    last = OrderStatusChange.objects.filter(order=order).last()
    assert (last.from_status, last.to_status, last.actor) == (
        "dispute",
        "canceled-by-admin",
        solver.identity.public_key_hex,
    )
    assert dispute_statuses(dispute) == ["initiated", "in-progress", "seller-refunded"]
    assert order_events(order.id)[-1].tag_value("s") == "canceled"


def test_node_key_settles_a_dispute_it_took(trade, fake_ln, django_capture_on_commit_callbacks):
    admin = admin_client()
    admin.send(Action.ADMIN_TAKE_DISPUTE, index=1, order_id=trade.dispute.id, type=MessageType.DISPUTE)
    with django_capture_on_commit_callbacks(execute=True):
        replies = admin.send(Action.ADMIN_SETTLE, index=1, order_id=trade.order.id, request_id=7)
    assert [r.action for r in replies][-1:] == ["admin-settled"]
    assert trade.refresh().status == "success"


@pytest.mark.parametrize("action", [Action.ADMIN_SETTLE, Action.ADMIN_CANCEL])
def test_slash_request_is_refused_because_no_bond_is_locked(trade, solver, fake_ln, action):
    _refused(solver, action, trade, fake_ln, "invalid_payload", payload=_bond(slash_seller=True))
    _refused(solver, action, trade, fake_ln, "invalid_payload", payload=_bond(slash_buyer=True))
    assert trade.refresh_dispute().status == "in-progress"


@pytest.mark.parametrize("action", [Action.ADMIN_SETTLE, Action.ADMIN_CANCEL])
def test_solver_not_assigned_gets_is_not_your_dispute(trade, solver, fake_ln, action):
    _refused(register(solver_client("other")), action, trade, fake_ln, "is_not_your_dispute")
    _refused(trade.seller, action, trade, fake_ln, "is_not_your_dispute", index=1)


@pytest.mark.parametrize("action", [Action.ADMIN_SETTLE, Action.ADMIN_CANCEL])
def test_unassigned_dispute_refuses_every_key_including_the_node(trade, fake_ln, action):
    _refused(register(solver_client()), action, trade, fake_ln, "is_not_your_dispute")
    _refused(admin_client(), action, trade, fake_ln, "is_not_your_dispute", index=1)


@pytest.mark.parametrize("action", [Action.ADMIN_SETTLE, Action.ADMIN_CANCEL])
def test_dispute_held_by_the_node_gives_dispute_taken_by_admin(trade, fake_ln, action):
    admin_client().send(Action.ADMIN_TAKE_DISPUTE, index=1, order_id=trade.dispute.id, type=MessageType.DISPUTE)
    _refused(register(solver_client()), action, trade, fake_ln, "dispute_taken_by_admin")
    assert trade.refresh_dispute().solver_pubkey == node_pubkey()


@pytest.mark.parametrize("action", [Action.ADMIN_SETTLE, Action.ADMIN_CANCEL])
def test_read_only_solver_gets_not_authorized(trade, fake_ln, action):
    reader = register(solver_client("reader"), READ)
    take(reader, trade.dispute)
    _refused(reader, action, trade, fake_ln, "not_authorized")
    assert trade.refresh_dispute().status == "in-progress"


@pytest.mark.parametrize(("action", "reason"), [(Action.ADMIN_SETTLE, "not_found"), (Action.ADMIN_CANCEL, "not_found")])
def test_unknown_order_gets_not_found(solver, fake_ln, action, reason):
    assert_refused(solver, action, index=0, order_id=uuid.uuid4(), reason=reason, fake_ln=fake_ln)


@pytest.mark.parametrize(
    ("action", "reason"),
    [(Action.ADMIN_SETTLE, "invalid_order_status"), (Action.ADMIN_CANCEL, "not_allowed_by_status")],
)
def test_resolved_order_gets_the_status_reason(trade, solver, fake_ln, action, reason):
    solver.send(Action.ADMIN_CANCEL, index=0, order_id=trade.order.id)
    _refused(solver, action, trade, fake_ln, reason)


@pytest.mark.parametrize("action", [Action.ADMIN_SETTLE, Action.ADMIN_CANCEL])
def test_cooperatively_canceled_order_answers_cooperative_cancel_accepted(trade, solver, fake_ln, action):
    trade.buyer.send(Action.CANCEL, index=1, order_id=trade.order.id)
    trade.seller.send(Action.CANCEL, index=1, order_id=trade.order.id)
    assert (trade.refresh().status, trade.refresh_dispute().status) == (
        "cooperatively-canceled",
        "cooperatively-canceled",
    )
    writes = ln_writes(fake_ln)

    replies = solver.send(action, index=0, order_id=trade.order.id, request_id=52)

    expected = VECTORS["E05_coop_accepted"].replace("c7dba9db-f13f-4c3f-a77f-3b82e43c2b1a", str(trade.order.id))
    assert [(r.recipient, r.message.to_json()) for r in replies] == [(solver.identity.public_key_hex, expected)]
    assert trade.refresh().status == "cooperatively-canceled"
    assert ln_writes(fake_ln) == writes


def test_cancel_after_the_seller_released_is_refused_not_silent(trade, solver, fake_ln):
    order = trade.refresh()
    trade.seller.send(Action.RELEASE, index=1, order_id=order.id, request_id=5)  # the release decided first
    _refused(solver, Action.ADMIN_CANCEL, trade, fake_ln, "not_allowed_by_status")
    assert trade.refresh().status == "settled-hold-invoice"
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.SETTLED
