"""The trade-index gate (`orders.services.traders.trade_index_check`): its first contact, and its one
read with the ban gate (`trade_gate_read`)."""

from datetime import timedelta

import pytest
from django.db import IntegrityError
from django.utils import timezone

from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.errors import CantDo
from orders.models import Ban, Trader
from orders.services import traders
from orders.services.bans import BAN_POLICY, active_ban
from orders.services.traders import TradeGate, trade_gate_read, trade_index_check

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


# --- the gate's one read (`trade_gate_read`): the ban and the index in one statement ----------


@pytest.mark.parametrize(
    ("ban_on", "ban_fields", "banned"),
    [
        (None, {}, False),
        (IDENTITY, {}, True),
        (SENDER, {}, True),
        (IDENTITY, {"expired": True}, False),
        (SENDER, {"lifted": True}, False),
        (SENDER, {"expires_in_future": True}, True),
    ],
)
@pytest.mark.parametrize("stored_index", [None, 0, 7])
def test_the_gate_read_is_the_ban_lookup_and_the_trader_row(ban_on, ban_fields, banned, stored_index):
    now = timezone.now()
    if ban_on is not None:
        Ban.objects.create(
            pubkey=ban_on,
            reason="test",
            banned_by="admin",
            expires_at=(now - timedelta(seconds=1)) if ban_fields.get("expired") else
            (now + timedelta(days=1)) if ban_fields.get("expires_in_future") else None,
            lifted_at=now if ban_fields.get("lifted") else None,
            lifted_by="admin" if ban_fields.get("lifted") else "",
        )  # fmt: skip
    if stored_index is not None:
        Trader.objects.create(pubkey=IDENTITY, last_trade_index=stored_index)

    gate = trade_gate_read(identity=IDENTITY, sender=SENDER)

    assert gate == TradeGate(banned=banned, last_trade_index=stored_index)
    assert gate.banned == (active_ban(IDENTITY, SENDER) is not None)


def test_a_banned_gate_is_refused_not_authorized_with_the_ban_policy():
    with pytest.raises(CantDo) as refused:
        TradeGate(banned=True, last_trade_index=None).refuse_banned()
    assert (refused.value.reason, refused.value.policy) == (CantDoReason.NOT_AUTHORIZED, BAN_POLICY)
    TradeGate(banned=False, last_trade_index=None).refuse_banned()  # nothing raised


def test_the_index_gate_decides_on_the_gate_read_without_reading_again(django_assert_num_queries):
    Trader.objects.create(pubkey=IDENTITY, last_trade_index=4)
    gate = trade_gate_read(identity=IDENTITY, sender=SENDER)
    with django_assert_num_queries(0):
        trade_index_check(identity=IDENTITY, sender=SENDER, trade_index=5, gate=gate)
        with pytest.raises(CantDo) as refused:
            trade_index_check(identity=IDENTITY, sender=SENDER, trade_index=4, gate=gate)
    assert refused.value.reason == CantDoReason.INVALID_TRADE_INDEX


@pytest.mark.parametrize(
    ("destination", "read_again"),
    [
        (None, False),
        ("lnbcrt10n1pexample", False),
        ("  bob@example.com ", True),
        ("LNURL1DP68GURN8GHJ7", True),
    ],
)
def test_a_lightning_address_check_makes_the_index_gate_read_again(destination, read_again):
    gate = TradeGate(banned=False, last_trade_index=3)
    assert gate.unless_waited(destination) is (None if read_again else gate)
