"""The facts on the dispute page: each party's history on this node and the escrow clock."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from disputes import facts
from disputes.models import Dispute
from orders.models import Order, Trader
from orders.services.bans import ban_create
from tests.disputes.support import disputed_trade
from tests.foundation.factories import make_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def trade(node, fake_ln):
    return disputed_trade(fake_ln)


def _history(identity_buyer: str, identity_seller: str) -> None:
    """Two finished trades and two older disputes involving the same identities."""
    for status in ("success", "success"):
        make_order(status=status, master_buyer_pubkey=identity_buyer, buyer_pubkey="b" * 64)
    lost = make_order(status="canceled-by-admin", master_buyer_pubkey=identity_buyer, master_seller_pubkey="e" * 64)
    Dispute.objects.create(order=lost, status="seller-refunded", initiator="buyer", initiator_pubkey="b" * 64,
                           order_previous_status="fiat-sent", resolved_at=timezone.now())  # fmt: skip
    won = make_order(status="success", master_seller_pubkey=identity_seller)
    Dispute.objects.create(order=won, status="settled", initiator="seller", initiator_pubkey="c" * 64,
                           order_previous_status="fiat-sent", resolved_at=timezone.now())  # fmt: skip


def test_each_party_has_its_history_on_this_node(trade):
    order = trade.refresh()
    _history(order.master_buyer_pubkey, order.master_seller_pubkey)
    Trader.objects.filter(pk=order.master_seller_pubkey).update(total_rating=4.5, total_reviews=8, is_banned=True)
    buyer = facts.party_facts(order, trade.dispute, "buyer")
    seller = facts.party_facts(order, trade.dispute, "seller")
    assert (buyer.role, buyer.side, buyer.opened_dispute, buyer.full_privacy) == ("buyer", "taker", True, False)
    assert (buyer.trades_completed, buyer.disputes_opened, buyer.disputes_lost, buyer.bans) == (2, 2, 1, ())
    assert (seller.side, seller.rating, seller.reviews, seller.trades_completed) == ("maker", 4.5, 8, 1)
    assert (seller.disputes_opened, seller.disputes_lost, seller.bans) == (
        1,
        1,
        ("flagged banned in the imported mostrod database (not enforced)",),
    )


def test_node_bans_of_the_identity_or_the_trade_key_are_listed(trade):
    order = trade.refresh()
    ban_create(pubkey=order.master_buyer_pubkey, reason="fake receipts", actor="admin:ops")
    ban_create(pubkey=order.seller_pubkey, reason="spam", actor="api:ops",
               expires_at=datetime(2099, 1, 2, 3, 4, tzinfo=UTC))  # fmt: skip
    buyer = facts.party_facts(order, trade.dispute, "buyer")
    seller = facts.party_facts(order, trade.dispute, "seller")
    assert (buyer.bans, buyer.ban_key) == (("fake receipts (by admin:ops, until lifted)",), order.master_buyer_pubkey)
    assert seller.bans == ("spam (by api:ops, until 2099-01-02 03:04 UTC)",)


def test_full_privacy_parties_have_no_history(trade):
    order = trade.refresh()
    Order.objects.filter(pk=order.pk).update(master_buyer_pubkey=order.buyer_pubkey)
    order.refresh_from_db()
    buyer = facts.party_facts(order, trade.dispute, "buyer")
    assert (buyer.full_privacy, buyer.identity, buyer.trades_completed, buyer.bans) == (True, None, 0, ())


def test_escrow_clock_from_the_node(trade, fake_ln):
    order = trade.refresh()
    clock = facts.escrow_clock(order)
    tip = fake_ln.block_height
    assert (clock.state, clock.tip_height, clock.margin_blocks) == ("ACCEPTED", tip, 24)
    assert (clock.blocks_left, clock.guardian_blocks_left) == (
        clock.expiry_height - tip,
        clock.expiry_height - tip - 24,
    )
    now = timezone.now()
    assert clock.eta(10, now) == now + timedelta(seconds=6000)
    fake_ln.mine_blocks(clock.blocks_left - 30)
    later = facts.escrow_clock(order)
    assert (later.blocks_left, later.guardian_blocks_left) == (30, 6)
    assert facts.EscrowClock.level(later.eta(later.guardian_blocks_left, now), now) == "danger"
    assert facts.EscrowClock.level(later.eta(later.blocks_left, now), now) == "warning"
    assert facts.EscrowClock.level(None, now) == "unknown"
    fake_ln.set_unavailable(True)
    assert facts.escrow_clock(order).state == "unknown"


def test_price_and_waiting(trade):
    order = trade.refresh()
    assert (order.fiat_amount, order.amount_sats, facts.order_price(order)) == (100, 7851, Decimal("1273723.09"))
    waited = facts.waiting(trade.dispute, trade.dispute.created_at + timedelta(minutes=90))
    assert (waited["opened"], waited["since_taken"], waited["unassigned"]) == (timedelta(minutes=90), None, True)
