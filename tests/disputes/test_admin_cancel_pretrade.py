"""The operator's cancel of an order nobody took (docs/PROTOCOL.md §Admin-cancel, `pretrade_only`):
over Nostr with the node key, in the admin's order list and over REST; every refusal changes nothing."""

import json
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from mostro_site.api.tokens import api_token_create
from mostro_site.models import TokenScope
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.enums import Action
from orders.models import Order, OrderStatusChange
from orders.services.admin_cancel import order_admin_cancel_pretrade
from tests.disputes.support import admin_client, disputed_trade, register, solver_client
from tests.disputes.web import make_user
from tests.orders.services.support import (
    assert_refused,
    ln_writes,
    make_order,
    order_events,
    published_statuses,
    set_price,
    snapshot,
)
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node")]

ADMIN_CANCELED = (
    '{"order":{"version":2,"request_id":%s,"trade_index":%s,"id":"%s","action":"admin-canceled","payload":null}}'
)


@pytest.fixture
def operator_user():
    user = make_user("olga", "operator")
    return user


@pytest.fixture
def operator_client(client, operator_user):
    client.force_login(operator_user)
    return client


@pytest.fixture
def maker():
    return TradeClient("maker")


@pytest.fixture
def pending(maker, fake_ln):
    set_price()
    order = make_order(maker, index=1)
    maker.replies()
    return order


def _canceled_for_the_maker(maker, order) -> None:
    order.refresh_from_db()
    assert order.status == "canceled-by-admin"
    assert [(r.recipient, r.message.to_json()) for r in maker.replies()] == [
        (maker.pubkey(1), ADMIN_CANCELED % ("null", "null", order.id))
    ]
    assert published_statuses(order.id)[-1] == "canceled"


def test_service_cancels_a_pending_order(pending, maker, fake_ln):
    order_admin_cancel_pretrade(order_id=pending.id, actor_label="admin:olga")

    _canceled_for_the_maker(maker, pending)
    change = OrderStatusChange.objects.filter(order=pending).latest("pk")
    assert (change.from_status, change.to_status, change.actor) == ("pending", "canceled-by-admin", "admin:olga")
    assert ln_writes(fake_ln) == []


@pytest.mark.parametrize(
    "status", ["waiting-buyer-invoice", "waiting-payment", "active", "fiat-sent", "success", "canceled", "expired"]
)
def test_every_other_status_is_refused_and_nothing_changes(pending, status):
    Order.objects.filter(pk=pending.pk).update(status=status)
    before, rows = snapshot(pending), OutboundMessage.objects.count()

    with pytest.raises(Exception, match="not_allowed_by_status"):
        order_admin_cancel_pretrade(order_id=pending.id, actor_label="admin:olga")

    assert snapshot(pending) == before
    assert OutboundMessage.objects.count() == rows


def test_unknown_order_is_not_found():
    with pytest.raises(Exception, match="not_found"):
        order_admin_cancel_pretrade(order_id=uuid.uuid4(), actor_label="admin:olga")


# --- over Nostr ----------------------------------------------------------------------------
def test_the_node_key_cancels_a_pending_order_over_nostr(pending, maker):
    admin = admin_client()
    replies = admin.send(Action.ADMIN_CANCEL, index=1, order_id=pending.id, request_id=55)

    assert [r.message.to_json() for r in replies] == [ADMIN_CANCELED % (55, 1, pending.id)]
    _canceled_for_the_maker(maker, pending)


def test_a_solver_gets_not_authorized_on_a_pending_order(pending, fake_ln):
    solver = register(solver_client())
    assert_refused(
        solver, Action.ADMIN_CANCEL, index=0, order_id=pending.id, reason="not_authorized", fake_ln=fake_ln,
        orders=[pending],
    )  # fmt: skip


def test_a_disputed_order_still_follows_the_dispute_rules(fake_ln):
    trade = disputed_trade(fake_ln)
    solver = register(solver_client())
    assert_refused(
        solver, Action.ADMIN_CANCEL, index=0, order_id=trade.order.id, reason="is_not_your_dispute",
        fake_ln=fake_ln, orders=[trade.order],
    )  # fmt: skip


# --- the admin's order list ------------------------------------------------------------------
def _run_action(client, *orders):
    return client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "admin_cancel_pretrade", "_selected_action": [str(o.pk) for o in orders], "index": "0"},
        follow=True,
    )


def test_operators_cancel_from_the_order_list_and_taken_orders_are_left_alone(operator_client, pending, maker, fake_ln):
    taken = make_order(TradeClient("other"), index=1)
    Order.objects.filter(pk=taken.pk).update(status="active")
    before = snapshot(taken)

    page = _run_action(operator_client, pending, taken).content.decode()

    _canceled_for_the_maker(maker, pending)
    assert snapshot(taken) == before
    assert f"Canceled by admin: {pending.id}." in page
    assert f"Not canceled (already taken or closed): {taken.id} (active: not_allowed_by_status)." in page
    assert OrderStatusChange.objects.filter(order=pending).latest("pk").actor == "admin:olga"


def test_solvers_do_not_get_the_action(client, pending):
    client.force_login(make_user("rw", "rw"))
    before = snapshot(pending)
    response = _run_action(client, pending)
    assert response.status_code == 200
    assert snapshot(pending) == before
    assert "admin_cancel_pretrade" not in client.get(reverse("admin:orders_order_changelist")).content.decode()


# --- REST ------------------------------------------------------------------------------------
def _api(user, scope=TokenScope.OPERATOR) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {api_token_create(owner=user, name='script', scope=scope)[1]}")


def test_rest_cancel(operator_user, pending, maker):
    response = _api(operator_user).post(f"/api/orders/{pending.id}/cancel")
    assert (response.status_code, response.json()["status"], response.json()["id"]) == (
        200,
        "canceled-by-admin",
        str(pending.id),
    )
    _canceled_for_the_maker(maker, pending)


@pytest.mark.parametrize(
    ("who", "scope", "order", "status", "code"),
    [
        ("operator", TokenScope.OPERATOR, "taken", 409, "not_allowed_by_status"),
        ("operator", TokenScope.OPERATOR, "unknown", 404, "not_found"),
        ("operator", TokenScope.READ, "pending", 403, "token_scope"),
        ("rw", TokenScope.RESOLVE, "pending", 403, "token_scope"),
        ("rw", TokenScope.READ, "pending", 403, "token_scope"),
    ],
)
def test_rest_refusals_change_nothing(operator_user, pending, who, scope, order, status, code):
    user = operator_user if who == "operator" else make_user("solver-user", "rw")
    if order == "taken":
        Order.objects.filter(pk=pending.pk).update(status="waiting-payment")
    order_id = uuid.uuid4() if order == "unknown" else pending.id
    before, rows = snapshot(pending), OutboundMessage.objects.count()

    response = _api(user, scope).post(f"/api/orders/{order_id}/cancel")

    assert (response.status_code, response.json()["code"]) == (status, code)
    assert snapshot(pending) == before
    assert OutboundMessage.objects.count() == rows


def test_rest_solver_session_is_not_authorized(client, pending):
    client.force_login(make_user("rw", "rw"))
    before = snapshot(pending)
    response = client.post(f"/api/orders/{pending.id}/cancel", json.dumps({}), content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (403, "not_authorized")
    assert snapshot(pending) == before
    assert len(order_events(pending.id)) == 1
