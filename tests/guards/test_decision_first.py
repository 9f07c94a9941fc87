"""The decision is recorded before the Lightning call that makes it irreversible
(docs/SECURITY.md §Money invariants, docs/PROTOCOL.md §Escrow).

Each pair of competitors is interleaved both ways, deterministically, in one thread: the
second actor is slipped in either between the first one's read and its guarded decision
(`after_first_call` on the step just before the transaction), or between its committed decision
and its LND call (`before_first_call` on the LND step). Nothing is left to timing, so the same
tests decide the same way on SQLite and PostgreSQL (DATABASE_URL=$TEST_POSTGRES_URL).
"""

from datetime import timedelta

import pytest

from disputes.services import resolve
from disputes.services.errors import DisputeConflict
from disputes.services.resolve import Resolution, dispute_cancel, dispute_settle
from disputes.services.take import dispute_take
from lightning.types import InvoiceState
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.models import EscrowRefund, Order
from orders.services import cancel as cancel_service
from orders.services import escrow_reconcile, timeouts
from orders.services.cancel import order_cancel
from orders.services.escrow import escrow_on_accepted
from orders.services.release import order_release
from orders.services.timeouts import order_timeout
from tests.disputes.support import READ_WRITE, disputed_trade
from tests.guards.support import actions, after_first_call, audit_trail, before_first_call, payout_tasks, row_state
from tests.orders.services.support import make_order, mint_invoice, set_price
from tests.orders.trade_states import Trade, taken_sell_trade
from tests.trade.harness import TradeClient, reset_seen

pytestmark = pytest.mark.django_db

WINDOW = timedelta(seconds=901)  # past MOSTRO_EXPIRATION_SECONDS (900)


def _state(fake_ln, order: Order) -> InvoiceState:
    return fake_ln.invoice_state(order.hold_invoice_hash)


def _seen(replies) -> list[tuple[str, object]]:
    # A cant-do is wrapped as {"cant-do": …}, the rest as {"order": …}: take the one inner message.
    return [(r.action, next(iter(r.json.values()))["payload"]) for r in replies]


def _statuses_reached(order: Order) -> set[str]:
    return {to for _, to in audit_trail(order)}


def _buy_trade_with_escrow(fake_ln) -> Trade:
    """A buy order taken by a seller who paid: `waiting-buyer-invoice`, escrow ACCEPTED; the
    buyer (maker) owes the payout invoice, so a timeout cancels the trade and refunds."""
    buyer, seller = TradeClient("buyer"), TradeClient("seller")
    set_price()
    order = make_order(buyer, index=1, kind="buy")
    seller.send(Action.TAKE_BUY, index=1, order_id=order.id, request_id=3)
    order.refresh_from_db()
    fake_ln.mark_accepted(order.hold_invoice_hash)
    assert escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash) is True
    order.refresh_from_db()
    assert order.status == "waiting-buyer-invoice"
    reset_seen(seller, buyer)
    return Trade(order, seller, buyer, 1, 1, "")


def _add_invoice(trade: Trade) -> list:
    payload = PaymentRequestPayload(None, mint_invoice(amount_sats=0), None)
    return trade.buyer.send(Action.ADD_INVOICE, index=1, order_id=trade.order.id, payload=payload, request_id=13)


def _htlc_arrives(fake_ln, order: Order) -> None:
    fake_ln.mark_accepted(order.hold_invoice_hash)
    escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash)  # the invoice watcher's report


def _solver() -> str:
    from disputes.services import solver_grant

    key = Keys.generate().public_key_hex
    solver_grant(actor_pubkey=node_pubkey(), pubkey=key, category=READ_WRITE)
    return key


def _taken_dispute(fake_ln):
    trade = disputed_trade(fake_ln, fresh=True)
    solver = _solver()
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=solver)
    reset_seen(trade.seller, trade.buyer)
    return trade, solver


# --- timeout vs add-invoice ------------------------------------------------------------------------


def test_add_invoice_before_the_timeout_decides_wins_and_the_escrow_stays(node, fake_ln, monkeypatch):
    trade = _buy_trade_with_escrow(fake_ln)
    before_first_call(monkeypatch, timeouts, "taker_is_at_fault", lambda: _add_invoice(trade))

    assert order_timeout(order_id=trade.order.id, now=trade.order.taken_at + WINDOW) == timeouts.SKIPPED

    assert row_state(trade.order, "status")[0] == "active"
    assert _state(fake_ln, trade.order) is InvoiceState.ACCEPTED
    assert EscrowRefund.objects.filter(order=trade.order).count() == 0


def test_add_invoice_after_the_timeout_decided_is_refused_and_never_activates(node, fake_ln, monkeypatch):
    trade = _buy_trade_with_escrow(fake_ln)
    buyer_saw = before_first_call(monkeypatch, timeouts, "escrow_refund_execute", lambda: _add_invoice(trade))

    assert order_timeout(order_id=trade.order.id, now=trade.order.taken_at + WINDOW) == timeouts.MAKER_CANCELED

    assert row_state(trade.order, "status")[0] == "canceled"
    assert "active" not in _statuses_reached(trade.order)
    assert _state(fake_ln, trade.order) is InvoiceState.CANCELED
    assert _seen(buyer_saw[0]) == [("canceled", None), ("cant-do", {"cant_do": "not_allowed_by_status"})]


# --- timeout vs HTLC accepted ------------------------------------------------------------------------


def test_htlc_before_the_timeout_decides_wins_and_the_escrow_stays(node, fake_ln, monkeypatch):
    trade = taken_sell_trade(fake_ln, with_invoice=True)  # waiting-payment: the seller (maker) owes it
    before_first_call(monkeypatch, timeouts, "taker_is_at_fault", lambda: _htlc_arrives(fake_ln, trade.order))

    assert order_timeout(order_id=trade.order.id, now=trade.order.taken_at + WINDOW) == timeouts.SKIPPED

    assert row_state(trade.order, "status")[0] == "active"
    assert _state(fake_ln, trade.order) is InvoiceState.ACCEPTED


def test_htlc_after_the_timeout_decided_is_refunded_and_never_activates(node, fake_ln, monkeypatch):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    trade.seller.replies(), trade.buyer.replies()
    before_first_call(monkeypatch, timeouts, "escrow_refund_execute", lambda: _htlc_arrives(fake_ln, trade.order))

    assert order_timeout(order_id=trade.order.id, now=trade.order.taken_at + WINDOW) == timeouts.MAKER_CANCELED

    order = trade.refresh()
    assert (order.status, order.invoice_held_at) == ("canceled", None)
    assert _state(fake_ln, order) is InvoiceState.CANCELED
    assert (actions(trade.seller), actions(trade.buyer)) == (["canceled"], ["canceled"])


# --- cancel vs HTLC accepted -------------------------------------------------------------------------


def test_htlc_before_the_makers_cancel_decides_makes_the_cancel_refused(node, fake_ln, monkeypatch):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    before_first_call(monkeypatch, cancel_service, "_maker_cancel", lambda: _htlc_arrives(fake_ln, trade.order))

    with pytest.raises(CantDo) as refused:
        order_cancel(order_id=trade.order.id, sender=trade.seller_key, request_id=60)

    assert refused.value.reason is CantDoReason.NOT_ALLOWED_BY_STATUS
    assert row_state(trade.order, "status")[0] == "active"
    assert _state(fake_ln, trade.order) is InvoiceState.ACCEPTED


def test_htlc_after_the_makers_cancel_decided_is_refunded(node, fake_ln, monkeypatch):
    trade = taken_sell_trade(fake_ln, with_invoice=True)
    before_first_call(monkeypatch, cancel_service, "escrow_refund_execute", lambda: _htlc_arrives(fake_ln, trade.order))

    order_cancel(order_id=trade.order.id, sender=trade.seller_key, request_id=60)

    order = trade.refresh()
    assert (order.status, order.invoice_held_at) == ("canceled", None)
    assert "active" not in _statuses_reached(order)
    assert _state(fake_ln, order) is InvoiceState.CANCELED


# --- release vs timeout ------------------------------------------------------------------------------


def test_after_a_timeout_decided_fiat_sent_and_release_get_cant_do_not_silence(node, fake_ln, monkeypatch):
    # The finding: a timeout refunded the escrow, an add-invoice made the order active, the
    # buyer paid fiat and the release was dropped in silence. Now every later step is refused.
    trade = _buy_trade_with_escrow(fake_ln)
    before_first_call(monkeypatch, timeouts, "escrow_refund_execute", lambda: _add_invoice(trade))
    assert order_timeout(order_id=trade.order.id, now=trade.order.taken_at + WINDOW) == timeouts.MAKER_CANCELED
    trade.buyer.replies(), trade.seller.replies()

    fiat_sent = trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    release = trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)

    assert _seen(fiat_sent) == [("cant-do", {"cant_do": "invalid_order_status"})]
    assert _seen(release) == [("cant-do", {"cant_do": "not_allowed_by_status"})]
    assert row_state(trade.order, "status")[0] == "canceled"
    assert _state(fake_ln, trade.order) is InvoiceState.CANCELED


def test_release_of_an_escrow_lnd_refunded_is_cant_do_and_both_are_told(node, fake_ln):
    trade = disputed_trade(fake_ln, fresh=True)
    order = Order.objects.get(pk=trade.order.id)
    assert order.status == "dispute"
    fake_ln.cancel_invoice(payment_hash=bytes.fromhex(order.hold_invoice_hash))  # LND refunded on its own

    release = trade.seller.send(Action.RELEASE, index=1, order_id=order.id, request_id=5)

    assert _seen(release) == [
        ("hold-invoice-payment-canceled", None),
        ("cant-do", {"cant_do": "not_allowed_by_status"}),
    ]
    assert row_state(order, "status")[0] == "dispute"
    assert _state(fake_ln, order) is InvoiceState.CANCELED


def test_timeout_job_after_a_release_decided_leaves_the_settle_alone(node, fake_ln, monkeypatch):
    trade, _ = _taken_dispute(fake_ln)
    order_release(order_id=trade.order.id, sender=trade.seller_key, request_id=5)
    far = trade.refresh().updated_at + timedelta(days=3)

    assert order_timeout(order_id=trade.order.id, now=far) == timeouts.SKIPPED
    assert _state(fake_ln, trade.order) is InvoiceState.SETTLED
    assert EscrowRefund.objects.filter(order=trade.order).count() == 0


# --- admin-cancel vs release -----------------------------------------------------------------------


def test_release_before_admin_cancel_decides_wins(node, fake_ln, monkeypatch, django_capture_on_commit_callbacks):
    trade, solver = _taken_dispute(fake_ln)
    order_id, seller = trade.order.id, trade.seller_key
    before_first_call(
        monkeypatch,
        resolve,
        "_cancel",
        lambda: order_release(order_id=order_id, sender=seller, request_id=9),
    )
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(DisputeConflict):
        dispute_cancel(order_id=order_id, actor_pubkey=solver, request_id=11)

    assert row_state(trade.order, "status")[0] == "settled-hold-invoice"
    assert _state(fake_ln, trade.order) is InvoiceState.SETTLED
    assert EscrowRefund.objects.filter(order=trade.order).count() == 0
    assert payout_tasks(callbacks) == 1


def test_release_after_admin_cancel_decided_is_cant_do_and_the_seller_is_refunded(
    node, fake_ln, monkeypatch, django_capture_on_commit_callbacks
):
    trade, solver = _taken_dispute(fake_ln)
    order_id = trade.order.id
    seller_saw = before_first_call(
        monkeypatch,
        resolve,
        "escrow_refund_execute",
        lambda: trade.seller.send(Action.RELEASE, index=1, order_id=order_id, request_id=9),
    )
    with django_capture_on_commit_callbacks() as callbacks:
        assert dispute_cancel(order_id=order_id, actor_pubkey=solver, request_id=11) is Resolution.REFUNDED

    assert row_state(trade.order, "status")[0] == "canceled-by-admin"
    assert "settled-hold-invoice" not in _statuses_reached(trade.order)
    assert _state(fake_ln, trade.order) is InvoiceState.CANCELED
    assert payout_tasks(callbacks) == 0
    assert _seen(seller_saw[0]) == [
        ("admin-canceled", None),
        ("cant-do", {"cant_do": "not_allowed_by_status"}),
    ]


# --- admin-settle vs cooperative cancel ----------------------------------------------------------


def _cooperative_cancel_asked(trade) -> None:
    order_cancel(order_id=trade.order.id, sender=trade.buyer_key, request_id=51)
    reset_seen(trade.seller, trade.buyer)


def test_cooperative_cancel_before_admin_settle_decides_wins(node, fake_ln, monkeypatch):
    trade, solver = _taken_dispute(fake_ln)
    _cooperative_cancel_asked(trade)
    order_id, seller = trade.order.id, trade.seller_key
    after_first_call(
        monkeypatch,
        resolve,
        "escrow_ensure_held",
        lambda: order_cancel(order_id=order_id, sender=seller, request_id=52),
    )
    with pytest.raises(DisputeConflict):
        dispute_settle(order_id=order_id, actor_pubkey=solver, request_id=10)

    assert row_state(trade.order, "status")[0] == "cooperatively-canceled"
    assert _state(fake_ln, trade.order) is InvoiceState.CANCELED
    assert "settled-hold-invoice" not in _statuses_reached(trade.order)


def test_cooperative_cancel_after_admin_settle_decided_is_cant_do_and_the_escrow_settles(
    node, fake_ln, monkeypatch, django_capture_on_commit_callbacks
):
    trade, solver = _taken_dispute(fake_ln)
    _cooperative_cancel_asked(trade)
    order_id = trade.order.id
    seller_saw = before_first_call(
        monkeypatch,
        escrow_reconcile,  # escrow_settle_after's settle, after the decision's commit
        "escrow_settle_decided",
        lambda: trade.seller.send(Action.CANCEL, index=1, order_id=order_id, request_id=52),
    )
    with django_capture_on_commit_callbacks() as callbacks:
        assert dispute_settle(order_id=order_id, actor_pubkey=solver, request_id=10) is Resolution.SETTLED

    assert row_state(trade.order, "status")[0] == "settled-hold-invoice"
    assert "cooperatively-canceled" not in _statuses_reached(trade.order)
    assert _state(fake_ln, trade.order) is InvoiceState.SETTLED
    assert EscrowRefund.objects.filter(order=trade.order).count() == 0
    assert payout_tasks(callbacks) == 1
    assert _seen(seller_saw[0]) == [
        ("admin-settled", None),
        ("cant-do", {"cant_do": "not_allowed_by_status"}),
    ]
