"""`cancel` through the pipeline (docs/PROTOCOL.md §Cancel)."""

import pytest
from django.db import transaction

from disputes.models import Dispute
from lightning.types import InvoiceState
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.nip01 import Event
from orders.models import Order, OrderStatusChange
from orders.transitions import transition_order
from tests.orders.services.support import ln_writes, make_order, order_events, outbox_count, set_price, snapshot
from tests.orders.trade_states import (
    KEYS,
    active_sell_trade,
    cant_do,
    taken_sell_trade,
    unix,
    vector,
    vector_client,
)
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db


def _cancel(client, order, *, index=1, request_id=51):
    return client.send(Action.CANCEL, index=index, order_id=order.id, request_id=request_id)


def _refused(order, fake_ln, client, *, index=1, request_id=51):
    before, outbox, writes = snapshot(order), outbox_count(), ln_writes(fake_ln)
    replies = _cancel(client, order, index=index, request_id=request_id)
    assert snapshot(order) == before
    assert ln_writes(fake_ln) == writes
    assert outbox_count() == outbox + len(replies)
    return [r.json for r in replies]


def _transitions(order):
    return list(OrderStatusChange.objects.filter(order=order).values_list("from_status", "to_status", "actor"))


# --- pending --------------------------------------------------------------------------------


def test_maker_cancels_a_pending_order(node, fake_ln):
    alice = vector_client("alice")
    set_price()
    order = make_order(alice, index=1, kind="sell")
    replies = _cancel(alice, order)

    assert [r.message.to_json() for r in replies] == [vector("E02_canceled", order)]
    order.refresh_from_db()
    assert order.status == "canceled"
    assert _transitions(order)[-1] == ("pending", "canceled", alice.pubkey(1))
    assert [e.tag_value("s") for e in order_events(order.id)] == ["pending", "canceled"]


def test_stranger_cannot_cancel_a_pending_order(node, fake_ln):
    alice = vector_client("alice")
    set_price()
    order = make_order(alice, index=1, kind="sell")
    assert _refused(order, fake_ln, TradeClient("eve")) == [cant_do("is_not_your_order", 51, order.id)]


def test_canceling_twice_is_already_canceled(node, fake_ln):
    alice = vector_client("alice")
    set_price()
    order = make_order(alice, index=1, kind="sell")
    _cancel(alice, order)
    assert _refused(order, fake_ln, alice, request_id=52) == [cant_do("order_already_canceled", 52, order.id)]


def test_cancel_of_unknown_order_is_not_found(node, fake_ln):
    alice = vector_client("alice")
    set_price()
    order = make_order(alice, index=1, kind="sell")
    missing = Order(id="00000000-0000-4000-8000-000000000000")
    replies = alice.send(Action.CANCEL, index=1, order_id=missing.id, request_id=51)
    assert [r.json for r in replies] == [cant_do("not_found", 51, missing.id)]
    assert Order.objects.get(pk=order.pk).status == "pending"


# --- waiting-payment / waiting-buyer-invoice --------------------------------------------------


def test_maker_cancel_while_waiting_cancels_the_order_and_the_escrow(node, fake_ln):
    trade = taken_sell_trade(fake_ln)
    replies = _cancel(trade.seller, trade.order)
    buyer_replies = trade.buyer.replies()

    assert [r.message.to_json() for r in replies] == [vector("E02_canceled", trade.order)]
    assert [r.json["order"]["request_id"] for r in buyer_replies] == [None]
    assert [r.action for r in buyer_replies] == ["canceled"]
    order = trade.refresh()
    assert order.status == "canceled"
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.CANCELED
    assert order_events(order.id)[-1].tag_value("s") == "canceled"


def test_taker_cancel_puts_the_order_back_on_the_book(node, fake_ln):
    trade = taken_sell_trade(fake_ln)
    hold_hash = trade.order.hold_invoice_hash
    replies = _cancel(trade.buyer, trade.order)
    seller_replies = trade.seller.replies()

    order = trade.refresh()
    assert [r.message.to_json() for r in replies] == [vector("E02_canceled", order)]
    assert [r.message.to_json() for r in seller_replies] == [
        vector(
            "E06_new_order_republish_to_maker",
            order,
            **{"1700000000": unix(order.created_at), "1700086400": unix(order.expires_at)},
        )
    ]
    assert seller_replies[0].recipient == KEYS["alice-trade-1"]["pk"]
    assert (order.status, order.amount_sats, order.fee_sats, order.dev_fee_sats) == ("pending", 0, 0, 0)
    cleared = (order.hold_invoice_hash, order.hold_invoice_preimage, order.buyer_invoice, order.taken_at)
    assert cleared == (None, None, None, None)
    assert (order.buyer_pubkey, order.master_buyer_pubkey, order.trade_index_buyer) == (None, None, None)
    assert fake_ln.invoice_state(hold_hash) is InvoiceState.CANCELED
    assert _transitions(order)[-1] == ("waiting-payment", "pending", KEYS["bob-trade-1"]["pk"])
    [first, last] = order_events(order.id)
    assert (first.tag_value("s"), last.tag_value("s"), last.tag_value("amt")) == ("pending", "pending", "0")


def test_taker_cancel_before_any_escrow_calls_no_lightning(node, fake_ln):
    trade = taken_sell_trade(fake_ln, with_invoice=False)
    writes = ln_writes(fake_ln)
    _cancel(trade.buyer, trade.order)
    assert trade.refresh().status == "pending"
    assert ln_writes(fake_ln) == writes


def test_stranger_cannot_cancel_a_taken_order(node, fake_ln):
    trade = taken_sell_trade(fake_ln)
    assert _refused(trade.order, fake_ln, TradeClient("eve")) == [cant_do("invalid_pubkey", 51, trade.order.id)]


# --- active: cooperative cancel ---------------------------------------------------------------


def test_cooperative_cancel_takes_both_parties(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    first = _cancel(trade.seller, trade.order, request_id=51)
    peer = trade.buyer.replies()
    assert [r.message.to_json() for r in first] == [vector("E03_coop_by_you", trade.order)]
    assert [r.message.to_json() for r in peer] == [vector("E04_coop_by_peer", trade.order)]
    order = trade.refresh()
    assert (order.status, order.cancel_initiator_pubkey, order.seller_cooperative_cancel) == (
        "active",
        trade.seller_key,
        True,
    )
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.ACCEPTED

    accepted = _cancel(trade.buyer, trade.order, request_id=52)
    initiator = trade.seller.replies()
    assert [r.message.to_json() for r in accepted] == [vector("E05_coop_accepted", trade.order)]
    assert [(r.action, r.json["order"]["request_id"]) for r in initiator] == [("cooperative-cancel-accepted", None)]
    order = trade.refresh()
    assert (order.status, order.buyer_cooperative_cancel) == ("cooperatively-canceled", True)
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.CANCELED
    assert _transitions(order)[-1] == ("active", "cooperatively-canceled", trade.buyer_key)
    assert order_events(order.id)[-1].tag_value("s") == "canceled"


def test_initiator_repeating_cancel_is_invalid_pubkey(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    _cancel(trade.seller, trade.order)
    replies = _refused(trade.order, fake_ln, trade.seller, request_id=53)
    assert replies == [cant_do("invalid_pubkey", 53, trade.order.id)]


def test_stranger_cannot_cancel_an_active_trade(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    assert _refused(trade.order, fake_ln, TradeClient("eve")) == [cant_do("invalid_pubkey", 51, trade.order.id)]


def test_cooperative_cancel_refunds_and_closes_an_open_dispute(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    with transaction.atomic():
        transition_order(
            order_id=trade.order.id, from_statuses=["active"], to_status="dispute", actor="test", reason="dispute"
        )
        dispute = Dispute.objects.create(
            order=trade.order, initiator="seller", initiator_pubkey=trade.seller_key, order_previous_status="active"
        )
    _cancel(trade.buyer, trade.order, request_id=51)
    _cancel(trade.seller, trade.order, request_id=52)

    dispute.refresh_from_db()
    assert (trade.refresh().status, dispute.status) == ("cooperatively-canceled", "cooperatively-canceled")
    # The accepting party closed it (mostrod #968: its own 38386 status, not a solver's refund).
    assert list(dispute.log.values_list("action", "actor")) == [("coop-cancel", trade.seller_key)]
    [row] = OutboundMessage.objects.filter(kind=38386)
    tags = Event.from_json(row.event_json).tags
    assert [t for t in tags if t[0] in ("d", "s", "initiator")] == [
        ["d", str(dispute.id)],
        ["s", "cooperatively-canceled"],
        ["initiator", "seller"],
    ]


def test_cooperative_cancel_after_a_release_decided_is_refused_and_never_refunds(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    _cancel(trade.seller, trade.order)
    trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)  # the release decides first
    trade.buyer.replies()
    before, outbox = snapshot(trade.order), outbox_count()
    replies = _cancel(trade.buyer, trade.order, request_id=52)
    assert [r.json for r in replies] == [cant_do("not_allowed_by_status", 52, trade.order.id)]
    assert (snapshot(trade.order), outbox_count()) == (before, outbox + 1)
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash).value == "SETTLED"


@pytest.mark.parametrize(("status", "payout_in_flight"), [("settled-hold-invoice", True), ("success", False)])
def test_cancel_after_settlement_is_not_allowed(
    status, payout_in_flight, node, fake_ln, django_capture_on_commit_callbacks
):
    trade = active_sell_trade(fake_ln)
    trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
    if payout_in_flight:
        fake_ln.leave_next_payment_in_flight()
    with django_capture_on_commit_callbacks(execute=True):
        trade.seller.send(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)
    assert trade.refresh().status == status
    trade.buyer.replies()
    replies = _refused(trade.order, fake_ln, trade.buyer)
    assert replies == [cant_do("not_allowed_by_status", 51, trade.order.id)]
