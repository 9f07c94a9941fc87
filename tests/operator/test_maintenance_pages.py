"""Maintenance mode from the operator dashboard and the REST API (docs/OPERATIONS.md)."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from mostro_site.api.tokens import api_token_create
from mostro_site.models import MaintenanceState, SettingsAuditEntry, TokenScope
from mostro_site.ops.models import RecordedLightningNode
from nostrbridge.models import OutboundMessage
from tests.disputes.web import make_user
from tests.foundation.factories import make_order

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node", "fake_ln")]

URL = reverse("operator:maintenance")
DASHBOARD = reverse("operator:dashboard")
SAFE = "Drained — safe to stop the node or change the Lightning node."
DRAINING = "Draining — not yet safe to stop or change the Lightning node."


def _nothing_changed() -> None:
    assert MaintenanceState.objects.filter(enabled=True).count() == 0
    assert SettingsAuditEntry.objects.count() == 0
    assert not OutboundMessage.objects.exists()


def test_dashboard_switches_on_and_shows_the_drain(operator_client, operator_user, django_capture_on_commit_callbacks):
    page = operator_client.get(DASHBOARD).content.decode()
    assert '<strong class="op-ok">Off</strong>' in page
    order = make_order(status="active", hold_invoice_hash="ab" * 32)

    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(URL, {"enabled": "on", "reason": "LND upgrade"})

    assert (response.status_code, response["Location"]) == (302, DASHBOARD)
    audit = SettingsAuditEntry.objects.get()
    assert (audit.user, audit.after) == (operator_user, "on: LND upgrade (via dashboard)")
    page = operator_client.get(DASHBOARD).content.decode()
    assert "Reason (never published): LND upgrade" in page
    assert '<td class="num" id="drain-escrowed">1</td>' in page
    assert DRAINING in page
    assert SAFE not in page

    order.status = "success"
    order.save()
    page = operator_client.get(DASHBOARD).content.decode()
    assert '<td class="num" id="drain-escrowed">0</td>' in page
    assert SAFE in page

    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(URL, {"enabled": "off"})
    assert MaintenanceState.objects.get().enabled is False
    assert SAFE not in operator_client.get(DASHBOARD).content.decode()


@pytest.mark.parametrize("data", [{}, {"enabled": "maybe"}, {"enabled": "on", "reason": "x" * 501}])
def test_dashboard_refuses_bad_input_and_changes_nothing(operator_client, data):
    response = operator_client.post(URL, data)
    assert response.status_code == 302
    _nothing_changed()


def test_solvers_cannot_switch(client):
    client.force_login(make_user("rw", "rw"))
    assert client.post(URL, {"enabled": "on"}).status_code == 403
    _nothing_changed()


def _api(user, scope=TokenScope.OPERATOR) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {api_token_create(owner=user, name='script', scope=scope)[1]}")


def test_rest_switch_and_status(operator_user, fake_ln, django_capture_on_commit_callbacks):
    api = _api(operator_user)
    RecordedLightningNode.objects.create(pubkey="02" + "cd" * 32, recorded_at="2026-01-01T00:00:00Z")
    make_order(status="pending")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/maintenance", json.dumps({"enabled": True, "reason": "new node"}), content_type="application/json"
        )

    body = response.json()
    since = MaintenanceState.objects.get().since
    assert response.status_code == 200
    assert body == {
        "enabled": True,
        "reason": "new node",
        "since": since.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "counters": {
            "escrowed_orders": 0,
            "inflight_payouts": 0,
            "inflight_dev_fees": 0,
            "open_bonds": 0,
            "pending_bond_payouts": 0,
            "pending_orders": 1,
        },
        "drained": True,
        "safe_to_stop": True,
        "ln_node_pubkey": fake_ln.get_info().pubkey,
        "stored_ln_node_pubkey": "02" + "cd" * 32,
    }
    assert SettingsAuditEntry.objects.get().after == "on: new node (via api)"
    assert api.get("/api/maintenance").json()["enabled"] is True

    response = api.post("/api/maintenance", json.dumps({"enabled": False}), content_type="application/json")
    assert (response.json()["enabled"], response.json()["reason"], response.json()["since"]) == (False, None, None)


@pytest.mark.parametrize(
    ("role", "scope", "status", "code"),
    [
        ("operator", TokenScope.READ, 403, "token_scope"),
        ("operator", TokenScope.RESOLVE, 403, "token_scope"),
        ("rw", TokenScope.RESOLVE, 403, "token_scope"),
        ("staff", TokenScope.READ, 403, "token_scope"),
    ],
)
def test_rest_refusals_change_nothing(role, scope, status, code):
    api = _api(make_user(f"{role}-user", None if role == "staff" else role), scope)
    response = api.post("/api/maintenance", json.dumps({"enabled": True}), content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (status, code)
    _nothing_changed()


def test_rest_status_is_for_operators_only():
    response = _api(make_user("reader", "rw"), TokenScope.READ).get("/api/maintenance")
    assert (response.status_code, response.json()["code"]) == (403, "not_authorized")


def test_rest_refuses_an_overlong_reason(operator_user):
    response = _api(operator_user).post(
        "/api/maintenance", json.dumps({"enabled": True, "reason": "x" * 501}), content_type="application/json"
    )
    assert (response.status_code, response.json()["code"]) == (422, "invalid_request")
    _nothing_changed()
