"""The routing table: every action a client may send has a handler or is refused on purpose.

The composition root (`mostro_site.wiring.bridge_wiring`) is the one action → handler table; the
table of docs/PROTOCOL.md §Actions documents it. Both are pinned here against the protocol's list
of client-to-node actions (`nostrbridge.protocol.enums.CLIENT_ACTIONS`).
"""

import importlib
import inspect
import re
import uuid
from pathlib import Path

import pytest

from mostro_site.wiring import bridge_wiring
from nostrbridge.models import InboundEvent, InboundStatus, OutboundMessage
from nostrbridge.protocol.enums import CLIENT_ACTIONS, Action, CantDoReason
from nostrbridge.protocol.payloads import (
    CashuLockProofPayload,
    PaymentRequestPayload,
    TextMessagePayload,
)
from nostrbridge.protocol.structs import CashuLockProof
from tests.trade.harness import TradeClient

ROOT = Path(__file__).resolve().parents[2]
# Client actions the node answers without a handler: `pay-invoice` with `invalid_action` (as
# mostrod), the rest silently (Cashu is not enabled; `send-dm` is client-to-client).
REFUSED = {"pay-invoice", "add-cashu-escrow", "send-dm"}
HANDLED = {
    "new-order": "orders/handlers/new_order.py",
    "take-sell": "orders/handlers/take_sell.py",
    "take-buy": "orders/handlers/take_buy.py",
    "add-invoice": "orders/handlers/add_invoice.py",
    "add-bond-invoice": "orders/handlers/add_bond_invoice.py",
    "fiat-sent": "orders/handlers/fiat_sent.py",
    "release": "orders/handlers/release.py",
    "cancel": "orders/handlers/cancel.py",
    "rate-user": "orders/handlers/rate_user.py",
    "orders": "orders/handlers/orders.py",
    "last-trade-index": "orders/handlers/last_trade_index.py",
    "trade-pubkey": "orders/handlers/trade_pubkey.py",
    "dispute": "disputes/handlers/dispute.py",
    "admin-take-dispute": "disputes/handlers/admin_take_dispute.py",
    "admin-settle": "disputes/handlers/admin_settle.py",
    "admin-cancel": "disputes/handlers/admin_cancel.py",
    "admin-add-solver": "disputes/handlers/admin_add_solver.py",
    "restore-session": "disputes/handlers/restore_session.py",
    "user-info": "orders/handlers/user_info.py",
    "export-reputation": "orders/handlers/export_reputation.py",
    "import-reputation": "orders/handlers/import_reputation.py",
}


def _handler_file(handler) -> str:
    return Path(inspect.getfile(handler)).resolve().relative_to(ROOT).as_posix()


def documented_routes() -> dict[str, str | None]:
    """Action → handler file from the table of docs/PROTOCOL.md §Actions (None: no handler)."""
    text = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    table = text.split("| Action | Handler | Section |", 1)[1].split("\n\n", 1)[0]
    routes: dict[str, str | None] = {}
    for row in table.strip().splitlines()[1:]:
        actions_cell, handler_cell, _ = (cell.strip() for cell in row.strip("|").split("|"))
        actions = re.findall(r"`([a-z-]+)`", actions_cell)
        files = re.findall(r"`([\w/.]+\.py)`", handler_cell)
        if files and len(files) == len(actions):
            base = files[0].rsplit("/", 1)[0]
            files = [f if "/" in f else f"{base}/{f}" for f in files]
            routes.update(zip(actions, files, strict=True))
        else:
            assert handler_cell == "none, deliberately", row
            routes.update(dict.fromkeys(actions))
    return routes


def test_every_client_action_is_handled_or_refused_and_nothing_else():
    handled = set(bridge_wiring().handlers)
    assert handled == set(HANDLED)
    assert handled.isdisjoint(REFUSED)
    assert handled | REFUSED == {action.value for action in CLIENT_ACTIONS}


def test_each_action_is_wired_to_its_own_handler_module():
    wired = {action: _handler_file(handler) for action, handler in bridge_wiring().handlers.items()}
    assert wired == HANDLED
    for action, handler in bridge_wiring().handlers.items():
        assert handler.__name__ == "handle_" + action.replace("-", "_")


def test_the_protocol_doc_lists_the_same_routes():
    assert documented_routes() == {**HANDLED, **dict.fromkeys(REFUSED)}


def test_the_handler_packages_export_exactly_the_wired_handlers():
    exported = {}
    for package in ("orders.handlers", "disputes.handlers"):
        exported |= importlib.import_module(package).HANDLERS
    assert exported == dict(bridge_wiring().handlers)


# --- the refusals, through the real pipeline ---------------------------------------------------

ORDER_ID = uuid.UUID("c7dba9db-f13f-4c3f-a77f-3b82e43c2b1a")
_LOCK_PROOF = CashuLockProof(
    token="cashuA",
    mint_url="https://mint.example",
    buyer_pubkey="b" * 64,
    seller_pubkey="c" * 64,
    mostro_pubkey="d" * 64,
)


@pytest.mark.django_db
def test_pay_invoice_from_a_client_is_answered_invalid_action(node):
    eve = TradeClient("eve")
    payload = PaymentRequestPayload(None, "lnbcrt1", None)
    [reply] = eve.send(Action.PAY_INVOICE, index=1, order_id=ORDER_ID, payload=payload, request_id=5)
    assert (reply.recipient, reply.message.to_json()) == (
        eve.pubkey(1),
        (
            '{"cant-do":{"version":2,"request_id":5,"trade_index":null,'
            f'"id":"{ORDER_ID}","action":"cant-do","payload":{{"cant_do":"{CantDoReason.INVALID_ACTION}"}}}}}}'
        ),
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("_case", "action", "payload"),
    [
        ("cashu escrow", Action.ADD_CASHU_ESCROW, CashuLockProofPayload(_LOCK_PROOF)),
        ("client-to-client dm", Action.SEND_DM, TextMessagePayload("hello")),
        ("a node-to-client action", Action.CANCELED, None),
        ("a later node-to-client action", Action.REPUTATION_IMPORTED, None),
    ],
)
def test_unhandled_actions_are_dropped_silently(node, _case, action, payload):
    eve = TradeClient("eve")
    assert eve.send(action, index=1, order_id=ORDER_ID, payload=payload) == []
    assert OutboundMessage.objects.count() == 0
    row = InboundEvent.objects.get()
    assert (row.status, row.drop_reason) == (InboundStatus.DONE, f"unhandled action {action.value}")
