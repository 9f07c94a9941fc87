"""Bans at the protocol edge (docs/OPERATIONS.md §Policies): a banned key's `new-order`,
`take-sell`, `take-buy` and `dispute` get `not_authorized` and change nothing; its trade in
progress continues; listing and restore still answer."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from disputes.models import Dispute
from nostrbridge.models import InboundEvent
from nostrbridge.protocol.enums import Action, MessageType
from nostrbridge.protocol.payloads import IdsPayload
from orders.models import Ban, Order, Trader
from orders.services.bans import BanConflict, active_ban, ban_create, ban_lift
from tests.orders.services.support import assert_refused, make_order, order_terms, set_price
from tests.orders.trade_states import active_sell_trade
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node")]


def _ban(key: str, **extra) -> Ban:
    return ban_create(pubkey=key, reason="scam report #12", actor="admin:root", **extra)


def _last_inbound_note() -> str:
    return InboundEvent.objects.order_by("pk").last().drop_reason


def test_banned_identity_cannot_create_an_order_and_is_not_even_registered(fake_ln):
    set_price()
    alice = TradeClient("alice")
    _ban(alice.identity.public_key_hex)

    assert_refused(
        alice, Action.NEW_ORDER, index=1, order_id=None, reason="not_authorized", fake_ln=fake_ln, payload=order_terms()
    )

    assert Order.objects.count() == 0
    assert Trader.objects.count() == 0  # the trade-index gate never ran
    assert _last_inbound_note() == f"cant-do not_authorized policy:ban key:{alice.pubkey(1)[:16]}"


def test_banned_full_privacy_trade_key_cannot_create_an_order(fake_ln):
    set_price()
    anon = TradeClient("anon", full_privacy=True)
    _ban(anon.pubkey(1))
    assert_refused(
        anon, Action.NEW_ORDER, index=1, order_id=None, reason="not_authorized", fake_ln=fake_ln, payload=order_terms()
    )
    assert Order.objects.count() == 0


@pytest.mark.parametrize("action", [Action.TAKE_SELL, Action.TAKE_BUY])
def test_banned_taker_is_refused_and_the_order_stays_on_the_book(action, fake_ln):
    set_price()
    maker, taker = TradeClient("maker"), TradeClient("taker")
    order = make_order(maker, kind="sell" if action == Action.TAKE_SELL else "buy")
    _ban(taker.identity.public_key_hex)

    assert_refused(taker, action, index=1, order_id=order.id, reason="not_authorized", fake_ln=fake_ln, orders=[order])

    order.refresh_from_db()
    assert (order.status, order.buyer_pubkey if action == Action.TAKE_SELL else order.seller_pubkey) == (
        "pending",
        None,
    )
    assert not Trader.objects.filter(pk=taker.identity.public_key_hex).exists()


def test_banned_party_cannot_open_a_dispute_but_the_trade_continues(fake_ln):
    trade = active_sell_trade(fake_ln)
    _ban(trade.buyer.identity.public_key_hex)

    assert_refused(
        trade.buyer,
        Action.DISPUTE,
        index=1,
        order_id=trade.order.id,
        reason="not_authorized",
        fake_ln=fake_ln,
        orders=[trade.order],
    )
    assert Dispute.objects.count() == 0

    # The ban closes new business only: the banned buyer's fiat-sent and the seller's release go through.
    assert [r.action for r in trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id)] == ["fiat-sent-ok"]
    replies = trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id)
    assert "hold-invoice-payment-settled" in [r.action for r in replies]
    assert trade.refresh().status == "settled-hold-invoice"


def test_the_other_party_of_a_banned_trader_may_still_open_a_dispute(fake_ln):
    trade = active_sell_trade(fake_ln)
    _ban(trade.buyer.identity.public_key_hex)
    replies = trade.seller.send(Action.DISPUTE, index=1, order_id=trade.order.id)
    assert [r.action for r in replies] == ["dispute-initiated-by-you"]
    assert Dispute.objects.get().initiator == "seller"


def test_a_banned_trader_still_lists_and_restores_its_orders(fake_ln):
    set_price()
    alice = TradeClient("alice")
    order = make_order(alice)
    _ban(alice.identity.public_key_hex)

    [listed] = alice.send(Action.ORDERS, index=1, payload=IdsPayload([order.id]), request_id=5, trade_index=None)
    assert [view.id for view in listed.payload.orders] == [order.id]
    [restored] = alice.send(Action.RESTORE_SESSION, index=9, type=MessageType.RESTORE, request_id=77, trade_index=None)
    assert [(o.order_id, o.status) for o in restored.payload.data.orders] == [(order.id, "pending")]


def test_expired_and_lifted_bans_refuse_nothing(fake_ln):
    set_price()
    alice, bob = TradeClient("alice"), TradeClient("bob")
    now = timezone.now()
    ban_create(
        pubkey=alice.identity.public_key_hex,
        reason="a day off",
        actor="admin:root",
        expires_at=now + timedelta(hours=1),
        now=now,
    )
    Ban.objects.update(expires_at=now - timedelta(seconds=1))  # the hour went by
    lifted = _ban(bob.identity.public_key_hex)
    ban_lift(ban_id=lifted.pk, actor="api:operator")

    assert make_order(alice).status == "pending"
    assert make_order(bob).status == "pending"


def test_ban_create_refuses_bad_input_and_a_second_active_ban():
    key = "ab" * 32
    with pytest.raises(ValidationError) as caught:
        ban_create(pubkey="npub1xyz", reason=" ", actor="admin:root")
    assert set(caught.value.message_dict) == {"pubkey", "reason"}
    with pytest.raises(ValidationError) as caught:
        ban_create(pubkey=key, reason="x", actor="admin:root", expires_at=timezone.now() - timedelta(minutes=1))
    assert list(caught.value.message_dict) == ["expires_at"]
    first = _ban(key.upper())
    assert first.pubkey == key
    with pytest.raises(BanConflict):
        _ban(key)
    assert Ban.objects.count() == 1


def test_history_keeps_every_ban_of_a_key():
    key = "cd" * 32
    now = timezone.now()
    first = ban_create(pubkey=key, reason="first", actor="admin:root", expires_at=now + timedelta(minutes=5), now=now)
    later = now + timedelta(minutes=10)
    second = ban_create(pubkey=key, reason="second", actor="auto:disputes-lost", now=later)
    lifted = ban_lift(ban_id=second.pk, actor="admin:ops")
    with pytest.raises(BanConflict):
        ban_lift(ban_id=second.pk, actor="admin:ops")

    first.refresh_from_db()
    assert (first.lifted_by, first.lifted_at) == ("expired", later)
    assert (lifted.lifted_by, lifted.banned_by, lifted.reason) == ("admin:ops", "auto:disputes-lost", "second")
    assert list(Ban.objects.filter(pubkey=key).values_list("reason", flat=True)) == ["second", "first"]
    assert active_ban(key) is None
