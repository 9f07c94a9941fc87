"""Plain builders for single-model tests (trade-flow tests build state through services)."""

from datetime import timedelta

from django.utils import timezone

from orders.models import Order

TRADE_KEY = "a" * 64
IDENTITY_KEY = "b" * 64


def make_order(**overrides) -> Order:
    now = timezone.now()
    fields = {
        "kind": "sell",
        "status": "pending",
        "creator_pubkey": TRADE_KEY,
        "seller_pubkey": TRADE_KEY,
        "master_seller_pubkey": IDENTITY_KEY,
        "payment_method": "bank transfer",
        "amount_sats": 10_000,
        "fiat_code": "USD",
        "fiat_amount": 10,
        "created_at": now,
        "expires_at": now + timedelta(hours=24),
    }
    fields.update(overrides)
    return Order.objects.create(**fields)
