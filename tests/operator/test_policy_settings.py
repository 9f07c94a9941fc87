"""Operator policies on /operator/settings/ (docs/OPERATIONS.md §Policies): the shared rules as
form errors, system checks and CHECK constraints; audit rows; live values; the dashboard's list
of refusals."""

import html

import pytest
from django.core.checks import Error
from django.db import IntegrityError, transaction
from django.utils import timezone

from mostro_site.checks import check_mostro_settings
from mostro_site.config import node_config
from mostro_site.models import NodeSettings, SettingsAuditEntry
from mostro_site.operator.refusals import Refusal, policy_refusals
from nostrbridge.models import InboundEvent
from tests.operator.test_settings_page import URL, VALID

pytestmark = pytest.mark.django_db

POLICIES = {
    "max_open_orders": "4",
    "take_cooldown_seconds": "60",
    "daily_volume_sats": "2000000",
    "counterparty_threshold_sats": "500000",
    "counterparty_min_trades": "5",
    "counterparty_min_rating": "4.5",
    "counterparty_min_age_days": "30",
    "auto_ban_disputes_lost": "4",
    "auto_ban_window_days": "90",
}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_open_orders", "-1", "-1 is outside 0–10000: orders on the book per trader (0 = no limit)."),
        ("counterparty_min_rating", "5.5", "5.5 is outside 0–5: rating a taker needs (0–5)."),
        ("auto_ban_window_days", "0", "0 is outside 1–3650: days in which those disputes count."),
        ("daily_volume_sats", "2100000000000001", "is outside 0–2.1e+15"),
    ],
)
def test_out_of_bounds_policy_values_are_form_errors_and_nothing_is_saved(operator_client, field, value, message):
    response = operator_client.post(URL, {**VALID, **POLICIES, field: value})
    errors = response.context["form"].errors
    assert list(errors) == [field], errors
    assert message in " ".join(errors[field])
    assert message in html.unescape(response.content.decode())
    assert (NodeSettings.objects.count(), SettingsAuditEntry.objects.count()) == (0, 0)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("MOSTRO_MAX_OPEN_ORDERS", -1), ("MOSTRO_COUNTERPARTY_MIN_RATING", 6.0), ("MOSTRO_AUTO_BAN_WINDOW_DAYS", 0)],
)
def test_system_checks_refuse_the_same_environment_values(settings, setting, value):
    setattr(settings, setting, value)
    problems = [p for p in check_mostro_settings() if isinstance(p, Error) and setting in p.msg]
    assert len(problems) == 1


def test_the_database_refuses_a_value_written_behind_the_model():
    with pytest.raises(IntegrityError), transaction.atomic():
        NodeSettings.objects.create(pk=1, counterparty_min_rating=7.0)
    assert NodeSettings.objects.count() == 0


def test_policies_are_saved_audited_and_applied_live(
    operator_client, operator_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(URL, {**VALID, **POLICIES})
    assert response.status_code == 302
    audited = {
        (e.field, e.before, e.after) for e in SettingsAuditEntry.objects.filter(field__in=POLICIES, user=operator_user)
    }
    assert audited == {(field, "", str(float(v)) if "." in v else v) for field, v in POLICIES.items()}
    config = node_config(fresh=True)
    assert (config.max_open_orders, config.counterparty_min_rating, config.auto_ban_window_days) == (4, 4.5, 90)
    page = operator_client.get(URL).content.decode()
    assert "after 4 disputes lost in 90 days" in page
    assert "above 500000 sats: 5 trades, rating 4.5, 30 days" in page


def _refused(event_id: str, action: str, note: str) -> None:
    InboundEvent.objects.create(
        event_id=event_id * 64, kind=14, pubkey="aa" * 32, event_created_at=1, raw="{}", status="done",
        action=action, drop_reason=note, processed_at=timezone.now(),
    )  # fmt: skip


def test_dashboard_lists_recent_refusals_by_policy(operator_client):
    _refused("1", "new-order", "cant-do not_authorized policy:ban key:0123456789abcdef")
    _refused("2", "take-sell", "cant-do too_many_requests policy:take-cooldown key:fedcba9876543210")
    _refused("3", "take-buy", "cant-do not_authorized policy:ban key:0123456789abcdef")
    _refused("4", "take-sell", "cant-do not_found")  # not a policy
    recent, counts = policy_refusals()
    assert [(r.action, r.reason, r.policy, r.key_prefix) for r in recent] == [
        ("take-buy", "not_authorized", "ban", "0123456789abcdef"),
        ("take-sell", "too_many_requests", "take-cooldown", "fedcba9876543210"),
        ("new-order", "not_authorized", "ban", "0123456789abcdef"),
    ]
    assert all(isinstance(r, Refusal) for r in recent)
    assert counts == {"ban": 2, "take-cooldown": 1}
    page = operator_client.get("/operator/").content.decode()
    assert "Last 24 hours: ban 2 · take-cooldown 1." in page
    assert "fedcba9876543210…" in page
