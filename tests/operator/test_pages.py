"""The node's pages: landing, errors, favicon, the admin's front page, offline API docs,
the read-only order page, the one display format and the dashboard's new figures."""

import datetime as dt
import re

import pytest
from django.test import RequestFactory
from django.utils import timezone
from django.views.defaults import server_error

from disputes.models import Dispute
from mostro_site.operator import charts, dashboard
from nostrbridge.node_identity import encode_npub, node_pubkey
from orders import display
from tests.disputes.web import make_user
from tests.foundation.factories import make_order

pytestmark = pytest.mark.django_db
EXTERNAL_LOAD = re.compile(r'(?:src|href)="(?:https?:)?//(?!127\.0\.0\.1|localhost)[^"]+"[^>]*>', re.IGNORECASE)


def _loads_from_outside(html: str) -> list[str]:
    """<script src>, <img src>, <link href> pointing outside the node (plain <a> links are fine)."""
    tags = re.findall(r"<(?:script|img|link|iframe)\b[^>]*>", html, re.IGNORECASE)
    return [tag for tag in tags if EXTERNAL_LOAD.search(tag)]


def test_landing_page_is_public_and_says_what_the_node_is(client):
    response = client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert encode_npub(node_pubkey()) in html
    assert node_pubkey() in html
    assert "version 2 (NIP-44, kind 14)" in html
    assert "<code>ws://127.0.0.1:7000</code>" in html
    for link in ('href="/admin/"', 'href="/operator/"', 'href="/api/docs"'):
        assert link in html
    assert _loads_from_outside(html) == []


def test_favicon_and_error_pages(client, rf: RequestFactory):
    assert client.get("/favicon.ico")["Location"] == "/static/mostro/favicon.svg"
    missing = client.get("/no/such/page/")
    assert missing.status_code == 404
    assert "404 — nothing here" in missing.content.decode()
    assert "<code>/no/such/page/</code>" in missing.content.decode()
    client.force_login(make_user("sol", "rw"))
    forbidden = client.get("/operator/")
    assert forbidden.status_code == 403
    assert "403 — not allowed" in forbidden.content.decode()
    crashed = server_error(rf.get("/"))
    assert crashed.status_code == 500
    assert "500 — the node hit an error" in crashed.content.decode()


def test_admin_index_leads_with_trading_and_groups_internal_tables(operator_client, client):
    html = operator_client.get("/admin/").content.decode()
    captions = re.findall(r'class="section"[^>]*>([^<]+)</a>', html)
    assert captions[:3] == ["Trading", "Solvers and access", "Internal tables"]
    trading = html.split('id="content-main"')[1].split("Solvers and access")[0]
    assert trading.index(">Orders<") < trading.index(">Disputes<") < trading.index(">Operator dashboard<")
    assert ">API tokens<" in html
    assert ">Inbound Nostr events (inbox)<" in html
    client.force_login(make_user("sol", "rw"))
    solver = client.get("/admin/").content.decode()
    assert re.findall(r'class="section"[^>]*>([^<]+)</a>', solver)[0] == "Trading"
    assert "Operator dashboard" not in solver


def test_api_docs_are_served_from_the_node(client):
    html = client.get("/api/docs").content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert _loads_from_outside(html) == []
    assert client.get("/static/ninja/swagger-ui-bundle.js").status_code in (200, 404)  # served by the static handler


def test_order_page_is_a_grouped_view_with_links(node, fake_ln, operator_client):
    from tests.disputes.support import disputed_trade

    trade = disputed_trade(fake_ln)
    html = operator_client.get(f"/admin/orders/order/{trade.order.id}/change/").content.decode()
    assert 'name="_save"' not in html
    assert [
        h for h in re.findall(r"<h2[^>]*>([^<]+)</h2>", html) if h in ("Trade", "Parties", "Money", "Lightning")
    ] == [
        "Trade",
        "Parties",
        "Money",
        "Lightning",
    ]
    assert f'href="/admin/disputes/dispute/{trade.dispute.id}/change/" id="dispute-link"' in html
    assert f'href="/admin/orders/trader/{trade.refresh().master_buyer_pubkey}/change/"' in html
    assert '<strong id="order-status">dispute</strong>' in html
    assert "7,851 sats" in html
    assert trade.refresh().hold_invoice_preimage not in html
    listing = operator_client.get("/admin/orders/order/").content.decode()
    assert f'data-copy="{trade.order.id}"' in listing
    assert 'data-live-refresh="orders"' in listing


def test_one_display_format():
    assert (display.sats(1234567), display.sats(0), display.sats(None)) == ("1,234,567 sats", "0 sats", "—")
    assert (display.fiat(100, "USD"), display.fiat(1234.5, "EUR"), display.fiat(7, "")) == (
        "100 USD",
        "1,234.50 EUR",
        "7",
    )
    assert (display.percent(0.006), display.percent(0.3)) == ("0.6 %", "30 %")
    moment = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    assert display.when(moment) == "2026-03-04 05:06 UTC"
    assert [display.duration(dt.timedelta(seconds=s)) for s in (45, 600, 7500, 93_600)] == [
        "45 s",
        "10 min",
        "2 h 5 min",
        "1 d 2 h",
    ]
    assert display.short("0123456789abcdef") == "01234567…"
    assert 'data-copy="0123456789abcdef"' in display.copyable("0123456789abcdef")


def test_dashboard_escrow_payouts_fees_and_disputes(operator_client):
    now = timezone.now()
    make_order(status="active", amount_sats=10_000, fee_sats=30, invoice_held_at=now)
    make_order(status="fiat-sent", amount_sats=20_000, fee_sats=60, invoice_held_at=now)
    make_order(status="settled-hold-invoice", amount_sats=5_000, fee_sats=15, payout_payment_hash="ab" * 32)
    make_order(status="settled-hold-invoice", amount_sats=3_000, fee_sats=9, failed_payment=True)
    make_order(status="success", amount_sats=50_000, fee_sats=150, taken_at=now)
    disputed = make_order(status="canceled-by-admin")
    dispute = Dispute.objects.create(order=disputed, status="seller-refunded", initiator="buyer",
                                     initiator_pubkey="c" * 64, order_previous_status="active")  # fmt: skip
    Dispute.objects.filter(pk=dispute.pk).update(created_at=now - dt.timedelta(hours=3), resolved_at=now)
    assert dashboard.escrow_now() == dashboard.Amount(2, 30_090)
    payouts = dashboard.payouts()
    assert (payouts["in_flight"], payouts["failed"], payouts["waiting"]) == (
        dashboard.Amount(1, 4_985),
        dashboard.Amount(1, 2_991),
        dashboard.Amount(0, 0),
    )
    assert dashboard.fees_by_day(days=2, today=now.date()) == [
        (now.date() - dt.timedelta(days=1), 0),
        (now.date(), 300),
    ]
    opened_on = (now - dt.timedelta(hours=3)).date()
    assert dashboard.disputes_by_day(days=1, today=opened_on) == [(opened_on, 1)]
    resolved = dashboard.resolution_times(now=now)
    assert (resolved.count, resolved.median, resolved.longest) == (1, dt.timedelta(hours=3), dt.timedelta(hours=3))
    html = operator_client.get("/operator/").content.decode()
    assert '<strong id="fig-escrow">30,090 sats</strong>' in html
    assert '<strong id="fig-payouts">2</strong>' in html
    assert 'data-live-refresh="orders disputes"' in html


def test_vertical_chart_has_axis_ticks_values_and_dates():
    svg = charts.vbar_chart([("03-01", 0), ("03-02", 1234), ("03-03", 4321)], axis_label="sats", unit=" sats")
    assert ">5k</text>" in svg  # the axis top, rounded up from 4,321
    assert ">2.5k</text>" in svg
    assert ">4.3k</text>" in svg  # the value over the bar
    assert "<title>03-03: 4,321 sats</title>" in svg
    assert ">03-01</text>" in svg
