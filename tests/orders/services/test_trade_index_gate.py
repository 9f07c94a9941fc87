"""The trade-index gate's first contact (`orders.services.traders.trade_index_check`)."""

import pytest
from django.db import IntegrityError
from django.utils import timezone

from orders.models import Trader
from orders.services import traders
from orders.services.traders import trade_index_check

pytestmark = pytest.mark.django_db

IDENTITY, SENDER = "b" * 64, "c" * 64


def test_first_contact_registers_the_identity_one_below_its_index():
    before = timezone.now()
    trade_index_check(identity=IDENTITY, sender=SENDER, trade_index=5)
    trader = Trader.objects.get(pk=IDENTITY)
    assert (trader.last_trade_index, trader.total_reviews, trader.total_rating) == (4, 0, 0.0)
    assert before <= trader.created_at <= timezone.now()
    trade_index_check(identity=IDENTITY, sender=SENDER, trade_index=5)  # the retry passes the gate again
    assert Trader.objects.get(pk=IDENTITY).last_trade_index == 4


def test_a_concurrent_first_contact_keeps_the_row_it_inserted(monkeypatch):
    # The other message of the same identity inserted its row after this one looked.
    Trader.objects.create(pubkey=IDENTITY, last_trade_index=8)
    looks = []
    real = traders.select_one

    def first_look_misses(model, **key):
        looks.append(key)
        return None if len(looks) == 1 else real(model, **key)

    monkeypatch.setattr(traders, "select_one", first_look_misses)
    trade_index_check(identity=IDENTITY, sender=SENDER, trade_index=3)
    assert list(Trader.objects.values_list("pubkey", "last_trade_index")) == [(IDENTITY, 8)]
    assert Trader.objects.filter(pubkey=IDENTITY).exists()  # and the connection is still usable


def test_a_first_contact_the_schema_refuses_is_raised_as_by_get_or_create():
    with pytest.raises(IntegrityError):
        trade_index_check(identity=IDENTITY, sender=SENDER, trade_index=-3)  # the index CHECK (≥ 0)
    assert not Trader.objects.filter(pubkey=IDENTITY).exists()
