"""The automatic ban after N disputes lost within D days (docs/OPERATIONS.md §Policies), off by
default; checked after a resolution committed."""

from datetime import timedelta

import pytest
from django.utils import timezone

from disputes.console import cancel_as, settle_as, take_as
from disputes.models import Dispute
from disputes.services.auto_ban import disputes_lost
from orders.models import Ban
from tests.disputes.support import disputed_trade
from tests.disputes.web import make_user
from tests.foundation.factories import make_order
from tests.orders.services.support import configure

pytestmark = pytest.mark.django_db


@pytest.fixture
def trade(node, fake_ln):
    return disputed_trade(fake_ln)


def earlier_loss(*, buyer: str | None = None, seller: str | None = None, days_ago: float = 1) -> None:
    """A dispute resolved against `buyer` (refunded) or `seller` (settled) some days ago."""
    order = make_order(status="canceled-by-admin", master_buyer_pubkey=buyer or "b" * 64,
                       master_seller_pubkey=seller or "e" * 64)  # fmt: skip
    Dispute.objects.create(
        order=order, status="seller-refunded" if buyer else "settled", initiator="buyer", initiator_pubkey="b" * 64,
        order_previous_status="fiat-sent", resolved_at=timezone.now() - timedelta(days=days_ago),
    )  # fmt: skip


def resolve(trade, how) -> None:
    operator = make_user("ops", "operator")
    take_as(operator, dispute_id=trade.dispute.pk)
    how(operator, dispute=trade.refresh_dispute())


def test_a_refund_bans_a_buyer_who_lost_enough_disputes(trade, settings):
    configure(settings, MOSTRO_AUTO_BAN_DISPUTES_LOST=2, MOSTRO_AUTO_BAN_WINDOW_DAYS=30)
    buyer = trade.order.master_buyer_pubkey
    earlier_loss(buyer=buyer, days_ago=29)
    resolve(trade, cancel_as)
    ban = Ban.objects.get()
    assert (ban.pubkey, ban.reason, ban.banned_by, ban.expires_at) == (
        buyer,
        "lost 2 disputes in 30 days",
        "auto:disputes-lost",
        None,
    )
    assert trade.refresh().status == "canceled-by-admin"  # the resolution stands


def test_a_settle_bans_the_seller(trade, settings):
    configure(settings, MOSTRO_AUTO_BAN_DISPUTES_LOST=1)
    resolve(trade, settle_as)
    assert list(Ban.objects.values_list("pubkey", "banned_by")) == [
        (trade.order.master_seller_pubkey, "auto:disputes-lost")
    ]


@pytest.mark.parametrize(
    ("_case", "limit", "days_ago"),
    [("off by default", 0, 1), ("below the limit", 3, 1), ("the earlier loss is outside the window", 2, 31)],
)
def test_no_ban(_case, limit, days_ago, trade, settings):
    configure(settings, MOSTRO_AUTO_BAN_DISPUTES_LOST=limit, MOSTRO_AUTO_BAN_WINDOW_DAYS=30)
    earlier_loss(buyer=trade.order.master_buyer_pubkey, days_ago=days_ago)
    resolve(trade, cancel_as)
    assert Ban.objects.count() == 0
    assert trade.refresh().status == "canceled-by-admin"


def test_disputes_lost_counts_only_the_losing_side():
    key = "d" * 64
    earlier_loss(buyer=key)
    earlier_loss(seller=key)
    earlier_loss(buyer="f" * 64)
    make_order(status="success", master_buyer_pubkey=key)
    assert disputes_lost(key=key, since=timezone.now() - timedelta(days=2)) == 2
