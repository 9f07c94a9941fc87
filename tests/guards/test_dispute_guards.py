"""Dispute take and resolution guards made to decide
(docs/PROTOCOL.md §Admin-take-dispute, §Admin-settle, §Admin-cancel)."""

import contextlib
import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from disputes.models import Dispute, DisputeLog
from disputes.services import resolve, take
from disputes.services.errors import DisputeConflict, DisputeNotFound
from disputes.services.resolve import dispute_cancel, dispute_settle
from disputes.services.take import dispute_take
from disputes.transitions import dispute_create, transition_dispute
from nostrbridge.models import OutboundMessage
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.nip01 import Event
from nostrbridge.protocol.payloads import BondResolutionPayload
from nostrbridge.protocol.structs import BondResolution
from orders.models import EscrowRefund, OrderStatusChange
from orders.services.cancel import order_cancel
from orders.services.escrow_refund import escrow_refunds_retry
from orders.services.release import order_release
from tests.disputes.support import READ, READ_WRITE, disputed_trade, register, solver_client
from tests.foundation.factories import make_order as factory_order
from tests.guards.support import (
    actions,
    after_first_call,
    audit_trail,
    before_first_call,
    fresh_trade,
    loses_to,
    payout_tasks,
    row_state,
)
from tests.orders.services.support import order_events, snapshot

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
        loses_to(  # the release decides between the settle's read and its decision
            monkeypatch,
            resolve,
            "escrow_ensure_held",
            lambda: order_release(order_id=order_id, sender=seller, request_id=9),
            lambda: dispute_settle(order_id=order_id, actor_pubkey=solver, request_id=10),
            DisputeConflict,
        )

    assert payout_tasks(callbacks) == 1
    assert audit_trail(trade.order)[-1] == ("dispute", "settled-hold-invoice")
    assert row_state(trade.order, "payout_request_id")[0] == 9
    assert actions(trade.buyer) == ["released"]
    assert trade.refresh_dispute().status == "released"
    assert _logs(trade.dispute)[1:] == [("taken", solver), ("released", seller)]  # closed by the release only


def test_admin_cancel_losing_to_a_cooperative_cancel_changes_nothing_more(trade, monkeypatch):
    solver = _solver()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=solver)
    order_id = trade.order.id
    order_cancel(order_id=order_id, sender=trade.buyer_key, request_id=51)
    trade.buyer.replies(), trade.seller.replies()
    before_first_call(  # the parties decide between the cancel's read and its decision
        monkeypatch,
        resolve,
        "_cancel",
        lambda: order_cancel(order_id=order_id, sender=trade.seller_key, request_id=52),
    )

    with pytest.raises(DisputeConflict):
        dispute_cancel(order_id=order_id, actor_pubkey=solver, request_id=11)

    assert audit_trail(trade.order)[-1] == ("dispute", "cooperatively-canceled")
    assert trade.refresh_dispute().status == "cooperatively-canceled"
    assert actions(trade.buyer) == ["cooperative-cancel-accepted"]
    assert _logs(trade.dispute)[1:] == [("taken", solver), ("coop-cancel", trade.seller_key)]  # by the parties only


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


# --- whose dispute, and who hears about it -----------------------------------------------------


@pytest.mark.parametrize("resolve_one", [dispute_settle, dispute_cancel], ids=["settle", "refund"])
def test_solver_of_another_orders_dispute_cannot_resolve_this_one(resolve_one, trade, fake_ln):
    mine, intruder = _solver(), _solver()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=mine)
    other = fresh_trade(fake_ln)
    # The intruder's dispute sorts first by primary key.
    Dispute.objects.create(
        id=uuid.UUID(int=0),
        order=other.order,
        status="in-progress",
        initiator="buyer",
        initiator_pubkey=other.buyer_key,
        order_previous_status="active",
        solver_pubkey=intruder,
    )
    before = snapshot(trade.order)

    with pytest.raises(CantDo) as refused:
        resolve_one(order_id=trade.order.id, actor_pubkey=intruder, request_id=14)

    assert refused.value.reason is CantDoReason.IS_NOT_YOUR_DISPUTE
    assert snapshot(trade.order) == before


def test_settle_keeps_the_request_id_for_the_payout(trade):
    solver = _solver()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=solver)
    dispute_settle(order_id=trade.order.id, actor_pubkey=solver, request_id=15)
    assert row_state(trade.order, "status", "payout_request_id") == ("settled-hold-invoice", 15)


def test_settle_of_an_escrow_already_refunded_at_the_node_is_refused_and_both_told(trade, fake_ln):
    solver = _solver()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=solver)
    fake_ln.cancel_invoice(payment_hash=bytes.fromhex(trade.order.hold_invoice_hash))
    trade.buyer.replies(), trade.seller.replies()
    before = snapshot(trade.order)

    with pytest.raises(CantDo) as refused:
        dispute_settle(order_id=trade.order.id, actor_pubkey=solver, request_id=16)
    assert refused.value.reason == CantDoReason.NOT_ALLOWED_BY_STATUS
    assert (snapshot(trade.order), trade.refresh_dispute().status) == (before, "in-progress")
    assert (actions(trade.buyer), actions(trade.seller)) == (["hold-invoice-payment-canceled"],) * 2
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash).value == "CANCELED"  # never settled


@pytest.mark.parametrize("resolve_one", [dispute_settle, dispute_cancel], ids=["settle", "refund"])
@pytest.mark.parametrize(
    ("slash_seller", "slash_buyer", "refused"), [(True, False, True), (False, True, True), (False, False, False)]
)
def test_only_a_slash_request_is_refused(resolve_one, slash_seller, slash_buyer, refused, trade):
    solver = _solver()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=solver)
    payload = BondResolutionPayload(BondResolution(slash_seller=slash_seller, slash_buyer=slash_buyer))
    if refused:
        with pytest.raises(CantDo) as error:
            resolve_one(order_id=trade.order.id, actor_pubkey=solver, payload=payload)
        assert error.value.reason is CantDoReason.INVALID_PAYLOAD
        assert trade.refresh().status == "dispute"
    else:
        resolve_one(order_id=trade.order.id, actor_pubkey=solver, payload=payload)
        assert trade.refresh().status != "dispute"


def test_console_resolutions_message_only_the_parties(trade, fake_ln):
    """Browser and API solvers act without a Nostr reply key (`reply_to` None)."""
    other = disputed_trade(fake_ln, fresh=True)
    solver = _solver()
    for t in (trade, other):
        dispute_take(dispute_id=t.dispute.id, actor_pubkey=solver)
    outbox = OutboundMessage.objects.filter(kind=14).count()

    dispute_cancel(order_id=trade.order.id, actor_pubkey=solver, request_id=17)
    dispute_settle(order_id=other.order.id, actor_pubkey=solver, request_id=18)

    recipients = list(
        OutboundMessage.objects.filter(kind=14).order_by("pk").values_list("recipient_pubkey", flat=True)[outbox:]
    )
    assert recipients == [trade.seller_key, trade.buyer_key, other.seller_key, other.buyer_key]


def test_console_take_messages_only_the_parties(trade):
    outbox = OutboundMessage.objects.filter(kind=14).count()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=_solver(), reply_to=None)
    recipients = list(
        OutboundMessage.objects.filter(kind=14).order_by("pk").values_list("recipient_pubkey", flat=True)[outbox:]
    )
    assert recipients == [trade.buyer_key, trade.seller_key]


def test_cooperatively_canceled_order_answers_only_a_nostr_solver(trade):
    solver = _solver()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=solver)
    order_cancel(order_id=trade.order.id, sender=trade.buyer_key, request_id=51)
    order_cancel(order_id=trade.order.id, sender=trade.seller_key, request_id=52)
    outbox = OutboundMessage.objects.count()

    assert (
        dispute_settle(order_id=trade.order.id, actor_pubkey=solver)
        == resolve.Resolution.ALREADY_COOPERATIVELY_CANCELED
    )
    assert OutboundMessage.objects.count() == outbox
    assert (
        dispute_cancel(order_id=trade.order.id, actor_pubkey=solver, reply_to=solver, request_id=19)
        == resolve.Resolution.ALREADY_COOPERATIVELY_CANCELED
    )
    assert list(OutboundMessage.objects.values_list("recipient_pubkey", flat=True)[outbox:]) == [solver]


def test_resolution_replies_carry_the_solvers_trade_index(trade, fake_ln):
    other = disputed_trade(fake_ln, fresh=True)
    solver = register(solver_client())
    for t in (trade, other):
        dispute_take(dispute_id=t.dispute.id, actor_pubkey=solver.identity.public_key_hex)
    trade.seller.replies(), trade.buyer.replies(), other.seller.replies(), other.buyer.replies(), solver.replies()
    key = solver.identity.public_key_hex

    dispute_settle(order_id=trade.order.id, actor_pubkey=key, request_id=20, trade_index=7, reply_to=key)
    dispute_cancel(order_id=other.order.id, actor_pubkey=key, request_id=21, trade_index=8, reply_to=key)

    settled = trade.seller.replies() + trade.buyer.replies()
    assert [(r.action, r.message.trade_index) for r in settled] == [("admin-settled", 7), ("admin-settled", 7)]
    refunded = other.seller.replies() + other.buyer.replies()
    assert [(r.action, r.message.trade_index) for r in refunded] == [("admin-canceled", 8), ("admin-canceled", 8)]
    assert [(r.action, r.message.trade_index) for r in solver.replies()] == [
        ("admin-settled", 7),
        ("admin-canceled", 8),
    ]


def test_cooperatively_canceled_answer_carries_the_trade_index(trade):
    solver = register(solver_client())
    key = solver.identity.public_key_hex
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=key)
    order_cancel(order_id=trade.order.id, sender=trade.buyer_key, request_id=51)
    order_cancel(order_id=trade.order.id, sender=trade.seller_key, request_id=52)
    solver.replies()

    dispute_settle(order_id=trade.order.id, actor_pubkey=key, request_id=22, trade_index=9, reply_to=key)
    assert [(r.action, r.message.trade_index) for r in solver.replies()] == [("cooperative-cancel-accepted", 9)]


def test_admin_cancel_after_a_release_decided_is_refused_and_never_reaches_the_node(trade, fake_ln):
    solver = _solver()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=solver)
    order_release(order_id=trade.order.id, sender=trade.seller_key, request_id=8)
    before = snapshot(trade.order)
    fake_ln.calls.clear()

    with pytest.raises(CantDo) as refused:
        dispute_cancel(order_id=trade.order.id, actor_pubkey=solver, request_id=23)
    assert refused.value.reason == CantDoReason.NOT_ALLOWED_BY_STATUS
    assert snapshot(trade.order) == before
    assert [name for name, _ in fake_ln.calls if name == "cancel_invoice"] == []
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash).value == "SETTLED"


@pytest.mark.parametrize(
    ("resolve_one", "to_status"), [(dispute_settle, "settled-hold-invoice"), (dispute_cancel, "canceled-by-admin")]
)
def test_console_actor_label_is_the_audited_actor(resolve_one, to_status, trade):
    solver = _solver()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=solver)
    resolve_one(order_id=trade.order.id, actor_pubkey=solver, actor_label="admin:alice", request_id=24)
    assert audit_trail(trade.order)[-1] == ("dispute", to_status)
    assert OrderStatusChange.objects.filter(order=trade.order).last().actor == "admin:alice"
    assert _logs(trade.dispute)[-1][1] == "admin:alice"


def test_admin_cancel_publishes_with_the_network_and_files_its_messages_under_the_order(trade):
    solver = _solver()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=solver)
    last = OutboundMessage.objects.order_by("-pk").values_list("pk", flat=True).first()

    dispute_cancel(order_id=trade.order.id, actor_pubkey=solver, request_id=25)

    assert order_events(trade.order.id)[-1].tag_value("network") == "regtest"
    new_messages = OutboundMessage.objects.filter(kind=14, pk__gt=last)
    assert [row.order_id for row in new_messages] == [trade.order.id, trade.order.id]  # seller and buyer


def test_node_down_during_admin_cancel_keeps_the_decision_and_the_sweep_refunds(trade, fake_ln):
    solver = _solver()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=solver)
    fake_ln.set_unavailable(True)
    try:
        assert dispute_cancel(order_id=trade.order.id, actor_pubkey=solver, request_id=26).value == "seller-refunded"
    finally:
        fake_ln.set_unavailable(False)
    refund = EscrowRefund.objects.get(order=trade.order)
    assert (row_state(trade.order, "status")[0], refund.confirmed_at, refund.attempts) == ("canceled-by-admin", None, 1)
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash).value == "ACCEPTED"

    assert escrow_refunds_retry() == 1
    refund.refresh_from_db()
    assert (refund.attempts, refund.confirmed_at is not None) == (2, True)
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash).value == "CANCELED"
    assert escrow_refunds_retry() == 0


def test_take_notifies_its_own_orders_parties_and_audits_the_label(trade):
    factory_order(id=uuid.UUID(int=0), status="dispute", buyer_pubkey="c" * 64, seller_pubkey="d" * 64)
    last = OutboundMessage.objects.order_by("-pk").values_list("pk", flat=True).first()

    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=_solver(), actor_label="admin:bob")

    recipients = list(OutboundMessage.objects.filter(kind=14, pk__gt=last).values_list("recipient_pubkey", flat=True))
    assert recipients == [trade.buyer_key, trade.seller_key]
    assert _logs(trade.dispute)[-1] == ("taken", "admin:bob")


def test_dispute_info_for_a_full_privacy_party_and_missing_times():
    order = factory_order(
        status="dispute",
        buyer_pubkey="c" * 64,
        master_buyer_pubkey="c" * 64,  # full privacy: the identity is the trade key
        seller_pubkey="d" * 64,
        master_seller_pubkey="e" * 64,
        taken_at=None,
        invoice_held_at=None,
    )
    dispute = Dispute(order=order, initiator="buyer", initiator_pubkey="c" * 64, order_previous_status="active")

    info = take.solver_dispute_info(order, dispute)

    assert (info.initiator_full_privacy, info.initiator_info) == (True, None)
    assert (info.counterpart_full_privacy, info.counterpart_info is not None) == (False, True)
    assert (info.invoice_held_at, info.taken_at) == (0, 0)


# --- the dispute writer (disputes/transitions.py) -----------------------------------------------


def test_dispute_writes_stamp_the_given_time_and_a_bounded_actor(trade):
    later = timezone.now() + timedelta(days=2)
    with transaction.atomic():
        assert transition_dispute(
            dispute=trade.dispute,
            from_statuses=["initiated"],
            to_status="in-progress",
            actor="admin:" + "z" * 90,
            set_fields={"solver_pubkey": "ab" * 32},
            now=later,
        )
    dispute = trade.refresh_dispute()
    assert (dispute.status, dispute.updated_at) == ("in-progress", later)
    assert _logs(dispute)[-1] == ("taken", ("admin:" + "z" * 90)[:80])
    event = Event.from_json(OutboundMessage.objects.filter(kind=38386).order_by("-pk").first().event_json)
    assert event.tag_value("expiration") == str(int(later.timestamp()) + 90 * 86_400)


@pytest.mark.django_db(transaction=True)
def test_dispute_create_refuses_to_run_outside_a_transaction():
    order = factory_order(status="dispute", buyer_pubkey="c" * 64)
    with pytest.raises(RuntimeError):
        dispute_create(
            order_id=order.id, initiator="buyer", initiator_pubkey="c" * 64, order_previous_status="active", actor="x"
        )
    assert Dispute.objects.count() == 0


def test_take_of_an_unknown_dispute_is_not_found(node):
    with pytest.raises(DisputeNotFound):
        dispute_take(dispute_id=uuid.uuid4(), actor_pubkey=_solver())


def test_solver_copy_of_a_take_is_filed_under_the_order(trade):
    solver = _solver()
    last = OutboundMessage.objects.order_by("-pk").values_list("pk", flat=True).first()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=solver, reply_to=solver)
    rows = OutboundMessage.objects.filter(kind=14, pk__gt=last)
    assert [(row.recipient_pubkey, row.order_id) for row in rows] == [
        (solver, trade.order.id),
        (trade.buyer_key, trade.order.id),
        (trade.seller_key, trade.order.id),
    ]


def test_dispute_info_for_a_party_without_an_identity_is_private():
    order = factory_order(status="dispute", buyer_pubkey="c" * 64, master_buyer_pubkey=None, seller_pubkey="d" * 64)
    dispute = Dispute(order=order, initiator="buyer", initiator_pubkey="c" * 64, order_previous_status="active")
    info = take.solver_dispute_info(order, dispute)
    assert (info.initiator_full_privacy, info.initiator_info) == (True, None)


# --- what a resolution is asked to do, and the pre-trade cancel it may become ------------------


@pytest.mark.parametrize(
    "outcome", [resolve.Resolution.ALREADY_COOPERATIVELY_CANCELED, resolve.Resolution.PRETRADE_CANCELED]
)
def test_an_outcome_other_than_settle_or_refund_is_a_programming_error(outcome, trade, fake_ln):
    solver = _solver()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=solver)
    before = (
        snapshot(trade.order),
        trade.refresh_dispute().status,
        OutboundMessage.objects.count(),
        len(fake_ln.calls),
    )

    with pytest.raises(ValueError, match="settled or refunded"):
        resolve.dispute_resolve(outcome=outcome, order_id=trade.order.id, actor_pubkey=solver, request_id=20)

    after = (snapshot(trade.order), trade.refresh_dispute().status, OutboundMessage.objects.count(), len(fake_ln.calls))
    assert after == before
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash).value == "ACCEPTED"


def test_node_refund_of_a_dispute_leaves_a_pending_order_with_a_lower_id_alone(trade, fake_ln):
    # The lowest id: a pre-trade lookup that forgot the order would find this one.
    pending = factory_order(id=uuid.UUID(int=1), status="pending")
    before = snapshot(pending)
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=node_pubkey())

    assert dispute_cancel(order_id=trade.order.id, actor_pubkey=node_pubkey()) is resolve.Resolution.REFUNDED

    assert (trade.refresh().status, trade.refresh_dispute().status) == ("canceled-by-admin", "seller-refunded")
    assert snapshot(pending) == before


def _handler_atomic(order, seen: list):
    """A handler's transaction (as `InboundContext.atomic`): records what is decided inside it."""

    @contextlib.contextmanager
    def atomic():
        with transaction.atomic():
            yield
            order.refresh_from_db()
            seen.append((order.status, OutboundMessage.objects.filter(order_id=order.id).count()))

    return atomic


def test_node_pretrade_cancel_decides_inside_the_handlers_transaction(node):
    pending = factory_order(status="pending")
    seen: list = []

    outcome = dispute_cancel(
        order_id=pending.id, actor_pubkey=node_pubkey(), request_id=21, atomic=_handler_atomic(pending, seen)
    )

    assert outcome is resolve.Resolution.PRETRADE_CANCELED
    assert seen == [("canceled-by-admin", 2)]  # the 38383 `canceled` and the maker's `admin-canceled`


def test_solver_refund_decides_inside_the_handlers_transaction(trade):
    solver = _solver()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=solver)
    outbox = OutboundMessage.objects.filter(order_id=trade.order.id).count()
    seen: list = []

    dispute_cancel(order_id=trade.order.id, actor_pubkey=solver, atomic=_handler_atomic(trade.order, seen))

    # The 38383, the 38386 and `admin-canceled` to the seller and the buyer.
    assert seen == [("canceled-by-admin", outbox + 4)]
