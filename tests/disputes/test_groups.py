"""Staff groups, their permissions, and linking a login to a solver pubkey."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from disputes.models import SolverLink
from mostro_site.staff import ensure_groups
from nostrbridge.protocol.keys import Keys
from orders.models import SolverCategory, Trader
from tests.disputes.web import make_user

pytestmark = pytest.mark.django_db


def _perms(name: str) -> set[str]:
    group = Group.objects.get(name=name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_groups_grant_read_write_and_operator_levels():
    ensure_groups()  # idempotent: a second run changes nothing
    read, read_write, operator = _perms("solver read"), _perms("solver read-write"), _perms("operator")
    assert read == {
        "disputes.view_dispute",
        "disputes.take_dispute",
        "orders.view_order",
        "orders.view_orderstatuschange",
        "mostro_site.view_apitoken",
        "mostro_site.add_apitoken",
    }
    assert read_write == read | {"disputes.resolve_dispute", "orders.view_ban", "orders.add_ban"}
    assert operator == read_write | {
        "orders.change_ban",
        "disputes.manage_solvers",
        "disputes.view_solverlink",
        "disputes.add_solverlink",
        "disputes.change_solverlink",
        "disputes.delete_solverlink",
        "orders.view_trader",
        "orders.view_btcprice",
        "devfee.view_devfeepayment",
        "orders.view_bond",
        "mostro_site.view_nodesettings",
        "mostro_site.view_settingsauditentry",
        "nostrbridge.view_outboundmessage",
        "nostrbridge.view_inboundevent",
        "nostrbridge.view_relayhealth",
    }
    assert "disputes.manage_solvers" not in read_write


@pytest.mark.parametrize(("role", "category"), [("rw", SolverCategory.READ_WRITE), ("ro", SolverCategory.READ)])
def test_linking_a_user_registers_its_key_at_its_groups_level(node, role, category):
    operator = make_user("op", "operator")
    solver = make_user("sol", role)
    solver.solver_link.delete()
    pubkey = Keys.generate().public_key_hex
    client = Client()
    client.force_login(operator)

    response = client.post(reverse("admin:disputes_solverlink_add"), {"user": solver.pk, "pubkey": pubkey})

    assert response.status_code == 302
    assert SolverLink.objects.get(user=solver).pubkey == pubkey
    trader = Trader.objects.get(pk=pubkey)
    assert (trader.is_solver, trader.solver_category) == (True, category)
