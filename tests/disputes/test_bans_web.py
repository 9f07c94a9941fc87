"""Bans from the REST API (`/api/bans`) and from the dispute console ("ban this party"); the
role rows of both are in tests/security/authz_table.py."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from nostrbridge.node_identity import encode_npub
from orders.models import Ban
from orders.services.bans import ban_create
from tests.disputes.support import disputed_trade
from tests.disputes.web import bearer, browser, make_user

pytestmark = pytest.mark.django_db

KEY = "ab" * 32


def post(url, headers, **data):
    return Client().post(f"/api{url}", data=data, content_type="application/json", **headers)


def bans():
    return list(Ban.objects.order_by("pk").values_list("pubkey", "reason", "banned_by", "lifted_by"))


def test_api_create_list_and_lift(node):
    operator = make_user("ops", "operator")
    headers = bearer(operator)

    created = post("/bans", headers, pubkey=encode_npub(KEY), reason="scam", expires_at="2099-01-01T00:00:00Z")
    assert created.status_code == 200, created.content
    body = created.json()
    assert (body["pubkey"], body["reason"], body["banned_by"], body["active"], body["expires_at"]) == (
        KEY,
        "scam",
        "api:ops",
        True,
        "2099-01-01T00:00:00Z",
    )
    lifted = post(f"/bans/{body['id']}/lift", headers)
    assert (lifted.status_code, lifted.json()["lifted_by"], lifted.json()["active"]) == (200, "api:ops", False)

    listed = Client().get("/api/bans", {"pubkey": KEY, "active": "false"}, **headers).json()
    assert (listed["count"], [item["id"] for item in listed["items"]]) == (1, [body["id"]])
    assert Client().get("/api/bans", {"active": "true"}, **headers).json()["count"] == 0


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({"pubkey": "npub1nope", "reason": "x"}, 422, "invalid_pubkey"),
        ({"pubkey": KEY, "reason": "  "}, 422, "invalid_request"),
        ({"pubkey": KEY, "reason": "x", "expires_at": "2001-01-01T00:00:00Z"}, 422, "invalid_request"),
        ({"pubkey": KEY, "reason": "again"}, 409, "already_banned"),
    ],
)
def test_api_refusals_change_nothing(data, status, code, node):
    ban_create(pubkey=KEY, reason="first", actor="admin:root")
    before = bans()
    response = post("/bans", bearer(make_user("ops", "operator")), **data)
    assert (response.status_code, response.json()["code"]) == (status, code), response.content
    assert bans() == before


def test_api_lift_of_a_lifted_or_unknown_ban(node):
    headers = bearer(make_user("ops", "operator"))
    ban = ban_create(pubkey=KEY, reason="first", actor="admin:root")
    assert post(f"/bans/{ban.pk}/lift", headers).status_code == 200
    before = bans()
    again, unknown = post(f"/bans/{ban.pk}/lift", headers), post("/bans/999/lift", headers)
    assert (again.status_code, again.json()["code"]) == (409, "already_lifted")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert bans() == before


def test_a_solver_may_ban_but_not_lift(node):
    solver = make_user("sol", "rw")
    headers = bearer(solver)
    created = post("/bans", headers, pubkey=KEY, reason="fake receipts")
    assert created.status_code == 200
    refused = post(f"/bans/{created.json()['id']}/lift", headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "not_authorized")
    assert bans() == [(KEY, "fake receipts", "api:sol", "")]


@pytest.fixture
def trade(node, fake_ln):
    return disputed_trade(fake_ln)


def test_console_bans_a_party_for_some_days(trade):
    solver = make_user("sol", "rw")
    page = browser(solver).get(reverse("admin:disputes_dispute_change", args=[trade.dispute.pk]))
    assert b'id="ban-buyer"' in page.content
    assert b'id="ban-seller"' in page.content

    response = browser(solver).post(
        reverse("admin:disputes_dispute_ban", args=[trade.dispute.pk]),
        {"party": "seller", "reason": "never paid", "days": "7"},
    )
    assert response.status_code == 302
    ban = Ban.objects.get()
    order = trade.refresh()
    assert (ban.pubkey, ban.reason, ban.banned_by) == (order.master_seller_pubkey, "never paid", "admin:sol")
    assert abs(ban.expires_at - ban.created_at - timedelta(days=7)) < timedelta(minutes=1)
    page = browser(solver).get(reverse("admin:disputes_dispute_change", args=[trade.dispute.pk]))
    assert b'id="ban-seller"' not in page.content
    assert b"never paid (by admin:sol" in page.content


@pytest.mark.parametrize(
    ("data", "status"), [({"party": "seller", "reason": ""}, 302), ({"party": "nobody", "reason": "x"}, 404)]
)
def test_console_refusals_change_nothing(data, status, trade):
    response = browser(make_user("ops", "operator")).post(
        reverse("admin:disputes_dispute_ban", args=[trade.dispute.pk]), data
    )
    assert response.status_code == status
    assert Ban.objects.count() == 0


def test_read_only_solvers_see_no_ban_form(trade):
    page = browser(make_user("viewer", "ro")).get(reverse("admin:disputes_dispute_change", args=[trade.dispute.pk]))
    assert page.status_code == 200
    assert b"Ban this party" not in page.content


def test_a_ban_ends_at_its_expiry(node):
    ban = ban_create(pubkey=KEY, reason="x", actor="admin:root", expires_at=datetime(2099, 5, 6, 7, 8, tzinfo=UTC))
    assert ban.is_active_at(datetime(2099, 5, 6, 7, 7, tzinfo=UTC))
    assert not ban.is_active_at(datetime(2099, 5, 6, 7, 8, tzinfo=UTC))
