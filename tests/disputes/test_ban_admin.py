"""Bans in the admin: add through the service's rules, a second ban of a key refused as a form
error, lifting by operators only (the role rows: tests/security/authz_table.py)."""

import pytest
from django.urls import reverse

from orders.models import Ban
from orders.services.bans import ban_create
from tests.disputes.web import browser, make_user

pytestmark = pytest.mark.django_db
KEY = "ab" * 32


def test_add_then_a_second_ban_of_the_key_is_a_form_error(node):
    client = browser(make_user("ops", "operator"))
    added = client.post(reverse("admin:orders_ban_add"), {"pubkey": KEY.upper(), "reason": "spam"})
    assert added.status_code == 302
    assert list(Ban.objects.values_list("pubkey", "reason", "banned_by")) == [(KEY, "spam", "admin:ops")]

    again = client.post(reverse("admin:orders_ban_add"), {"pubkey": KEY, "reason": "more spam"})
    assert again.status_code == 200
    assert "This key is banned already" in " ".join(again.context["adminform"].form.errors["pubkey"])
    assert Ban.objects.count() == 1


def test_bad_input_is_a_form_error(node):
    client = browser(make_user("ops", "operator"))
    response = client.post(reverse("admin:orders_ban_add"), {"pubkey": "npub1abc", "reason": " "})
    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"pubkey", "reason"}
    assert Ban.objects.count() == 0


def test_operators_lift_solvers_cannot(node):
    ban = ban_create(pubkey=KEY, reason="spam", actor="admin:root")
    data = {"action": "lift_selected", "_selected_action": [ban.pk], "index": "0"}
    browser(make_user("sol", "rw")).post(reverse("admin:orders_ban_changelist"), data)
    ban.refresh_from_db()
    assert (ban.lifted_at, ban.lifted_by) == (None, "")

    browser(make_user("ops", "operator")).post(reverse("admin:orders_ban_changelist"), data)
    ban.refresh_from_db()
    assert ban.lifted_by == "admin:ops"
    assert ban.lifted_at is not None
    listing = browser(make_user("viewer", "operator")).get(reverse("admin:orders_ban_changelist"))
    assert "lifted" in listing.content.decode()
