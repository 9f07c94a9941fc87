"""`admin-take-dispute` through the pipeline (docs/PROTOCOL.md §Admin-take-dispute; vectors D04–D06)."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from disputes.models import DisputeLog
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.enums import Action, MessageType
from nostrbridge.protocol.messages import Message
from orders.models import Trader
from tests.disputes.support import (
    READ,
    READ_WRITE,
    VECTOR_DISPUTE_ID,
    admin_client,
    dispute_statuses,
    disputed_trade,
    register,
    solver_client,
    take,
)
from tests.orders.services.support import VECTORS, assert_refused, assert_silent
from tests.orders.trade_states import unix, vector

pytestmark = pytest.mark.django_db


@pytest.fixture
def trade(node, fake_ln):
    return disputed_trade(fake_ln)


def _refused_take(client, trade, fake_ln, *, index=0):
    assert_refused(
        client,
        Action.ADMIN_TAKE_DISPUTE,
        index=index,
        order_id=trade.dispute.id,
        reason="invalid_pubkey",
        fake_ln=fake_ln,
        orders=[trade.order],
        type=MessageType.DISPUTE,
    )


def day(moment) -> int:
    seconds = int(moment.timestamp())
    return seconds - seconds % 86_400


def test_solver_takes_and_gets_the_full_dispute_info(trade, fake_ln):
    solver = register(solver_client())
    alice = Trader.objects.get(pk=trade.order.master_seller_pubkey)
    Trader.objects.filter(pk=alice.pk).update(
        total_rating=4.5, total_reviews=7, created_at=timezone.now() - timedelta(days=120, minutes=1)
    )

    solver_replies = take(solver, trade.dispute, request_id=41)
    buyer_replies, seller_replies = trade.buyer.replies(), trade.seller.replies()

    order, dispute = trade.refresh(), trade.refresh_dispute()
    # Both parties have records, so their UserInfo carries its UTC day (docs/PROTOCOL.md §User-info).
    buyer_since, seller_since = (
        day(Trader.objects.get(pk=pubkey).created_at) for pubkey in (order.master_buyer_pubkey, alice.pk)
    )
    assert Message.from_json(VECTORS["D04_admin_take_dispute_req"]).to_json() == VECTORS["D04_admin_take_dispute_req"]
    assert [(r.recipient, r.message.to_json()) for r in solver_replies] == [
        (
            solver.identity.public_key_hex,
            vector(
                "D05_admin_took_dispute_to_solver",
                order,
                **{
                    VECTOR_DISPUTE_ID: str(dispute.id),
                    "8a3c...": order.hold_invoice_hash,
                    "5f1e...": order.hold_invoice_preimage,
                    "lnbcrt78270n1pBUYERPAYOUTINVOICE": order.buyer_invoice,
                    "1700000300": unix(order.invoice_held_at),
                    "1700000200": unix(order.taken_at),
                    "1700000000": unix(order.created_at),
                    '"operating_days":0}': f'"operating_days":0,"since":{buyer_since}}}',
                    '"operating_days":120}': f'"operating_days":120,"since":{seller_since}}}',
                },
            ),
        )
    ]
    expected_parties = vector("D06_admin_took_dispute_to_parties", order)
    assert [r.message.to_json() for r in buyer_replies] == [expected_parties]
    assert [r.message.to_json() for r in seller_replies] == [expected_parties]
    assert (dispute.status, dispute.solver_pubkey, dispute.taken_at is not None) == (
        "in-progress",
        solver.identity.public_key_hex,
        True,
    )
    assert order.status == "dispute"
    assert dispute_statuses(dispute) == ["initiated", "in-progress"]
    assert DisputeLog.objects.filter(dispute=dispute).last().actor == solver.identity.public_key_hex


def test_node_key_takes_initiated_and_in_progress_disputes(trade, fake_ln):
    solver = register(solver_client())
    take(solver, trade.dispute)
    admin = admin_client()

    replies = admin.send(
        Action.ADMIN_TAKE_DISPUTE, index=1, order_id=trade.dispute.id, type=MessageType.DISPUTE, request_id=9
    )

    assert [(r.recipient, r.action) for r in replies] == [(node_pubkey(), "admin-took-dispute")]
    assert trade.refresh_dispute().solver_pubkey == node_pubkey()
    [peer] = [r.payload.peer.pubkey for r in trade.buyer.replies() if r.action == "admin-took-dispute"][-1:]
    assert peer == node_pubkey()


def test_current_solver_may_take_again(trade, fake_ln):
    solver = register(solver_client())
    take(solver, trade.dispute)
    assert [r.action for r in take(solver, trade.dispute, request_id=42)] == ["admin-took-dispute"]
    assert dispute_statuses(trade.dispute) == ["initiated", "in-progress", "in-progress"]


def test_read_write_solver_takes_over_from_a_read_only_one(trade, fake_ln):
    reader = register(solver_client("reader"), READ)
    writer = register(solver_client("writer"), READ_WRITE)
    take(reader, trade.dispute)
    assert [r.action for r in take(writer, trade.dispute)] == ["admin-took-dispute"]
    assert trade.refresh_dispute().solver_pubkey == writer.identity.public_key_hex


@pytest.mark.parametrize(("holder", "taker"), [(READ_WRITE, READ_WRITE), (READ_WRITE, READ), (READ, READ)])
def test_solver_cannot_take_another_solvers_dispute(trade, fake_ln, holder, taker):
    first = register(solver_client("first"), holder)
    take(first, trade.dispute)
    _refused_take(register(solver_client("second"), taker), trade, fake_ln)
    assert trade.refresh_dispute().solver_pubkey == first.identity.public_key_hex


def test_unregistered_key_and_trade_party_get_invalid_pubkey(trade, fake_ln):
    _refused_take(solver_client("stranger"), trade, fake_ln)
    _refused_take(trade.buyer, trade, fake_ln, index=1)
    assert trade.refresh_dispute().status == "initiated"


def test_removed_solver_cannot_take(trade, fake_ln):
    solver = register(solver_client())
    Trader.objects.filter(pk=solver.identity.public_key_hex).update(is_solver=False)
    _refused_take(solver, trade, fake_ln)


def test_resolved_dispute_cannot_be_taken_even_by_the_node(trade, fake_ln, django_capture_on_commit_callbacks):
    admin = admin_client()
    admin.send(Action.ADMIN_TAKE_DISPUTE, index=1, order_id=trade.dispute.id, type=MessageType.DISPUTE)
    admin.send(Action.ADMIN_CANCEL, index=1, order_id=trade.order.id)
    assert trade.refresh_dispute().status == "seller-refunded"
    _refused_take(admin, trade, fake_ln, index=1)
    _refused_take(register(solver_client()), trade, fake_ln)


def test_unknown_dispute_is_silent(trade, fake_ln):
    solver = register(solver_client())
    assert_silent(
        solver,
        Action.ADMIN_TAKE_DISPUTE,
        index=0,
        order_id=uuid.uuid4(),
        fake_ln=fake_ln,
        orders=[trade.order],
        type=MessageType.DISPUTE,
    )
