"""The node settings page: the checks' rules as form errors, audit rows, live application."""

import html

import pytest
from django.contrib.auth.models import Group, User
from django.core.checks import Error

from mostro_site.checks import check_mostro_settings
from mostro_site.config import node_config
from mostro_site.models import NodeSettings, SettingsAuditEntry
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.nip01 import Event

pytestmark = pytest.mark.django_db
URL = "/operator/settings/"

VALID = {
    "fee": "0.006",
    "max_routing_fee": "0.002",
    "min_payment_amount_sats": "200",
    "max_order_amount_sats": "500000",
    "expiration_hours": "12",
    "expiration_seconds": "600",
    "pow_bits": "2",
    "dev_fee_percent": "30",
    "fiat_mode": "list",
    "fiat_currencies": ["USD", "VES"],
    "bitcoin_price_api_url": "https://api.yadio.io",
    "relays": "wss://relay.mostro.network\nws://127.0.0.1:7000",
    "protocol_version": "2",
    "name": "Test Mostro",
    "about": "A node",
    "picture": "https://example.com/p.png",
    "website": "https://example.com",
}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"fee": "1.5"}, "fee", "1.5 is outside 0–1"),
        ({"fee": "-0.1"}, "fee", "-0.1 is outside 0–1"),
        ({"max_routing_fee": "2"}, "max_routing_fee", "2.0 is outside 0–1"),
        ({"dev_fee_percent": "5"}, "dev_fee_percent", "5 % is outside 10–100 %"),
        ({"dev_fee_percent": "101"}, "dev_fee_percent", "101 % is outside 10–100 %"),
        ({"pow_bits": "256"}, "pow_bits", "256 is outside 0–255"),
        ({"expiration_hours": "0"}, "expiration_hours", "0 must be at least 1"),
        ({"expiration_seconds": "0"}, "expiration_seconds", "0 must be at least 1"),
        ({"min_payment_amount_sats": "600000"}, "max_order_amount_sats", "must satisfy 1 ≤ minimum ≤ maximum"),
        ({"min_payment_amount_sats": "0"}, "min_payment_amount_sats", "must satisfy 1 ≤ minimum ≤ maximum"),
        ({"relays": "https://relay.example"}, "relays", "'https://relay.example' is not a ws:// or wss:// URL"),
        ({"relays": "wss://"}, "relays", "'wss://' is not a ws:// or wss:// URL"),
        ({"fiat_currencies": []}, "fiat_currencies", "Select at least one currency"),
        ({"fiat_currencies": ["USD", "XYZ"]}, "fiat_currencies", "XYZ is not one of the available choices"),
        ({"protocol_version": "3"}, "protocol_version", "3 is not one of the available choices"),
        ({"picture": "ftp://example.com/p.png"}, "picture", "is not an http:// or https:// URL"),
        ({"bitcoin_price_api_url": "yadio"}, "bitcoin_price_api_url", "'yadio' is not an http:// or https:// URL"),
        ({"name": "x" * 101}, "name", "at most 100 characters"),
    ],
)
def test_each_rule_is_a_clear_form_error_and_nothing_is_saved(operator_client, changes, field, message):
    response = operator_client.post(URL, {**VALID, **changes})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == [field], errors
    assert message in " ".join(errors[field])
    assert message in html.unescape(response.content.decode())
    assert (NodeSettings.objects.count(), SettingsAuditEntry.objects.count()) == (0, 0)


@pytest.mark.parametrize(
    ("setting", "value", "form_changes"),
    [
        ("MOSTRO_FEE", 1.5, {"fee": "1.5"}),
        ("MOSTRO_DEV_FEE_PERCENTAGE", 0.05, {"dev_fee_percent": "5"}),
        ("MOSTRO_POW", 256, {"pow_bits": "256"}),
        ("MOSTRO_RELAYS", ["http://relay.example"], {"relays": "http://relay.example"}),
        ("MOSTRO_EXPIRATION_HOURS", 0, {"expiration_hours": "0"}),
    ],
)
def test_form_and_system_checks_refuse_the_same_values(operator_client, settings, setting, value, form_changes):
    setattr(settings, setting, value)
    assert any(isinstance(problem, Error) for problem in check_mostro_settings())
    assert not operator_client.post(URL, {**VALID, **form_changes}).context["form"].is_valid()


def test_save_writes_one_audit_row_per_changed_field(
    operator_client, operator_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(URL, {**VALID, "fee": "0.006", "fiat_mode": "env", "relays": ""})
    assert response.status_code == 302
    first = {(e.user_id, e.field, e.before, e.after) for e in SettingsAuditEntry.objects.all()}
    assert (operator_user.pk, "fee", "", "0.006") in first
    assert (operator_user.pk, "dev_fee_percentage", "", "0.3") in first
    assert (operator_user.pk, "protocol_version", "", "2") in first
    assert not any(field in ("fiat_currencies_accepted", "relays") for _, field, _, _ in first)
    assert len(first) == 14

    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(URL, {**VALID, "fee": "0.01", "fiat_mode": "all", "relays": ""})
    latest = list(SettingsAuditEntry.objects.filter(pk__gt=max(e.pk for e in SettingsAuditEntry.objects.all()) - 2))
    assert {(e.field, e.before, e.after) for e in latest} == {
        ("fee", "0.006", "0.01"),
        ("fiat_currencies_accepted", "", "(all currencies)"),
    }


def test_saved_values_apply_live_and_republish_the_info_event(operator_client, django_capture_on_commit_callbacks):
    assert node_config().fee == 0.0  # warm the one-second cache with the environment default
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(URL, VALID)
    config = node_config()
    assert (config.fee, config.dev_fee_percentage, config.pow_bits, config.min_payment_amount_sats) == (
        0.006,
        0.3,
        2,
        200,
    )
    assert config.fiat_currencies_accepted == ("USD", "VES")
    assert config.relays == ("wss://relay.mostro.network", "ws://127.0.0.1:7000")
    assert (config.name, config.website) == ("Test Mostro", "https://example.com")
    info = Event.from_json(OutboundMessage.objects.filter(kind=38385).latest("pk").event_json)
    tags = {tag[0]: tag[1] for tag in info.tags}
    assert (tags["fee"], tags["pow"], tags["fiat_currencies_accepted"]) == ("0.006", "2", "USD,VES")


def test_blank_fields_fall_back_to_the_environment(operator_client, settings, django_capture_on_commit_callbacks):
    settings.MOSTRO_FEE = 0.004
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(URL, {**VALID, "fee": ""})
    assert NodeSettings.objects.get().fee is None
    assert node_config().fee == 0.004
    page = operator_client.get(URL).content.decode()
    assert 'placeholder="0.004"' in page


@pytest.mark.parametrize("path", [URL, "/operator/"])
def test_operators_only(client, path):
    assert client.get(path).status_code == 302  # anonymous: to the login page
    solver = User.objects.create_user("sol", password="pw", is_staff=True)
    solver.groups.add(Group.objects.get_or_create(name="solver read-write")[0])
    client.force_login(solver)
    assert client.get(path).status_code == 403
    assert client.post(URL, VALID).status_code == 403
    assert NodeSettings.objects.count() == 0
    admin = User.objects.create_superuser("root", password="pw")
    client.force_login(admin)
    assert client.get(path).status_code == 200


def test_operator_group_exists_after_migrate():
    assert Group.objects.filter(name="operator").exists()
