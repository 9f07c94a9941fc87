"""Shared state for the user-info and reputation handler tests (docs/PROTOCOL.md §User-info, §Reputation)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mostro_site.config import clear_node_config_cache
from mostro_site.models import ReputationImport, ReputationIssuer, ReputationIssuerKey
from nostrbridge.models import InboundEvent, OutboundMessage
from nostrbridge.protocol.keys import Keys
from orders.models import Order, Trader
from orders.services.rating import RatingAggregate, rating_apply
from tests.foundation.factories import make_order

ISSUER = Keys.from_hex("5a" * 32)  # this node's dedicated issuer key
OTHER_ISSUER = Keys.from_hex("6b" * 32)  # a trusted issuer elsewhere
FIRST_TRADE = datetime(2023, 10, 2, 11, 6, 40, tzinfo=UTC)  # 1696244800: day start 1696204800
FIRST_TRADE_DAY = 1_696_204_800


@pytest.fixture
def reputation(settings):
    """Export with ISSUER, import trusting OTHER_ISSUER as “lnp2pbot”."""
    settings.MOSTRO_REPUTATION_EXPORT_ENABLED = True
    settings.MOSTRO_REPUTATION_ISSUER_SK = ISSUER.secret_hex
    settings.MOSTRO_REPUTATION_EXPORT_LIFETIME_SECONDS = 7 * 86_400
    settings.MOSTRO_REPUTATION_IMPORT_ENABLED = True
    settings.MOSTRO_REPUTATION_IMPORT_MAX_LIFETIME_SECONDS = 7 * 86_400
    trust("lnp2pbot", OTHER_ISSUER.public_key_hex)
    clear_node_config_cache()
    yield settings
    clear_node_config_cache()


def trust(name: str, *keys: str) -> ReputationIssuer:
    issuer = ReputationIssuer.objects.create(name=name)
    for key in keys:
        ReputationIssuerKey.objects.create(pubkey=key, issuer=issuer)
    return issuer


def rated(identity: str, votes: tuple[int, ...] = (5, 4, 5, 5, 3), **fields) -> Trader:
    """A record that received `votes` here, with the same arithmetic the rating service uses."""
    aggregate = RatingAggregate(0, 0.0, 0, 0, 0)
    for vote in votes:
        aggregate = rating_apply(aggregate, vote)
    return Trader.objects.create(
        pubkey=identity,
        last_trade_index=1,
        total_reviews=aggregate.total_reviews,
        total_rating=aggregate.total_rating,
        last_rating=aggregate.last_rating,
        max_rating=aggregate.max_rating,
        min_rating=aggregate.min_rating,
        native_rating_sum=float(sum(votes)),
        **fields,
    )


def completed_trades(identity: str, count: int = 10, *, first: datetime = FIRST_TRADE) -> list[Order]:
    """`count` success orders with `identity` as master seller, the first taken at `first`."""
    return [
        make_order(
            status="success",
            master_seller_pubkey=identity,
            created_at=first - timedelta(hours=1),
            taken_at=first + timedelta(days=i),
        )
        for i in range(count)
    ]


def eligible(identity: str, **fields) -> Trader:
    """10 completed trades and 5 native ratings (5, 4, 5, 5, 3: a native average of 4.40)."""
    completed_trades(identity)
    return rated(identity, **fields)


def state() -> dict:
    """Everything a refused request must leave untouched (the outbox but for its one reply)."""
    return {
        "traders": list(Trader.objects.order_by("pk").values()),
        "imports": list(ReputationImport.objects.order_by("pk").values()),
        "issuers": list(ReputationIssuerKey.objects.order_by("pk").values()),
        "orders": list(Order.objects.order_by("pk").values()),
    }


def outbox() -> list[OutboundMessage]:
    return list(OutboundMessage.objects.order_by("pk"))


def inbound_status(event_id: str) -> tuple[str, str, str]:
    row = InboundEvent.objects.get(event_id=event_id)
    return row.status, row.action, row.drop_reason
