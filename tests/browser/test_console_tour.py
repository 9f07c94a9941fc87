"""The solver console end to end, in Chromium, against a real node (console_scenario.py).

A trade between two nostr-sdk traders ends in a dispute; the solver (a key held by the
console) takes it, both parties learn its key from `admin-took-dispute`, and a conversation
runs both ways with each party: nostr-sdk clients with their own ECDH/HKDF (chat_party.py)
play buyer and seller over the relay. Then the operator visits every page, and each live
update (orders list, order page, dashboard, chat, dispute queue) is awaited without a reload.
Screenshots: artifacts/browser/tour/ (`make screenshots` keeps them in docs/screens/).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.browser.console_scenario import (
    BUYER_HELLO,
    BUYER_REPLY,
    SELLER_TEXT,
    SELLER_THANKS,
    run_browser,
    start_tour,
    stop_tour,
)
from tests.browser.test_solver_console import _ensure_browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "browser" / "tour"

# The node runs on its own SQLite file whatever the suite's database: the PostgreSQL pass of
# scripts/run_tests.sh would repeat the very same run.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="same run as the SQLite pass"),
]


@pytest.fixture
async def tour(tmp_path):
    _ensure_browser()
    tour = await start_tour(tmp_path / "node")
    yield tour
    await stop_tour(tour)


async def test_solver_chats_with_both_parties_and_every_page_is_live(tour):
    seen = await run_browser(tour, SHOTS)
    node = tour.net.node

    # Nothing was loaded from outside the node, and the lists fit 1280 px.
    assert seen["external"] == []
    assert all(seen["pages"].values()), seen["pages"]

    # The dispute page before taking it: facts, the escrow clock, why the chat is closed.
    before = seen["before_take"]
    assert before["chat"] == "Take the dispute to talk to the parties."
    # Simnet adds 3 blocks of route slack to the 144-block hold invoice delta.
    assert re.fullmatch(r"block \d+: 147 blocks left, expires in 1 d 0 h \(≈ .+ UTC\)", before["escrow"]), before[
        "escrow"
    ]
    assert "level-ok" in before["guardian_class"]
    assert "Buyer · taker · opened the dispute" in before["parties"]
    assert "Seller · maker" in before["parties"]
    assert seen["take_hidden"] is True
    assert seen["queue_live"] == "Waiting for a solver0 In progress1 Held by you1 Resolved in the last 24 h0"
    assert seen["dispute_notice"].startswith("This dispute changed: it is now in-progress, held by ")
    assert seen["dispute_notice"].endswith("Reload to see the latest")

    # Both parties were told the console's solver key, and talked with it.
    assert seen["announced"] == [tour.solver_pubkey, tour.solver_pubkey]
    buyer, seller = tour.parties["buyer"], tour.parties["seller"]
    assert [h.text for h in buyer.heard] == [BUYER_HELLO]
    assert [h.text for h in seller.heard] == [SELLER_THANKS]
    assert [(m["direction"], m["state"], m["text"]) for m in seen["buyer_chat"]] == [
        ("out", "accepted", BUYER_HELLO),
        ("in", "received", BUYER_REPLY),
    ]
    assert seen["first_state"] in ("queued", "sent", "accepted")
    # The seller's text and image leave within the same second: the page orders by the messages'
    # own created_at, so which of the two comes first is the relay's delivery order.
    assert len(seen["seller_text"]) == 2, seen["seller_text"]
    assert SELLER_TEXT in seen["seller_text"]
    assert tour.blobs.requests == ["/statement-blob"]  # fetched by the node, once, for the page

    # Stored once each, sealed at rest, and never with the node's key.
    rows = node.query("SELECT direction, party, sender_pubkey, body_sealed FROM disputes_chatmessage ORDER BY id")
    assert [(d, p) for d, p, _, _ in rows] == [("out", "buyer"), ("in", "buyer"), ("in", "seller"), ("in", "seller"),
                                               ("out", "seller")]  # fmt: skip
    assert {s for d, _, s, _ in rows if d == "out"} == {tour.solver_pubkey}
    assert all(body.startswith("v1.") and "Banco" not in body for *_, body in rows)
    assert tour.net.node_pubkey not in {s for _, _, s, _ in rows}

    # Settled through the confirmation page.
    assert "is paid" in seen["settle_confirmation"]
    assert f"Dispute {tour.dispute_id} settled to the buyer." in seen["after_settle"]
    assert seen["key_holder"].startswith("the console (sealed at rest)")
    assert seen["forbidden"] == {"status": 403, "title": "Not allowed"}

    # The operator's pages.
    assert "npub1" in seen["landing"]
    assert seen["index_sections"][:2] == ["Trading", "Solvers and access"]
    assert seen["index_sections"][-1] == "Internal tables"
    assert seen["orders_list_live"] is True
    assert (seen["order_page_before"], seen["order_page_after"]) == ("pending", "waiting-buyer-invoice")
    assert seen["order_page_save_buttons"] == 0
    assert seen["order_groups"][:4] == ["Trade", "Parties", "Money", "Lightning"]
    assert seen["dispute_link"] is True
    assert seen["dashboard_live"] is True
    assert seen["dashboard"]["charts"] >= 3
    assert seen["operator_reads_chat"] == 2
    assert seen["api_docs"].startswith("Mostro admin API")
    assert (seen["not_found"]["status"], seen["not_found"]["title"]) == (404, "Not found")
    assert len(list(SHOTS.glob("*.png"))) == 21  # every page: docs/screens/ via `make screenshots`
