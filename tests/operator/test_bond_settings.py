"""The anti-abuse bond's settings (docs/PROTOCOL.md §Bonds): one rule set for the page, the
service, the system checks and the database; live application; the info event's tags."""

import html
from pathlib import Path

import pytest
from django.core.checks import Error
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from mostro_site.checks import check_mostro_settings
from mostro_site.config import node_config
from mostro_site.importer.settings_toml import read_settings
from mostro_site.models import NodeSettings, SettingsAuditEntry
from mostro_site.operator.services import node_settings_update
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.nip01 import Event
from tests.operator.test_settings_page import URL, VALID

pytestmark = pytest.mark.django_db

BOND = {
    "bond_enabled": "true",
    "bond_apply_to": "both",
    "bond_amount_pct": "0.02",
    "bond_base_amount_sats": "1500",
    "bond_slash_on_waiting_timeout": "true",
    "bond_slash_node_share_pct": "0.25",
    "bond_payout_invoice_window_seconds": "120",
    "bond_payout_max_retries": "3",
    "bond_payout_claim_window_days": "7",
}


def _bond_tags() -> list[list[str]]:
    info = Event.from_json(OutboundMessage.objects.filter(kind=38385).latest("pk").event_json)
    at = [tag[0] for tag in info.tags].index("bond_enabled")
    return [tag for tag in info.tags[at:] if tag[0].startswith("bond_")]


def test_environment_defaults_are_the_issue_defaults_and_bonds_are_off():
    config = node_config()
    assert (
        config.bond_enabled,
        config.bond_apply_to,
        config.bond_amount_pct,
        config.bond_base_amount_sats,
        config.bond_slash_on_waiting_timeout,
        config.bond_slash_node_share_pct,
        config.bond_payout_invoice_window_seconds,
        config.bond_payout_max_retries,
        config.bond_payout_claim_window_days,
    ) == (False, "take", 0.01, 1000, False, 0.5, 300, 5, 15)
    assert (config.bonds_apply_to("take"), config.bonds_apply_to("make")) == (False, False)


def test_page_saves_bond_settings_live_audits_them_and_republishes_the_info_event(
    operator_client, operator_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(URL, {**VALID, **BOND})
    assert response.status_code == 302
    config = node_config()
    assert (config.bond_enabled, config.bond_apply_to, config.bond_amount_pct, config.bond_base_amount_sats) == (
        True,
        "both",
        0.02,
        1500,
    )
    assert (config.bonds_apply_to("take"), config.bonds_apply_to("make")) == (True, True)
    audited = {(e.field, e.before, e.after) for e in SettingsAuditEntry.objects.filter(field__startswith="bond_")}
    assert audited == {
        ("bond_enabled", "", "True"),
        ("bond_apply_to", "", "both"),
        ("bond_amount_pct", "", "0.02"),
        ("bond_base_amount_sats", "", "1500"),
        ("bond_slash_on_waiting_timeout", "", "True"),
        ("bond_slash_node_share_pct", "", "0.25"),
        ("bond_payout_invoice_window_seconds", "", "120"),
        ("bond_payout_max_retries", "", "3"),
        ("bond_payout_claim_window_days", "", "7"),
    }
    assert _bond_tags() == [
        ["bond_enabled", "true"],
        ["bond_amount_pct", "0.02"],
        ["bond_base_amount_sats", "1500"],
        ["bond_apply_to", "both"],
        ["bond_slash_on_waiting_timeout", "true"],
        ["bond_slash_node_share_pct", "0.25"],
        ["bond_payout_claim_window_days", "7"],
    ]
    page = operator_client.get(URL).content.decode()
    assert page.count('<option value="true" selected>On</option>') == 2  # both switches show the saved value


def test_switching_bonds_off_leaves_only_bond_enabled_false(operator_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(URL, {**VALID, **BOND, "bond_enabled": "false"})
    assert node_config().bond_enabled is False
    assert _bond_tags() == [["bond_enabled", "false"]]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"bond_apply_to": "all"}, "bond_apply_to", "all is not one of the available choices"),
        ({"bond_amount_pct": "1.5"}, "bond_amount_pct", "1.5 is outside 0–1"),
        ({"bond_amount_pct": "-0.01"}, "bond_amount_pct", "-0.01 is outside 0–1"),
        ({"bond_slash_node_share_pct": "1.01"}, "bond_slash_node_share_pct", "1.01 is outside 0–1"),
        ({"bond_base_amount_sats": "0"}, "bond_base_amount_sats", "0 is outside 1 sat – 21M BTC"),
        ({"bond_payout_invoice_window_seconds": "0"}, "bond_payout_invoice_window_seconds", "0 must be at least 1"),
        ({"bond_payout_max_retries": "0"}, "bond_payout_max_retries", "0 must be at least 1"),
        ({"bond_payout_claim_window_days": "0"}, "bond_payout_claim_window_days", "0 must be at least 1"),
    ],
)
def test_each_bond_rule_is_a_clear_form_error_and_nothing_is_saved(operator_client, changes, field, message):
    response = operator_client.post(URL, {**VALID, **BOND, **changes})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == [field], errors
    assert message in " ".join(errors[field])
    assert message in html.unescape(response.content.decode())
    assert (NodeSettings.objects.count(), SettingsAuditEntry.objects.count()) == (0, 0)


def test_service_refuses_a_bad_apply_to_and_writes_nothing():
    with pytest.raises(ValidationError) as refused:
        node_settings_update(user=None, values={"bond_apply_to": "all"})
    assert refused.value.message_dict == {"bond_apply_to": ["'all' is not one of take, make, both (who posts a bond)."]}
    assert (NodeSettings.objects.count(), SettingsAuditEntry.objects.count()) == (0, 0)


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"bond_apply_to": "all"}, "node_settings_bond_apply_to"),
        ({"bond_amount_pct": 1.01}, "node_settings_bond_amount_pct_range"),
        ({"bond_slash_node_share_pct": -0.5}, "node_settings_bond_slash_node_share_pct_range"),
        ({"bond_base_amount_sats": 0}, "node_settings_bond_base_amount_sats_range"),
        ({"bond_payout_invoice_window_seconds": 0}, "node_settings_bond_payout_invoice_window_seconds_range"),
        ({"bond_payout_max_retries": 0}, "node_settings_bond_payout_max_retries_range"),
        ({"bond_payout_claim_window_days": 0}, "node_settings_bond_payout_claim_window_days_range"),
    ],
)
def test_database_refuses_every_bond_bound(values, constraint):
    NodeSettings.objects.create(pk=1)
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        NodeSettings.objects.filter(pk=1).update(**values)
    row = NodeSettings.objects.get()
    assert [getattr(row, name) for name in values] == [None] * len(values)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("MOSTRO_ANTI_ABUSE_BOND_APPLY_TO", "all", "MOSTRO_ANTI_ABUSE_BOND_APPLY_TO: 'all' is not one of"),
        ("MOSTRO_ANTI_ABUSE_BOND_SLASH_NODE_SHARE_PCT", 2.0, "MOSTRO_ANTI_ABUSE_BOND_SLASH_NODE_SHARE_PCT: 2.0 is"),
        ("MOSTRO_ANTI_ABUSE_BOND_BASE_AMOUNT_SATS", 0, "MOSTRO_ANTI_ABUSE_BOND_BASE_AMOUNT_SATS: 0 is outside"),
    ],
)
def test_system_checks_refuse_what_the_page_refuses(settings, setting, value, message):
    setattr(settings, setting, value)
    problems = [p for p in check_mostro_settings() if isinstance(p, Error) and p.id == "mostro.E030"]
    assert [problem.msg[: len(message)] for problem in problems] == [message]


def test_import_mostrod_carries_the_bond_section_into_the_form(tmp_path: Path):
    toml = tmp_path / "settings.toml"
    toml.write_text(
        '[mostro]\nfee = 0.006\n[nostr]\nrelays = ["wss://relay.example"]\n'
        '[anti_abuse_bond]\nenabled = true\napply_to = "make"\namount_pct = 0.03\nbase_amount_sats = 2000\n'
        "slash_on_waiting_timeout = true\nslash_node_share_pct = 1.0\npayout_invoice_window_seconds = 60\n"
        "payout_max_retries = 2\npayout_claim_window_days = 30\nunknown_key = 1\n"
    )
    imported = read_settings(toml)
    assert imported.form.is_valid(), imported.form.errors
    values = imported.form.model_values()
    assert {k: v for k, v in values.items() if k.startswith("bond_")} == {
        "bond_enabled": True,
        "bond_apply_to": "make",
        "bond_amount_pct": 0.03,
        "bond_base_amount_sats": 2000,
        "bond_slash_on_waiting_timeout": True,
        "bond_slash_node_share_pct": 1.0,
        "bond_payout_invoice_window_seconds": 60,
        "bond_payout_max_retries": 2,
        "bond_payout_claim_window_days": 30,
    }
    assert not any("anti_abuse_bond" in note for note in imported.notes)
