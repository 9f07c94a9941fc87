"""`release` through the pipeline (docs/PROTOCOL.md §Release, §Range-orders, §Payout success path)."""

import pytest
from django.db import DatabaseError, transaction

from disputes.models import Dispute
from lightning.types import InvoiceState
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.nip01 import Event
from nostrbridge.protocol.payloads import NextTradePayload, TextMessagePayload
from orders.models import Order, OrderStatusChange
from orders.services import range as range_service
from orders.transitions import transition_order
from tests.orders.services.support import ln_writes, order_events, outbox_count, snapshot
from tests.orders.trade_states import (
    KEYS,
    active_buy_range_trade,
    active_sell_trade,
    cant_do,
    unix,
    vector,
)
from tests.trade.harness import deliver

pytestmark = pytest.mark.django_db


@pytest.fixture
def fiat_sent(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    _fiat_sent(trade, request_id=4)
    return trade


def _fiat_sent(trade, **kwargs):
    trade.buyer.send(Action.FIAT_SENT, index=trade.buyer_index, order_id=trade.order.id, **kwargs)
    trade.seller.replies()


def _release(trade, capture, **kwargs):
    kwargs.setdefault("request_id", 5)
    with capture(execute=True):
        seller_replies = trade.seller.send(Action.RELEASE, index=trade.seller_index, order_id=trade.order.id, **kwargs)
    return seller_replies + trade.seller.replies(), trade.buyer.replies()


def test_release_settles_pays_the_buyer_and_asks_both_to_rate(fiat_sent, fake_ln, django_capture_on_commit_callbacks):
    trade = fiat_sent
    seller_replies, buyer_replies = _release(trade, django_capture_on_commit_callbacks)

    assert [r.message.to_json() for r in seller_replies] == [
        vector("A17_hold_invoice_payment_settled_to_seller", trade.order),
        vector("A18_rate_to_seller", trade.order),
    ]
    assert [r.message.to_json() for r in buyer_replies] == [
        vector("A16_released_to_buyer", trade.order),
        vector("A19_purchase_completed_to_buyer", trade.order),
        vector("A20_rate_to_buyer", trade.order),
    ]
    order = trade.refresh()
    assert (order.status, order.payout_request_id, order.payout_claimed_at) == ("success", 5, None)
    assert list(OrderStatusChange.objects.filter(order=order).values_list("from_status", "to_status"))[-2:] == [
        ("fiat-sent", "settled-hold-invoice"),
        ("settled-hold-invoice", "success"),
    ]
    assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.SETTLED
    sends = [args for name, args in fake_ln.calls if name == "send_payment"]
    assert sends == [
        {"payment_request": trade.buyer_invoice, "max_fee_sats": 15, "timeout_seconds": 60, "amount_sats": 7827}
    ]
    assert order.payout_payment_hash == fake_ln.payments[order.payout_payment_hash].payment_hash_hex
    assert [e.tag_value("s") for e in order_events(order.id)] == ["pending", "success"]


def test_release_during_a_dispute_closes_it_as_settled(fiat_sent, fake_ln, django_capture_on_commit_callbacks):
    trade = fiat_sent
    with transaction.atomic():
        transition_order(
            order_id=trade.order.id, from_statuses=["fiat-sent"], to_status="dispute", actor="test", reason="dispute"
        )
        dispute = Dispute.objects.create(
            order=trade.order, initiator="buyer", initiator_pubkey=trade.buyer_key, order_previous_status="fiat-sent"
        )
    _release(trade, django_capture_on_commit_callbacks)

    dispute.refresh_from_db()
    assert (dispute.status, trade.refresh().status) == ("released", "success")
    assert list(dispute.log.values_list("action", "actor")) == [("released", trade.seller_key)]
    [row] = OutboundMessage.objects.filter(kind=38386)
    tags = Event.from_json(row.event_json).tags
    assert [t for t in tags if t[0] in ("d", "s", "initiator", "published_at")] == [
        ["d", str(dispute.id)],
        ["s", "released"],
        ["initiator", "buyer"],
        ["published_at", unix(dispute.created_at)],
    ]


def test_replayed_release_event_changes_nothing(fiat_sent, fake_ln, django_capture_on_commit_callbacks):
    trade = fiat_sent
    event = trade.seller.build(Action.RELEASE, index=1, order_id=trade.order.id, request_id=5)
    with django_capture_on_commit_callbacks(execute=True):
        deliver(event)
    before, outbox, calls = snapshot(trade.order), outbox_count(), list(fake_ln.calls)
    deliver(event)
    assert (snapshot(trade.order), outbox_count(), fake_ln.calls) == (before, outbox, calls)
    assert trade.order.status == "success"


def _refused(trade, fake_ln, client, **kwargs):
    before, outbox, writes = snapshot(trade.order), outbox_count(), ln_writes(fake_ln)
    replies = client.send(Action.RELEASE, index=1, **kwargs)
    assert snapshot(trade.order) == before
    assert ln_writes(fake_ln) == writes
    assert outbox_count() == outbox + len(replies)
    return [r.json for r in replies]


def test_second_release_is_not_allowed_by_status(fiat_sent, fake_ln, django_capture_on_commit_callbacks):
    trade = fiat_sent
    _release(trade, django_capture_on_commit_callbacks)
    replies = _refused(trade, fake_ln, trade.seller, order_id=trade.order.id, request_id=8)
    assert replies == [cant_do("not_allowed_by_status", 8, trade.order.id)]


def test_buyer_cannot_release(fiat_sent, fake_ln):
    replies = _refused(fiat_sent, fake_ln, fiat_sent.buyer, order_id=fiat_sent.order.id, request_id=8)
    assert replies == [cant_do("invalid_peer", 8, fiat_sent.order.id)]


def test_release_before_fiat_sent_is_not_allowed(node, fake_ln):
    trade = active_sell_trade(fake_ln)
    replies = _refused(trade, fake_ln, trade.seller, order_id=trade.order.id, request_id=8)
    assert replies == [cant_do("not_allowed_by_status", 8, trade.order.id)]


def test_release_of_unknown_order_is_not_found(fiat_sent, fake_ln):
    missing = "00000000-0000-4000-8000-000000000000"
    replies = _refused(fiat_sent, fake_ln, fiat_sent.seller, order_id=missing, request_id=8)
    assert replies == [cant_do("not_found", 8, missing)]


def test_release_with_another_payload_is_dropped_silently(fiat_sent, fake_ln):
    payload = TextMessagePayload("go")
    assert _refused(fiat_sent, fake_ln, fiat_sent.seller, order_id=fiat_sent.order.id, payload=payload) == []


def test_release_without_preimage_is_invalid_invoice(fiat_sent, fake_ln):
    Order.objects.filter(pk=fiat_sent.order.pk).update(hold_invoice_preimage=None)
    replies = _refused(fiat_sent, fake_ln, fiat_sent.seller, order_id=fiat_sent.order.id, request_id=8)
    assert replies == [cant_do("invalid_invoice", 8, fiat_sent.order.id)]


def test_release_after_lnd_canceled_the_escrow_is_cant_do_and_a_dispute_opens(fiat_sent, fake_ln):
    # Not silence: the seller hears why, and a fiat-sent order never stays without its escrow.
    fake_ln.cancel_invoice(payment_hash=bytes.fromhex(fiat_sent.order.hold_invoice_hash))
    writes = ln_writes(fake_ln)
    replies = fiat_sent.seller.send(Action.RELEASE, index=1, order_id=fiat_sent.order.id, request_id=8)
    assert [r.action for r in replies] == ["hold-invoice-payment-canceled", "dispute-initiated-by-peer", "cant-do"]
    assert replies[-1].json == cant_do("not_allowed_by_status", 8, fiat_sent.order.id)
    assert ln_writes(fake_ln) == writes  # LND is never asked to settle a refunded escrow
    assert fiat_sent.refresh().status == "dispute"


# --- range orders (docs/PROTOCOL.md §Range-orders) --------------------------------------------------------------------


def test_sell_range_release_creates_the_child_for_the_next_trade_key(node, fake_ln, django_capture_on_commit_callbacks):
    trade = active_sell_trade(fake_ln, range_take=15)
    _fiat_sent(trade, request_id=24)
    next_key = KEYS["alice-trade-4"]["pk"]
    seller_replies, _ = _release(
        trade, django_capture_on_commit_callbacks, payload=NextTradePayload(next_key, 4), request_id=23
    )

    child = Order.objects.get(range_parent=trade.order)
    [reply] = [r for r in seller_replies if r.recipient == next_key]
    assert reply.message.to_json() == vector(
        "C06_child_new_order_to_maker",
        child,
        vector_id="0c9f1d2e-6a3b-4d5c-8e7f-9a0b1c2d3e4f",
        **{"1700000000": unix(child.created_at), "1700086400": unix(child.expires_at)},
    )
    assert [r.action for r in seller_replies] == ["new-order", "hold-invoice-payment-settled", "rate"]
    assert (child.created_at, child.expires_at, child.range_parent_id) == (
        trade.order.created_at,
        trade.order.expires_at,
        trade.order.id,
    )
    assert (child.seller_pubkey, child.creator_pubkey, child.trade_index_seller, child.master_seller_pubkey) == (
        next_key,
        next_key,
        4,
        KEYS["alice-identity"]["pk"],
    )
    assert (child.status, child.amount_sats, child.buyer_pubkey, child.fee_sats) == ("pending", 0, None, 4)
    assert list(child.status_changes.values_list("from_status", "to_status")) == [("", "pending")]
    [event] = order_events(child.id)
    assert (event.tag_value("s"), event.tags[5]) == ("pending", ["fa", "10", "35"])
    assert trade.refresh().status == "success"


@pytest.mark.parametrize(
    ("_case", "taken", "child_terms"),
    [
        ("exact minimum left: fixed child", 40, (10, None, None)),
        ("exhausted: no child", 45, None),
    ],
)
def test_sell_range_remainder(_case, taken, child_terms, node, fake_ln, django_capture_on_commit_callbacks):
    trade = active_sell_trade(fake_ln, range_take=taken)
    _fiat_sent(trade, request_id=24)
    payload = NextTradePayload(KEYS["alice-trade-4"]["pk"], 4)
    _release(trade, django_capture_on_commit_callbacks, payload=payload, request_id=23)
    child = Order.objects.filter(range_parent=trade.order).first()
    terms = None if child is None else (child.fiat_amount, child.min_fiat_amount, child.max_fiat_amount)
    assert terms == child_terms
    assert trade.refresh().status == "success"


def test_failed_child_creation_never_aborts_the_release(node, fake_ln, django_capture_on_commit_callbacks, monkeypatch):
    def broken_insert(*args):
        raise DatabaseError("disk full")

    monkeypatch.setattr(range_service, "_insert_child", broken_insert)
    trade = active_sell_trade(fake_ln, range_take=15)
    _fiat_sent(trade, request_id=24)
    payload = NextTradePayload(KEYS["alice-trade-4"]["pk"], 4)
    seller_replies, _ = _release(trade, django_capture_on_commit_callbacks, payload=payload, request_id=23)
    assert [r.action for r in seller_replies] == ["hold-invoice-payment-settled", "rate"]
    assert not Order.objects.filter(range_parent=trade.order).exists()
    assert trade.refresh().status == "success"


def test_sell_range_release_without_next_trade_ends_the_range(node, fake_ln, django_capture_on_commit_callbacks):
    trade = active_sell_trade(fake_ln, range_take=15)
    _fiat_sent(trade, request_id=24)
    seller_replies, _ = _release(trade, django_capture_on_commit_callbacks, request_id=23)
    assert not Order.objects.filter(range_parent=trade.order).exists()
    assert [r.action for r in seller_replies] == ["hold-invoice-payment-settled", "rate"]
    assert trade.refresh().status == "success"


def test_buy_range_child_uses_the_key_sent_with_fiat_sent(node, fake_ln, django_capture_on_commit_callbacks):
    trade = active_buy_range_trade(fake_ln)
    next_key = KEYS["bob-trade-2"]["pk"]
    _fiat_sent(trade, payload=NextTradePayload(next_key, 2), request_id=31)
    _, buyer_replies = _release(trade, django_capture_on_commit_callbacks, request_id=32)

    child = Order.objects.get(range_parent=trade.order)
    assert (child.kind, child.buyer_pubkey, child.trade_index_buyer, child.master_buyer_pubkey) == (
        "buy",
        next_key,
        2,
        KEYS["bob-identity"]["pk"],
    )
    assert (child.min_fiat_amount, child.max_fiat_amount, child.seller_pubkey) == (10, 35, None)
    new_order = [r for r in buyer_replies if r.action == "new-order"]
    assert [(r.recipient, r.message.request_id, r.message.trade_index) for r in new_order] == [(next_key, 32, 2)]
    assert [r.action for r in buyer_replies] == ["released", "new-order", "purchase-completed", "rate"]


def test_release_from_fiat_sent_reads_no_dispute(fiat_sent, django_capture_on_commit_callbacks):
    # No dispute was ever opened (none flagged, the order moved from `fiat-sent`): nothing to close.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        _release(fiat_sent, django_capture_on_commit_callbacks)
    assert [q["sql"] for q in queries if '"disputes_dispute"' in q["sql"]] == []
    assert fiat_sent.refresh().status == "success"


def test_release_after_a_dispute_opened_behind_its_read_closes_it(
    fiat_sent, monkeypatch, django_capture_on_commit_callbacks
):
    # The release read `fiat-sent`; the buyer's dispute committed before the release's transaction:
    # the move is made from `dispute` (the UPDATE from `fiat-sent` changed nothing) and the dispute closed.
    from orders.services import release as release_service

    trade = fiat_sent
    real = release_service.escrow_ensure_held

    def dispute_opens_meanwhile(*, order):
        real(order=order)
        with transaction.atomic():
            transition_order(
                order_id=order.id,
                from_statuses=["fiat-sent"],
                to_status="dispute",
                actor="buyer",
                reason="dispute",
                set_fields={"buyer_dispute": True},
            )
            Dispute.objects.create(
                order_id=order.id,
                initiator="buyer",
                initiator_pubkey=trade.buyer_key,
                order_previous_status="fiat-sent",
            )

    monkeypatch.setattr(release_service, "escrow_ensure_held", dispute_opens_meanwhile)
    _release(trade, django_capture_on_commit_callbacks)

    dispute = Dispute.objects.get(order_id=trade.order.id)
    assert (dispute.status, trade.refresh().status) == ("released", "success")
    assert list(OrderStatusChange.objects.filter(order=trade.order).values_list("from_status", "to_status"))[-3:] == [
        ("fiat-sent", "dispute"),
        ("dispute", "settled-hold-invoice"),
        ("settled-hold-invoice", "success"),
    ]


@pytest.mark.parametrize("opener", ["seller", "buyer"])
def test_release_of_a_flagged_order_still_closes_its_dispute(opener, fiat_sent, django_capture_on_commit_callbacks):
    # An open dispute on a `fiat-sent` order (a shape only an import could bring, with the opener's
    # flag that mostrod sets): the release still looks for it and closes it, whoever opened it.
    trade = fiat_sent
    Order.objects.filter(pk=trade.order.pk).update(**{f"{opener}_dispute": True})
    opener_key = trade.seller_key if opener == "seller" else trade.buyer_key
    dispute = Dispute.objects.create(
        order=trade.order, initiator=opener, initiator_pubkey=opener_key, order_previous_status="fiat-sent"
    )
    _release(trade, django_capture_on_commit_callbacks)
    dispute.refresh_from_db()
    assert (dispute.status, trade.refresh().status) == ("released", "success")
