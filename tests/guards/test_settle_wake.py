"""The job cluster is woken for the payout after the escrow's settle, not at the decision's commit.

The release and the admin settle commit `settled-hold-invoice` with the payout's queue row, then
settle the escrow at LND. Woken at the commit, the cluster's payout read the escrow still
ACCEPTED about one trade in ten and settled it a second time (docs/PROTOCOL.md §Release). With
the node's broker (`WakeableORM`, a real cluster: not synchronous) and real commits, these tests
record the order of the commit, the SettleInvoice call and the wake-up datagram.
"""

import pytest
from django.db import transaction
from django_q.conf import Conf
from django_q.models import OrmQ

from disputes.services import resolve, solver_grant
from disputes.services.resolve import Resolution, dispute_settle
from disputes.services.take import dispute_take
from lightning.errors import LightningUnavailable
from lightning.types import InvoiceState
from mostro_site.runtime.job_broker import wake_address
from nostrbridge import wake
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.keys import Keys
from orders.models import Order
from orders.services import release as release_service
from orders.services.release import order_release
from orders.transitions import transition_order
from tests.disputes.support import READ_WRITE, disputed_trade
from tests.guards.support import after_first_call, fresh_trade
from tests.orders.trade_states import Trade

pytestmark = pytest.mark.django_db(transaction=True)

BROKER = "mostro_site.runtime.job_broker.WakeableORM"


@pytest.fixture
def steps(node, fake_ln, monkeypatch) -> list[tuple]:
    """What happened, in order: ("commit",), ("settle", queue rows committed), ("hint", address)
    for the job queue's hints (the outbox's nudges to the bridge go through `send_hint` too)."""
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", "default")
    monkeypatch.setattr(Conf, "BROKER_CLASS", BROKER)
    seen: list[tuple] = []
    jobs = wake_address(Conf.CLUSTER_NAME)
    real_hint = wake.send_hint

    def hint(address: str, data: bytes = b"w") -> None:
        if address == jobs:
            seen.append(("hint", address))
        else:
            real_hint(address, data)

    monkeypatch.setattr(wake, "send_hint", hint)
    real_settle = fake_ln.settle_invoice

    def settle(**kwargs):
        seen.append(("settle", OrmQ.objects.count()))
        real_settle(**kwargs)

    monkeypatch.setattr(fake_ln, "settle_invoice", settle)
    return seen


def _mark_commits(monkeypatch, module, seen: list[tuple]) -> None:
    """("commit",) when the transaction that queued the payout commits (an on-commit hook
    registered just after the broker's own)."""
    real = module.payout_schedule

    def scheduled(**kwargs):
        real(**kwargs)
        transaction.on_commit(lambda: seen.append(("commit",)))

    monkeypatch.setattr(module, "payout_schedule", scheduled)


def _fiat_sent(fake_ln) -> Trade:
    trade = fresh_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=trade.buyer_index, order_id=trade.order.id, request_id=4)
    assert trade.refresh().status == "fiat-sent"
    return trade


def _cancel(order_id) -> None:
    with transaction.atomic():
        transition_order(
            order_id=order_id,
            from_statuses=["fiat-sent"],
            to_status="cooperatively-canceled",
            actor="test",
            reason="test",
        )


def _release(trade: Trade) -> Order:
    return order_release(order_id=trade.order.id, sender=trade.seller_key, request_id=5)


def _taken_dispute(fake_ln) -> tuple[Trade, str]:
    """A disputed fiat-sent trade taken by a new read-write solver; returns it and the solver's key."""
    trade = disputed_trade(fake_ln, fresh=True)
    solver = Keys.generate().public_key_hex
    solver_grant(actor_pubkey=node_pubkey(), pubkey=solver, category=READ_WRITE)
    dispute_take(dispute_id=trade.dispute.id, actor_pubkey=solver)
    return trade, solver


def _settle_raises(fake_ln, monkeypatch, steps: list[tuple]) -> None:
    """SettleInvoice raises something unexpected (after recording the step, as `steps` does)."""

    def crashes(**kwargs):
        steps.append(("settle", OrmQ.objects.count()))
        raise RuntimeError("unexpected")

    monkeypatch.setattr(fake_ln, "settle_invoice", crashes)


def _hint() -> tuple[str, str]:
    return ("hint", wake_address(Conf.CLUSTER_NAME))


def test_the_release_wakes_the_cluster_after_its_settle(steps, fake_ln, monkeypatch):
    trade = _fiat_sent(fake_ln)
    _mark_commits(monkeypatch, release_service, steps)

    _release(trade)

    # The row is committed before the settle (a crash in between leaves it for the cluster).
    assert steps == [("commit",), ("settle", 1), _hint()]
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash) is InvoiceState.SETTLED
    assert trade.refresh().status == "settled-hold-invoice"


def test_a_settle_lnd_refuses_still_wakes_the_cluster_after_it(steps, fake_ln, monkeypatch):
    trade = _fiat_sent(fake_ln)
    _mark_commits(monkeypatch, release_service, steps)
    settle = fake_ln.settle_invoice

    def unavailable(**kwargs):
        settle(**kwargs)  # recorded, then LND is down
        raise LightningUnavailable("LND down", code="UNAVAILABLE")

    monkeypatch.setattr(fake_ln, "settle_invoice", unavailable)

    _release(trade)  # the decision stands; the payout settles first

    assert steps == [("commit",), ("settle", 1), _hint()]
    assert trade.refresh().status == "settled-hold-invoice"


def test_a_settle_that_raises_still_wakes_the_cluster(steps, fake_ln, monkeypatch):
    trade = _fiat_sent(fake_ln)
    _mark_commits(monkeypatch, release_service, steps)
    _settle_raises(fake_ln, monkeypatch, steps)

    with pytest.raises(RuntimeError, match="unexpected"):
        _release(trade)

    assert steps == [("commit",), ("settle", 1), _hint()]
    assert trade.refresh().status == "settled-hold-invoice"
    assert OrmQ.objects.count() == 1


def test_a_release_that_lost_to_a_cancel_queues_nothing_and_wakes_nobody(steps, fake_ln, monkeypatch):
    trade = _fiat_sent(fake_ln)
    order_id = trade.order.id
    # The order leaves `fiat-sent` between the release's checks and its guarded transition.
    after_first_call(
        monkeypatch,
        release_service,
        "escrow_ensure_held",
        lambda: _cancel(order_id),
    )

    with pytest.raises(CantDo) as refused:
        _release(trade)

    assert refused.value.reason == CantDoReason.NOT_ALLOWED_BY_STATUS
    assert steps == []
    assert OrmQ.objects.count() == 0
    assert trade.refresh().status == "cooperatively-canceled"
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash) is InvoiceState.ACCEPTED


def test_a_release_inside_an_outer_transaction_wakes_the_cluster_at_that_commit(steps, fake_ln, monkeypatch):
    """A caller's transaction around the release: its commit comes after the settle, and so does the
    hint (sent at that commit, never lost)."""
    trade = _fiat_sent(fake_ln)
    # The fake LND refuses calls inside a transaction (the node never makes one there).
    monkeypatch.setattr(release_service, "escrow_ensure_held", lambda **kwargs: None)
    monkeypatch.setattr(fake_ln, "settle_invoice", lambda **kwargs: steps.append(("settle",)))

    with transaction.atomic():
        _release(trade)
        assert steps == [("settle",)]
    assert steps == [("settle",), _hint()]


def test_the_admin_settle_wakes_the_cluster_after_its_settle(steps, fake_ln, monkeypatch):
    trade, solver = _taken_dispute(fake_ln)
    _mark_commits(monkeypatch, resolve, steps)

    assert dispute_settle(order_id=trade.order.id, actor_pubkey=solver, request_id=10) is Resolution.SETTLED

    assert steps == [("commit",), ("settle", 1), _hint()]
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash) is InvoiceState.SETTLED


def test_an_admin_settle_whose_settle_raises_still_wakes_the_cluster(steps, fake_ln, monkeypatch):
    trade, solver = _taken_dispute(fake_ln)
    _mark_commits(monkeypatch, resolve, steps)
    _settle_raises(fake_ln, monkeypatch, steps)

    with pytest.raises(RuntimeError, match="unexpected"):
        dispute_settle(order_id=trade.order.id, actor_pubkey=solver, request_id=10)

    assert steps == [("commit",), ("settle", 1), _hint()]
    assert trade.refresh().status == "settled-hold-invoice"


def test_another_enqueue_still_wakes_the_cluster_at_its_commit(steps):
    from orders.services.payout import payout_schedule

    with transaction.atomic():
        payout_schedule(order_id="0f5e1f27-5c83-4f0c-9d86-6a5e1a3f2b11", request_id=1)
        assert steps == []
    assert steps == [_hint()]
