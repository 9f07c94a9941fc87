"""REST reads: orders, disputes, node info, stats, dev-fee ledger, schema and docs."""

import pytest
from django.test import Client

from devfee.models import DevFeePayment, DevFeeStatus
from nostrbridge.node_identity import node_pubkey
from tests.disputes.support import disputed_trade
from tests.disputes.web import bearer, make_user
from tests.foundation.factories import make_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def headers(db):
    return bearer(make_user("op", "operator"))


def get(url, headers, **params):
    response = Client().get(f"/api{url}", params, **headers)
    assert response.status_code == 200, response.content
    return response.json()


def test_orders_filter_and_paginate(headers):
    for index in range(3):
        make_order(fiat_code="USD", fiat_amount=10 + index)
    make_order(fiat_code="EUR", kind="buy", status="success")

    page = get("/orders", headers, fiat_code="usd", limit=2, offset=1)
    assert (page["count"], len(page["items"])) == (3, 2)
    assert [o["kind"] for o in get("/orders", headers, kind="buy")["items"]] == ["buy"]
    assert get("/orders", headers, status="success")["items"][0]["fiat_code"] == "EUR"
    response = Client().get("/api/orders", {"status": "nonsense"}, **headers)
    assert (response.status_code, response.json()["code"]) == (422, "invalid_request")


def test_order_detail_names_its_dispute(node, fake_ln, headers):
    trade = disputed_trade(fake_ln)
    order = get(f"/orders/{trade.order.id}", headers)
    assert (order["status"], order["dispute_id"], order["amount_sats"]) == ("dispute", str(trade.dispute.id), 7851)
    assert "hold_invoice_preimage" not in order
    assert "buyer_invoice" not in order
    response = Client().get(f"/api/orders/{trade.dispute.id}", **headers)
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_disputes_filter_by_status_solver_and_currency(node, fake_ln, headers):
    trade = disputed_trade(fake_ln)
    Client().post(f"/api/disputes/{trade.dispute.id}/take", **headers)
    assert get("/disputes", headers, status="in-progress")["count"] == 1
    assert get("/disputes", headers, status="initiated")["count"] == 0
    assert get("/disputes", headers, solver_pubkey=node_pubkey())["count"] == 1
    assert get("/disputes", headers, unassigned="true")["count"] == 0
    assert get("/disputes", headers, fiat_code="VES")["count"] == 1
    assert get("/disputes", headers, fiat_code="USD")["count"] == 0
    detail = get(f"/disputes/{trade.dispute.id}", headers)
    assert (detail["order_status"], detail["initiator"], detail["fiat_amount"]) == ("dispute", "buyer", 100)


def test_node_info_reports_lightning_or_unknown(node, fake_ln, headers):
    info = get("/node", headers)
    assert (info["pubkey"], info["lightning_status"], info["lightning"]["network"]) == (node_pubkey(), "ok", "regtest")
    fake_ln.set_unavailable(True)
    info = get("/node", headers)
    assert (info["lightning_status"], info["lightning"]) == ("unknown", None)


def test_stats_count_by_status_and_sum_completed_volume(headers):
    make_order(status="success", amount_sats=1000, fee_sats=3, fiat_code="USD", fiat_amount=5)
    make_order(status="success", amount_sats=2000, fee_sats=6, fiat_code="USD", fiat_amount=9)
    make_order(status="pending")
    stats = get("/stats", headers)
    assert stats["orders_by_status"] == {"success": 2, "pending": 1}
    assert (stats["completed_volume_sats"], stats["completed_volume_fiat"], stats["fees_earned_sats"]) == (
        3000,
        {"USD": 14},
        18,
    )


def test_dev_fee_ledger_lists_rows_and_totals(headers):
    paid = DevFeePayment.objects.create(
        order=make_order(status="success"), amount_sats=7, status=DevFeeStatus.PAID, destination="dev@x"
    )
    DevFeePayment.objects.create(order=make_order(status="success"), amount_sats=5, destination="dev@x")
    ledger = get("/dev-fees", headers)
    assert (ledger["count"], ledger["paid_sats"], ledger["unpaid_sats"]) == (2, 7, 5)
    assert get("/dev-fees", headers, status="paid")["items"][0]["order_id"] == str(paid.order_id)


def test_read_only_solver_reads_but_the_ledger_is_for_operators(db):
    headers = bearer(make_user("reader", "ro"))
    assert Client().get("/api/disputes", **headers).status_code == 200
    assert Client().get("/api/orders", **headers).status_code == 200
    response = Client().get("/api/dev-fees", **headers)
    assert (response.status_code, response.json()["code"]) == (403, "not_authorized")


def test_schema_and_docs_are_served(db):
    schema = Client().get("/api/openapi.json").json()
    take = schema["paths"]["/api/disputes/{dispute_id}/take"]["post"]["responses"]
    assert set(take) == {"200", "401", "403", "404", "409", "422", "503"}
    assert Client().get("/api/docs").status_code == 200
