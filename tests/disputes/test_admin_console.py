"""The solver console in the Django admin: queue, dispute page, confirmation, then action."""

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from disputes.models import Dispute, DisputeLog
from mostro_site.models import ApiToken
from nostrbridge.models import OutboundMessage
from nostrbridge.node_identity import node_pubkey
from orders.models import OrderStatusChange, Trader
from tests.disputes.support import disputed_trade, register, solver_client, take
from tests.disputes.web import browser, linked_pubkey, make_user
from tests.orders.services.support import ln_writes, snapshot

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/disputes/dispute/"


@pytest.fixture
def trade(node, fake_ln):
    return disputed_trade(fake_ln)


def page(dispute, action="change") -> str:
    return reverse(f"admin:disputes_dispute_{action}", args=[dispute.pk])


def test_queue_filters_and_search(trade, fake_ln):
    other = disputed_trade(fake_ln, fresh=True)
    client = browser(make_user("op", "operator"))
    client.post(reverse("admin:disputes_dispute_take", args=[other.dispute.pk]), {"post": "yes"})

    def listed(**params):
        response = client.get(CHANGELIST, params)
        assert response.status_code == 200
        return {d.pk for d in response.context["cl"].result_list}

    both = {trade.dispute.pk, other.dispute.pk}
    assert listed() == both
    assert listed(status="in-progress") == {other.dispute.pk}
    assert listed(solver="none") == {trade.dispute.pk}
    assert listed(solver="me") == {other.dispute.pk}
    assert listed(solver=node_pubkey()) == {other.dispute.pk}
    assert listed(currency="VES") == both
    assert listed(age="1h") == both
    assert listed(age="older") == set()
    assert listed(q=str(trade.order.id)) == {trade.dispute.pk}
    assert listed(q=trade.buyer_key[:20]) == {trade.dispute.pk}
    content = client.get(CHANGELIST).content.decode()
    assert f'data-dispute-id="{trade.dispute.pk}"' in content
    assert "disputes/live.js" in content


def test_dispute_page_shows_timeline_parties_amounts_and_invoice_state(trade, fake_ln):
    client = browser(make_user("sol", "rw"))
    response = client.get(page(trade.dispute))
    assert response.status_code == 200
    ctx = response.context
    assert ctx["invoice_state"] == "ACCEPTED"
    whats = [row["what"] for row in ctx["timeline"]]
    assert whats[:2] == ["order ∅ → pending", "order pending → waiting-payment"]
    assert "order fiat-sent → dispute" in whats
    assert "dispute opened" in whats
    assert ctx["money"] == {
        "amount_sats": 7851,
        "fee_sats": 24,
        "escrow_sats": 7875,
        "buyer_payout_sats": 7827,
        "node_fee_sats": 48,
        "seller_refund_sats": 7875,
        "fiat": "100 VES",
    }
    html = response.content.decode()
    assert trade.buyer_key in html
    assert trade.seller_key in html
    assert trade.order.hold_invoice_preimage not in html  # hashes shown, preimages never
    assert 'id="action-take"' in html
    assert 'id="action-settle"' not in html  # not assigned yet: take first
    client.post(page(trade.dispute, "take"), {"post": "yes"})
    html = client.get(page(trade.dispute)).content.decode()
    assert 'id="action-settle"' in html
    assert 'id="action-refund"' in html


def test_dispute_page_says_unknown_when_lightning_is_down(trade, fake_ln):
    fake_ln.set_unavailable(True)
    response = browser(make_user("sol", "rw")).get(page(trade.dispute))
    assert response.context["invoice_state"] == "unknown"
    assert "unknown — the Lightning node could not be reached" in response.content.decode()


def test_read_only_solver_sees_take_but_not_the_money_actions(trade):
    html = browser(make_user("reader", "ro")).get(page(trade.dispute)).content.decode()
    assert 'id="action-take"' in html
    assert 'id="action-settle"' not in html


def test_take_then_settle_through_confirmation_pages(trade, fake_ln, django_capture_on_commit_callbacks):
    user = make_user("sol", "rw")
    client = browser(user)

    confirm = client.get(page(trade.dispute, "take"))
    assert confirm.status_code == 200
    assert "no funds move" in confirm.content.decode()
    assert trade.refresh_dispute().status == "initiated"  # GET changes nothing
    response = client.post(page(trade.dispute, "take"), {"post": "yes"}, follow=True)
    assert f"Dispute {trade.dispute.pk} taken." in [str(m) for m in response.context["messages"]]
    assert trade.refresh_dispute().solver_pubkey == linked_pubkey(user)

    confirm = client.get(page(trade.dispute, "settle")).content.decode()
    assert "hold invoice of 7875 sats is settled" in confirm
    assert "is paid 7827 sats" in confirm
    assert trade.buyer_key[:12] in confirm
    with django_capture_on_commit_callbacks(execute=True):
        client.post(page(trade.dispute, "settle"), {"post": "yes"})

    order, dispute = trade.refresh(), trade.refresh_dispute()
    assert (order.status, dispute.status) == ("success", "settled")
    changes = list(OrderStatusChange.objects.filter(order=order).values_list("to_status", "actor"))[-2:]
    assert changes == [("settled-hold-invoice", "admin:sol"), ("success", "lightning")]
    assert list(DisputeLog.objects.filter(dispute=dispute).values_list("action", "actor"))[1:] == [
        ("taken", "admin:sol"),
        ("settled", "admin:sol"),
    ]
    assert OutboundMessage.objects.filter(order_id=order.id, action="admin-settled").count() == 3
    assert LogEntry.objects.filter(object_id=str(dispute.pk)).count() == 2


def test_refund_through_the_changelist_action(trade, fake_ln):
    client = browser(make_user("op", "operator"))
    client.post(page(trade.dispute, "take"), {"post": "yes"})
    data = {"action": "refund_selected", "_selected_action": [str(trade.dispute.pk)]}

    confirm = client.post(CHANGELIST, data)
    assert confirm.status_code == 200
    assert "the seller" in confirm.content.decode()
    assert "gets all 7875 sats back" in confirm.content.decode()
    assert trade.refresh().status == "dispute"

    client.post(CHANGELIST, {**data, "post": "yes"})
    order = trade.refresh()
    assert (order.status, trade.refresh_dispute().status) == ("canceled-by-admin", "seller-refunded")
    assert OrderStatusChange.objects.filter(order=order).last().actor == "admin:op"
    assert OutboundMessage.objects.filter(order_id=order.id, kind=38383).last().event_json.count('"canceled"') == 1


def test_refusal_is_reported_and_nothing_moves(trade, fake_ln):
    holder = register(solver_client())
    take(holder, trade.dispute)
    client = browser(make_user("rival", "rw"))
    before, outbox, writes = snapshot(trade.order), OutboundMessage.objects.count(), ln_writes(fake_ln)
    response = client.post(page(trade.dispute, "settle"), {"post": "yes"}, follow=True)
    assert any("refused (is_not_your_dispute)" in str(m) for m in response.context["messages"])
    assert (snapshot(trade.order), OutboundMessage.objects.count(), ln_writes(fake_ln)) == (before, outbox, writes)


def test_read_only_solver_cannot_reach_the_money_actions(trade, fake_ln):
    client = browser(make_user("reader", "ro"))
    before = snapshot(trade.order)
    assert client.get(page(trade.dispute, "settle")).status_code == 403
    assert client.post(page(trade.dispute, "refund"), {"post": "yes"}).status_code == 403
    data = {"action": "settle_selected", "_selected_action": [str(trade.dispute.pk)], "post": "yes"}
    client.post(CHANGELIST, data)
    assert snapshot(trade.order) == before


def test_lightning_down_is_reported_without_moving_anything(trade, fake_ln):
    client = browser(make_user("op", "operator"))
    client.post(page(trade.dispute, "take"), {"post": "yes"})
    fake_ln.set_unavailable(True)
    response = client.post(page(trade.dispute, "settle"), {"post": "yes"}, follow=True)
    assert any("could not be reached; nothing moved" in str(m) for m in response.context["messages"])
    assert trade.refresh().status == "dispute"


def test_api_token_is_shown_once_and_stored_hashed(db):
    operator = make_user("op", "operator")
    client = browser(operator)
    data = {"name": "script", "scope": "read", "lifetime_days": "30"}
    response = client.post(reverse("admin:mostro_site_apitoken_add"), data, follow=True)
    [message] = [str(m) for m in response.context["messages"] if "shown only once" in str(m)]
    key = message.rsplit(": ", 1)[1]
    token = ApiToken.objects.get(name="script")
    assert (token.key_hash, token.prefix) == (ApiToken.hash_key(key), key[:8])
    assert key not in client.get(reverse("admin:mostro_site_apitoken_change", args=[token.pk])).content.decode()
    client.post(
        reverse("admin:mostro_site_apitoken_changelist"), {"action": "revoke_selected", "_selected_action": [token.pk]}
    )
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_staff_without_dispute_permissions_sees_nothing(trade):
    client = browser(make_user("nobody"))
    assert client.get(CHANGELIST).status_code == 403
    assert Dispute.objects.get(pk=trade.dispute.pk).status == "initiated"


def test_operator_withdraws_a_solver_role(db, node):
    solver = make_user("sol", "rw")
    client = browser(make_user("op", "operator"))
    data = {"action": "withdraw_solver_role", "_selected_action": [solver.solver_link.pk]}
    client.post(reverse("admin:disputes_solverlink_changelist"), data)
    assert not Trader.objects.get(pk=linked_pubkey(solver)).is_solver
