"""The finding of issue 13, first section, replayed: the admin's Node settings → Add form as every role."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from mostro_site.models import NodeSettings, SettingsAuditEntry
from tests.disputes.web import make_user

pytestmark = pytest.mark.django_db
ATTACK = {
    "fee": "1",
    "max_routing_fee": "50",
    "pow_bits": "255",
    "bitcoin_price_api_url": "http://attacker.example",
    "relays": "wss://attacker.example",
    "min_payment_amount_sats": "5000",
    "max_order_amount_sats": "1000",
    "fiat_currencies_accepted": "XXX,lol",
}


def _users():
    superuser = get_user_model().objects.create_superuser("root", password="pw")
    return [make_user("staff"), make_user("ro", "ro"), make_user("rw", "rw"), make_user("op", "operator"), superuser]


def test_nobody_writes_node_settings_through_the_admin(db):
    for user in _users():
        client = Client()
        client.force_login(user)
        assert client.post(reverse("admin:mostro_site_nodesettings_add"), ATTACK).status_code == 403
    assert (NodeSettings.objects.count(), SettingsAuditEntry.objects.count()) == (0, 0)
    NodeSettings.objects.create(pk=1)
    for user in get_user_model().objects.filter(is_staff=True):
        client = Client()
        client.force_login(user)
        url = reverse("admin:mostro_site_nodesettings_change", args=[1])
        assert client.post(url, ATTACK).status_code == 403
        assert (
            client.post(reverse("admin:mostro_site_nodesettings_delete", args=[1]), {"post": "yes"}).status_code == 403
        )
    row = NodeSettings.objects.get()
    assert (row.fee, row.max_routing_fee, row.pow_bits, row.relays) == (None, None, None, None)
    assert SettingsAuditEntry.objects.count() == 0


def test_operator_sees_the_settings_read_only_with_a_link_to_the_form(db):
    NodeSettings.objects.create(pk=1, fee=0.006)
    client = Client()
    client.force_login(make_user("op", "operator"))
    page = client.get(reverse("admin:mostro_site_nodesettings_change", args=[1]))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert '<a href="/operator/settings/">Edit on the settings page</a>' in page.content.decode()
    listing = client.get(reverse("admin:mostro_site_nodesettings_changelist")).content.decode()
    assert '<a href="/operator/settings/">Edit on the settings page</a>' in listing
