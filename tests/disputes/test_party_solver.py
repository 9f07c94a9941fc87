"""A solver never decides a trade they are in (issue 13, part 4; docs/SECURITY.md §Solvers).

The solver's identity, or the trade key of the message, equal to the buyer's or the seller's
(trade or identity key) is refused on every path: Nostr `admin-take-dispute`, `admin-settle`,
`admin-cancel`, the browser console and the REST API; each refusal changes nothing.
"""

import pytest
from django.test import Client

from disputes.models import Dispute, DisputeLog
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.keys import Keys
from tests.disputes.support import disputed_trade, register, solver_client
from tests.disputes.web import bearer, browser, make_user
from tests.orders.services.support import assert_refused, ln_writes, snapshot
from tests.trade.harness import TradeClient, reset_seen

pytestmark = pytest.mark.django_db

ADMIN_PAGES = {"take": "take", "settle": "settle", "cancel": "refund"}


@pytest.fixture
def trade(node, fake_ln):
    return disputed_trade(fake_ln, fresh=True)


def _party_identity(trade, side: str) -> Keys:
    return (trade.buyer if side == "buyer" else trade.seller).identity


def _assign(trade, pubkey: str) -> None:
    """As if the dispute had been taken before this rule existed: settle/cancel check on their own."""
    Dispute.objects.filter(pk=trade.dispute.pk).update(status="in-progress", solver_pubkey=pubkey)


def _frozen(trade, fake_ln):
    dispute = Dispute.objects.get(pk=trade.dispute.pk)
    return (
        snapshot(trade.order),
        (dispute.status, dispute.solver_pubkey),
        DisputeLog.objects.count(),
        OutboundMessage.objects.count(),
        ln_writes(fake_ln),
    )


# --- Nostr ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["buyer", "seller"])
def test_party_identity_cannot_take_its_own_dispute_over_nostr(side, trade, fake_ln):
    solver = register(solver_client("party", keys=_party_identity(trade, side)))
    before = Dispute.objects.get(pk=trade.dispute.pk)
    assert_refused(
        solver,
        Action.ADMIN_TAKE_DISPUTE,
        index=0,
        order_id=trade.dispute.id,
        reason="not_authorized",
        fake_ln=fake_ln,
        orders=[trade.order],
    )
    after = Dispute.objects.get(pk=trade.dispute.pk)
    assert (after.status, after.solver_pubkey) == (before.status, before.solver_pubkey) == ("initiated", None)


@pytest.mark.parametrize("side", ["buyer", "seller"])
def test_solver_writing_with_a_partys_trade_key_cannot_take_over_nostr(side, trade, fake_ln):
    party = trade.buyer if side == "buyer" else trade.seller
    solver = TradeClient("solver", identity=Keys.generate(), trade_keys={1: party.trade_key(1)})
    register(solver)
    reset_seen(solver)  # the party's earlier messages to that key are not this test's
    assert_refused(
        solver,
        Action.ADMIN_TAKE_DISPUTE,
        index=1,
        order_id=trade.dispute.id,
        reason="not_authorized",
        fake_ln=fake_ln,
        orders=[trade.order],
    )
    assert Dispute.objects.get(pk=trade.dispute.pk).status == "initiated"


@pytest.mark.parametrize("action", [Action.ADMIN_SETTLE, Action.ADMIN_CANCEL], ids=["settle", "cancel"])
@pytest.mark.parametrize("side", ["buyer", "seller"])
def test_party_assigned_to_its_own_dispute_cannot_resolve_it_over_nostr(side, action, trade, fake_ln):
    keys = _party_identity(trade, side)
    solver = register(solver_client("party", keys=keys))
    _assign(trade, keys.public_key_hex)
    before = _frozen(trade, fake_ln)
    assert_refused(
        solver, action, index=0, order_id=trade.order.id, reason="not_authorized", fake_ln=fake_ln, orders=[trade.order]
    )
    # Only the cant-do row was added.
    after = _frozen(trade, fake_ln)
    assert (after[0], after[1], after[2], after[3] - 1, after[4]) == before
    assert fake_ln.invoice_state(trade.order.hold_invoice_hash).value == "ACCEPTED"


def test_unrelated_solver_still_takes_the_dispute(trade, fake_ln):
    solver = register(solver_client("other", keys=Keys.generate()))
    replies = solver.send(Action.ADMIN_TAKE_DISPUTE, index=0, order_id=trade.dispute.id, request_id=5)
    assert [r.action for r in replies] == ["admin-took-dispute"]
    assert Dispute.objects.get(pk=trade.dispute.pk).solver_pubkey == solver.identity.public_key_hex


# --- browser console and REST ----------------------------------------------------------------------


@pytest.mark.parametrize("step", ["take", "settle", "cancel"])
@pytest.mark.parametrize("side", ["buyer", "seller"])
def test_party_solver_is_refused_in_the_browser_console(side, step, trade, fake_ln):
    keys = _party_identity(trade, side)
    user = make_user(f"{side}-solver", "rw", keys=keys)
    if step != "take":
        _assign(trade, keys.public_key_hex)
    before = _frozen(trade, fake_ln)
    url = f"/admin/disputes/dispute/{trade.dispute.pk}/{ADMIN_PAGES[step]}/"
    response = browser(user).post(url, {"post": "yes"}, follow=True)
    assert any("refused (not_authorized)" in str(m) for m in response.context["messages"])
    assert _frozen(trade, fake_ln) == before


@pytest.mark.parametrize("step", ["take", "settle", "cancel"])
@pytest.mark.parametrize("side", ["buyer", "seller"])
def test_party_solver_is_refused_by_the_rest_api(side, step, trade, fake_ln):
    keys = _party_identity(trade, side)
    user = make_user(f"{side}-solver", "rw", keys=keys)
    if step != "take":
        _assign(trade, keys.public_key_hex)
    before = _frozen(trade, fake_ln)
    response = Client().post(
        f"/api/disputes/{trade.dispute.id}/{step}", content_type="application/json", **bearer(user)
    )
    assert (response.status_code, response.json()["code"]) == (403, "not_authorized")
    assert _frozen(trade, fake_ln) == before
