"""The allowed-transitions table pinned against the protocol (docs/PROTOCOL.md §State-machine).

`PROTOCOL_EDGES` is a literal copy of the protocol's transition table, one line per row,
"waiting-*" and "a / b" expanded; the "(same)" rows change no status and are left out. Every
pair of stored statuses is checked: an edge the table lacks and one it adds both fail.
"""

import re
from itertools import product
from pathlib import Path

import pytest

from orders.status import (
    ALLOWED_TRANSITIONS,
    ALREADY_CANCELED_STATUSES,
    ESCROW_LOCKED_STATUSES,
    PRE_TRADE_STATUSES,
    TERMINAL_STATUSES,
    WAITING_STATUSES,
    OrderStatus,
    is_allowed_transition,
)

# The protocol's mermaid diagram of the main paths, copied verbatim (tests/vectors/README.md).
DIAGRAM = Path(__file__).resolve().parents[1] / "vectors" / "state_machine.mmd"

PROTOCOL_EDGES = {
    ("waiting-maker-bond", "pending"),  # maker bond HTLC accepted
    ("waiting-maker-bond", "expired"),  # expires_at passed
    ("waiting-maker-bond", "canceled"),  # the maker's cancel (mostrod 0.19 #996, docs/PROTOCOL.md §Bonds)
    ("pending", "waiting-taker-bond"),  # take-*, taker bonds on
    ("waiting-taker-bond", "pending"),  # last taker bond canceled/expired, taker self-cancel
    ("pending", "waiting-buyer-invoice"),  # take-sell without invoice
    ("waiting-taker-bond", "waiting-buyer-invoice"),
    ("pending", "waiting-payment"),  # take-sell with invoice; take-buy
    ("waiting-taker-bond", "waiting-payment"),
    ("waiting-buyer-invoice", "waiting-payment"),  # add-invoice on a sell order
    ("waiting-buyer-invoice", "active"),  # add-invoice on a buy order
    ("waiting-payment", "active"),  # hold invoice accepted, buyer invoice known
    ("waiting-payment", "waiting-buyer-invoice"),  # hold invoice accepted, no buyer invoice
    ("waiting-buyer-invoice", "pending"),  # waiting-* → pending: taker cancel / timeout
    ("waiting-payment", "pending"),
    ("waiting-buyer-invoice", "canceled"),  # waiting-* → canceled: maker cancel / timeout
    ("waiting-payment", "canceled"),
    ("pending", "canceled"),  # maker cancel
    ("waiting-taker-bond", "canceled"),
    ("pending", "expired"),  # expires_at passed
    ("waiting-taker-bond", "expired"),
    ("active", "fiat-sent"),  # fiat-sent
    ("active", "dispute"),  # dispute
    ("fiat-sent", "dispute"),  # dispute; escrow near CLTV expiry
    ("active", "canceled"),  # escrow near CLTV expiry, or hold invoice lost
    ("active", "cooperatively-canceled"),  # cancel by the other party
    ("fiat-sent", "cooperatively-canceled"),
    ("dispute", "cooperatively-canceled"),
    ("fiat-sent", "settled-hold-invoice"),  # release
    ("dispute", "settled-hold-invoice"),  # release; admin-settle
    ("dispute", "canceled-by-admin"),  # admin-cancel
    ("pending", "canceled-by-admin"),  # the operator's pre-trade cancel (upstream after 0.18.5)
    ("waiting-taker-bond", "canceled-by-admin"),
    ("settled-hold-invoice", "success"),  # buyer payout succeeded
}
PROTOCOL_TERMINAL = {"success", "canceled", "cooperatively-canceled", "canceled-by-admin", "expired"}
STATUSES = [status.value for status in OrderStatus]


def test_the_table_has_exactly_the_protocols_edges():
    table = {(source, target) for source, targets in ALLOWED_TRANSITIONS.items() for target in targets}
    assert table == PROTOCOL_EDGES


@pytest.mark.parametrize(("source", "target"), list(product(STATUSES, STATUSES)))
def test_every_pair_of_statuses(source, target):
    assert is_allowed_transition(source, target) == ((source, target) in PROTOCOL_EDGES)


def test_terminal_statuses_are_the_protocols_and_lead_nowhere():
    assert TERMINAL_STATUSES == PROTOCOL_TERMINAL
    assert {source for source, _ in PROTOCOL_EDGES} & PROTOCOL_TERMINAL == set()
    assert not [
        target
        for status in STATUSES
        for target in STATUSES
        if status in PROTOCOL_TERMINAL and is_allowed_transition(status, target)
    ]


def test_status_groups_used_by_the_guards():
    assert ALREADY_CANCELED_STATUSES == {"canceled", "cooperatively-canceled", "canceled-by-admin"}
    assert PRE_TRADE_STATUSES == {"pending", "waiting-taker-bond"}
    assert WAITING_STATUSES == {"waiting-buyer-invoice", "waiting-payment"}
    assert ESCROW_LOCKED_STATUSES == {"active", "fiat-sent", "dispute"}


def test_never_stored_statuses_have_no_edges():
    for status in ("in-progress", "settled-by-admin", "completed-by-admin"):
        assert not any(status in edge for edge in PROTOCOL_EDGES)
        assert status not in ALLOWED_TRANSITIONS


def test_the_literal_copy_covers_the_protocols_diagram():
    """The protocol's mermaid diagram (main paths) must be a subset of the copied table."""
    diagram = DIAGRAM.read_text()
    edges = {
        (a.replace("_", "-"), b.replace("_", "-"))
        for a, b in re.findall(r"^\s*(\w+) --> (\w+)", diagram, flags=re.MULTILINE)
        if a != "[*]"
    }
    assert edges
    assert edges <= PROTOCOL_EDGES
