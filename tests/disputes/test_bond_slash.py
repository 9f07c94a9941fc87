"""Solver slashes (docs/PROTOCOL.md §Bonds, Slash and Payout) through the pipeline and the fake LND.

alice sells to bob; each posted a bond (alice as maker, bob as taker) locked at LND; bob's
dispute is taken by the solver, who settles or cancels with the slash payload exactly as
mostrix sends it.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from lightning.types import InvoiceState
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import BondResolutionPayload, PaymentRequestPayload
from nostrbridge.protocol.structs import BondResolution
from orders.bonds.htlc import bond_invoice_create
from orders.bonds.lock import bond_on_update
from orders.bonds.models import Bond
from orders.bonds.payout import process_bond_payouts
from orders.bonds.selectors import bond_ledger
from orders.bonds.slash import BondSlashRefused, SlashChoice, bond_slash_check
from orders.models import Order
from tests.disputes.support import disputed_trade, register, solver_client, take
from tests.orders.services.support import assert_refused, configure, ln_writes, mint_invoice

pytestmark = pytest.mark.django_db(transaction=True)
BUYER_BOND, SELLER_BOND = 1001, 2000


@pytest.fixture
def trade(node, fake_ln, settings):
    trade = disputed_trade(fake_ln)  # built without bonds; both bonds are then locked by hand
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_ENABLED=True, MOSTRO_ANTI_ABUSE_BOND_APPLY_TO="both")
    _locked_bond(fake_ln, trade.order, role="taker", pubkey=trade.order.buyer_pubkey, amount=BUYER_BOND)
    _locked_bond(fake_ln, trade.order, role="maker", pubkey=trade.order.seller_pubkey, amount=SELLER_BOND)
    return trade


@pytest.fixture
def solver(trade):
    client = register(solver_client())
    take(client, trade.dispute)
    client.replies(), trade.buyer.replies(), trade.seller.replies()
    return client


def _locked_bond(fake_ln, order, *, role, pubkey, amount) -> Bond:
    invoice = bond_invoice_create(order_id=order.pk, amount_sats=amount, expiry_seconds=300)
    bond = Bond.objects.create(
        order=order, role=role, pubkey=pubkey, identity=pubkey, amount_sats=amount, hash=invoice.payment_hash_hex,
        preimage=invoice.preimage_hex, payment_request=invoice.payment_request,
        invoice_expires_at=timezone.now() + timedelta(seconds=300),
    )  # fmt: skip
    fake_ln.mark_accepted(bond.hash)
    Bond.objects.filter(pk=bond.pk).update(state="locked", locked_at=timezone.now())
    return bond


def _slash(*, buyer=False, seller=False):
    return BondResolutionPayload(BondResolution(slash_seller=seller, slash_buyer=buyer))


def _bonds(order) -> dict[str, Bond]:
    return {bond.role: bond for bond in Bond.objects.filter(order=order)}


def _view(order, amount):
    return {
        "id": str(order.id), "kind": "sell", "status": None, "amount": amount, "fiat_code": order.fiat_code,
        "min_amount": None, "max_amount": None, "fiat_amount": order.fiat_amount,
        "payment_method": order.payment_method, "premium": order.premium, "created_at": None, "expires_at": None,
    }  # fmt: skip


def test_settle_slashing_the_buyer_splits_exactly_and_pays_the_seller_its_share(trade, solver, fake_ln, settings):
    solver.send(Action.ADMIN_SETTLE, index=0, order_id=trade.order.id, payload=_slash(buyer=True), request_id=42)
    order = trade.refresh()
    bonds = _bonds(order)
    buyer_bond, seller_bond = bonds["taker"], bonds["maker"]
    # floor(1001 × 0.5) = 500 to the node, 501 to the seller.
    assert (buyer_bond.state, buyer_bond.node_share_sats, buyer_bond.payout_sats, buyer_bond.slashed_reason) == (
        "pending-payout", 500, 501, "lost-dispute",
    )  # fmt: skip
    assert buyer_bond.payout_recipient == order.seller_pubkey
    assert fake_ln.invoice_state(buyer_bond.hash) is InvoiceState.SETTLED
    assert order.status == "success"  # the payout to the buyer ran; the seller's bond ended with the trade
    assert (seller_bond.state, fake_ln.invoice_state(seller_bond.hash)) == ("released", InvoiceState.CANCELED)
    slashed = [r.json["order"] for r in trade.buyer.replies() if r.action == "bond-slashed"]
    assert slashed == [
        {"version": 2, "request_id": None, "trade_index": None, "id": str(order.id), "action": "bond-slashed",
         "payload": {"order": _view(order, BUYER_BOND)}}
    ]  # fmt: skip

    assert process_bond_payouts() == {"asked": 1}
    asks = [r for r in trade.seller.replies() if r.action == "add-bond-invoice"]
    assert [r.json["order"]["payload"] for r in asks] == [
        {"bond_payout_request": {"order": _view(order, 501), "slashed_at": int(buyer_bond.slashed_at.timestamp())}}
    ]
    assert process_bond_payouts() == {"waiting": 1}  # asked at most once per window

    wrong = mint_invoice(amount_sats=500)
    refused = trade.seller.send(
        Action.ADD_BOND_INVOICE, index=1, order_id=order.id, payload=PaymentRequestPayload(None, wrong, None)
    )
    assert [r.json["cant-do"]["payload"] for r in refused] == [{"cant_do": "invalid_invoice"}]
    stranger = trade.buyer.send(
        Action.ADD_BOND_INVOICE,
        index=1,
        order_id=order.id,
        payload=PaymentRequestPayload(None, mint_invoice(amount_sats=501), None),
    )
    assert [r.json["cant-do"]["payload"] for r in stranger] == [{"cant_do": "not_allowed_by_status"}]
    assert Bond.objects.get(pk=buyer_bond.pk).payout_invoice is None

    invoice = mint_invoice(amount_sats=501)
    replies = trade.seller.send(
        Action.ADD_BOND_INVOICE, index=1, order_id=order.id, payload=PaymentRequestPayload(None, invoice, None)
    )
    assert [(r.action, r.json["order"]["payload"]) for r in replies] == [
        ("bond-invoice-accepted", {"order": _view(order, 501)}),
        ("bond-payout-completed", {"order": _view(order, 501)}),
    ]
    paid = Bond.objects.get(pk=buyer_bond.pk)
    assert (paid.state, paid.payout_invoice, paid.payout_paid_at is not None) == ("slashed", invoice, True)
    assert [(c["payment_request"]) for name, c in fake_ln.calls if name == "send_payment"][-1:] == [invoice]
    # The ledger: every bonded sat in one account, and LND agrees with each bond's state.
    assert bond_ledger() == {
        "unpaid": 0, "held": 0, "returned": SELLER_BOND, "lost_at_lnd": 0, "node": 500, "paid": 501, "owed": 0,
        "total": BUYER_BOND + SELLER_BOND, "problems": 0,
    }  # fmt: skip
    assert_lnd_agrees(fake_ln)


def assert_lnd_agrees(fake_ln) -> None:
    """Released bonds are canceled at LND, slashed ones settled, locked ones still held."""
    expected = {
        "released": InvoiceState.CANCELED,
        "locked": InvoiceState.ACCEPTED,
        "lnd-canceled": InvoiceState.CANCELED,
    }
    for bond in Bond.objects.all():
        want = expected.get(bond.state, InvoiceState.SETTLED)
        assert (bond.pk, fake_ln.invoice_state(bond.hash)) == (bond.pk, want)
        assert (bond.htlc_resolved_at is None) == (bond.state == "locked")


@pytest.mark.parametrize("action", [Action.ADMIN_SETTLE, Action.ADMIN_CANCEL])
def test_null_payload_slashes_nobody_and_every_bond_is_released(trade, solver, fake_ln, action):
    solver.send(action, index=0, order_id=trade.order.id, payload=None, request_id=43)
    bonds = _bonds(trade.refresh())
    assert {role: b.state for role, b in bonds.items()} == {"taker": "released", "maker": "released"}
    assert {fake_ln.invoice_state(b.hash) for b in bonds.values()} == {InvoiceState.CANCELED}
    assert bond_ledger()["returned"] == BUYER_BOND + SELLER_BOND
    assert_lnd_agrees(fake_ln)


@pytest.mark.parametrize(("payload", "taker_state"), [(None, "released"), (_slash(buyer=True), "pending-payout")])
def test_the_settle_ends_the_bonds_at_the_ruling_not_at_the_buyers_payout(trade, solver, fake_ln, payload, taker_state):
    """mostrod releases the bonds at the resolution: a buyer's payout that fails (the order stays
    in settled-hold-invoice, retried later) must not keep the seller's bond locked meanwhile."""
    fake_ln.fail_next_payment()

    solver.send(Action.ADMIN_SETTLE, index=0, order_id=trade.order.id, payload=payload, request_id=48)

    order = trade.refresh()
    assert (order.status, order.failed_payment) == ("settled-hold-invoice", True)
    bonds = _bonds(order)
    assert {role: b.state for role, b in bonds.items()} == {"taker": taker_state, "maker": "released"}
    assert fake_ln.invoice_state(bonds["maker"].hash) is InvoiceState.CANCELED
    assert bond_ledger()["returned"] == SELLER_BOND + (BUYER_BOND if payload is None else 0)
    assert_lnd_agrees(fake_ln)


def test_cancel_slashing_the_seller_pays_the_buyer(trade, solver, fake_ln):
    solver.send(Action.ADMIN_CANCEL, index=0, order_id=trade.order.id, payload=_slash(seller=True), request_id=44)
    bonds = _bonds(trade.refresh())
    assert (bonds["maker"].state, bonds["maker"].node_share_sats, bonds["maker"].payout_sats) == (
        "pending-payout", 1000, 1000,
    )  # fmt: skip
    assert bonds["maker"].payout_recipient == trade.order.buyer_pubkey
    assert bonds["taker"].state == "released"
    assert [r.action for r in trade.seller.replies()].count("bond-slashed") == 1


@pytest.mark.parametrize("action", [Action.ADMIN_SETTLE, Action.ADMIN_CANCEL])
def test_slashing_a_side_without_a_locked_bond_is_refused_and_nothing_moves(trade, solver, fake_ln, action):
    Bond.objects.filter(order=trade.order, role="maker").delete()
    before = list(Bond.objects.values_list("pk", "state", "htlc_resolved_at"))
    assert_refused(
        solver, action, index=0, order_id=trade.order.id, reason="invalid_payload", fake_ln=fake_ln,
        orders=[trade.order], payload=_slash(seller=True, buyer=True),
    )  # fmt: skip
    assert list(Bond.objects.values_list("pk", "state", "htlc_resolved_at")) == before
    assert trade.refresh_dispute().status == "in-progress"


def test_a_bond_canceled_at_lnd_is_reported_not_released_and_cannot_be_slashed(trade, solver, fake_ln, caplog):
    bond = _bonds(trade.order)["taker"]
    fake_ln.cancel_invoice(payment_hash=bytes.fromhex(bond.hash))  # someone canceled it at LND directly
    assert bond_on_update(payment_hash_hex=bond.hash, state=InvoiceState.CANCELED)
    bond.refresh_from_db()
    assert (bond.state, bond.lnd_canceled_at is not None) == ("lnd-canceled", True)
    assert "OPERATOR: LND canceled the locked taker bond" in caplog.text
    with pytest.raises(BondSlashRefused) as refused:
        bond_slash_check(order=trade.order, choice=SlashChoice(slash_buyer=True))
    assert "the buyer's bond HTLC was canceled at LND on" in refused.value.message
    assert "(not by this node): there is nothing left to slash" in refused.value.message
    assert_refused(
        solver, Action.ADMIN_SETTLE, index=0, order_id=trade.order.id, reason="invalid_payload", fake_ln=fake_ln,
        orders=[trade.order], payload=_slash(buyer=True),
    )  # fmt: skip


def test_unclaimed_share_is_forfeited_after_the_claim_window(trade, solver, fake_ln):
    solver.send(Action.ADMIN_SETTLE, index=0, order_id=trade.order.id, payload=_slash(buyer=True), request_id=45)
    bond = _bonds(trade.refresh())["taker"]
    assert process_bond_payouts(now=bond.slashed_at + timedelta(days=15) - timedelta(seconds=1)) == {"asked": 1}
    assert process_bond_payouts(now=bond.slashed_at + timedelta(days=15)) == {"forfeited": 1}
    bond.refresh_from_db()
    assert (bond.state, bond.node_share_sats + bond.payout_sats) == ("forfeited", BUYER_BOND)
    assert [r.action for r in trade.seller.replies()].count("add-bond-invoice") == 1
    late = trade.seller.send(
        Action.ADD_BOND_INVOICE, index=1, order_id=trade.order.id,
        payload=PaymentRequestPayload(None, mint_invoice(amount_sats=501), None),
    )  # fmt: skip
    assert [r.json["cant-do"]["payload"] for r in late] == [{"cant_do": "not_allowed_by_status"}]


def test_failed_payouts_end_in_failed_and_a_new_invoice_revives_the_bond(trade, solver, fake_ln, settings):
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_PAYOUT_MAX_RETRIES=2)
    solver.send(Action.ADMIN_SETTLE, index=0, order_id=trade.order.id, payload=_slash(buyer=True), request_id=46)
    bond = _bonds(trade.refresh())["taker"]
    fake_ln.fail_next_payment()
    trade.seller.send(
        Action.ADD_BOND_INVOICE, index=1, order_id=trade.order.id,
        payload=PaymentRequestPayload(None, mint_invoice(amount_sats=501), None),
    )  # fmt: skip
    bond.refresh_from_db()
    assert (bond.state, bond.payout_attempts) == ("pending-payout", 1)
    fake_ln.fail_next_payment()
    assert process_bond_payouts() == {"failed": 1}
    bond.refresh_from_db()
    assert (bond.state, bond.payout_invoice) == ("failed", None)
    assert process_bond_payouts() == {"asked": 1}  # the winner is asked again
    trade.seller.replies()
    replies = trade.seller.send(
        Action.ADD_BOND_INVOICE, index=1, order_id=trade.order.id,
        payload=PaymentRequestPayload(None, mint_invoice(amount_sats=501), None),
    )  # fmt: skip
    assert [r.action for r in replies] == ["bond-invoice-accepted", "bond-payout-completed"]
    assert Bond.objects.get(pk=bond.pk).state == "slashed"
    assert Order.objects.get(pk=trade.order.pk).status == "success"


# -- the console and the REST API take the same choice -------------------------------------------


def test_console_confirmation_shows_each_bond_and_the_slash_choice_then_slashes(trade, fake_ln):
    from django.urls import reverse

    from tests.disputes.web import browser, make_user

    client = browser(make_user("op", "operator"))
    settle = reverse("admin:disputes_dispute_settle", args=[trade.dispute.pk])
    client.post(reverse("admin:disputes_dispute_take", args=[trade.dispute.pk]), {"post": "yes"})
    page = client.get(settle).content.decode().replace("&#x27;", "'")
    assert "The buyer's bond: 1001 sats, locked." in page
    assert "The seller's bond: 2000 sats, locked." in page
    assert (
        "Slash the buyer: their 1001-sat bond is settled; the node keeps 500 sats and the seller is offered "
        "501 sats (add-bond-invoice)." in page
    )
    assert "Slash the seller: their 2000-sat bond is settled; the node keeps 1000 sats and the buyer is offered" in page
    assert page.count('type="radio" name="slash"') == 3
    response = client.post(settle, {"post": "yes", "slash": "seller"}, follow=True)
    assert f"Dispute {trade.dispute.pk} settled to the buyer." in [str(m) for m in response.context["messages"]]
    bonds = _bonds(trade.refresh())
    assert (bonds["maker"].state, bonds["maker"].payout_sats, bonds["taker"].state) == (
        "pending-payout",
        1000,
        "released",
    )


def test_console_refused_slash_says_why_and_nothing_moves(trade, fake_ln):
    from django.urls import reverse

    from tests.disputes.web import browser, make_user

    Bond.objects.filter(order=trade.order, role="maker").delete()
    client = browser(make_user("op", "operator"))
    client.post(reverse("admin:disputes_dispute_take", args=[trade.dispute.pk]), {"post": "yes"})
    writes = ln_writes(fake_ln)
    response = client.post(
        reverse("admin:disputes_dispute_refund", args=[trade.dispute.pk]),
        {"post": "yes", "slash": "seller"},
        follow=True,
    )
    assert [str(m) for m in response.context["messages"]][-1:] == [
        f"Dispute {trade.dispute.pk} not refunded to the seller: refused: the seller posted no bond on this order: "
        "nothing to slash; nothing moved"
    ]
    assert (trade.refresh().status, ln_writes(fake_ln)) == ("dispute", writes)
    assert _bonds(trade.order)["taker"].state == "locked"


def test_rest_resolve_takes_the_slash_choice_and_explains_a_refusal(trade, fake_ln):
    from tests.disputes.test_api_writes import call
    from tests.disputes.web import bearer, make_user

    headers = bearer(make_user("op", "operator"))
    assert call("post", f"/disputes/{trade.dispute.id}/take", headers).status_code == 200
    bond = _bonds(trade.order)["taker"]
    fake_ln.cancel_invoice(payment_hash=bytes.fromhex(bond.hash))
    bond_on_update(payment_hash_hex=bond.hash, state=InvoiceState.CANCELED)
    refused = call("post", f"/disputes/{trade.dispute.id}/settle", headers, slash_buyer=True)
    assert refused.status_code == 409
    assert refused.json()["code"] == "invalid_payload"
    assert refused.json()["message"].endswith("(not by this node): there is nothing left to slash")
    assert trade.refresh().status == "dispute"
    done = call("post", f"/disputes/{trade.dispute.id}/settle", headers, slash_seller=True)
    assert done.status_code == 200, done.content
    bonds = _bonds(trade.refresh())
    assert (bonds["maker"].state, bonds["maker"].node_share_sats, bonds["taker"].state) == (
        "pending-payout",
        1000,
        "lnd-canceled",
    )


def test_dashboard_figures_and_the_admin_bond_history(trade, solver, fake_ln):
    from tests.disputes.web import browser, make_user

    solver.send(Action.ADMIN_SETTLE, index=0, order_id=trade.order.id, payload=_slash(buyer=True), request_id=47)
    operator = browser(make_user("op", "operator"))
    figures = operator.get("/operator/").context["bonds"]
    assert (figures.locked_sats, figures.slashed_count, figures.node_kept_sats, figures.owed_sats) == (0, 1, 500, 501)
    assert (figures.paid_out_sats, figures.forfeited_sats, figures.lnd_canceled_count) == (0, 0, 0)
    bond = _bonds(trade.order)["taker"]
    listing = operator.get("/admin/orders/bond/")
    assert {b.pk for b in listing.context["cl"].result_list} == set(Bond.objects.values_list("pk", flat=True))
    page = operator.get(f"/admin/orders/bond/{bond.pk}/change/").content.decode()
    assert ">pending-payout<" in page
    assert "slashed: lost-dispute" in page  # the history row of the slash
    assert bond.preimage not in page  # never shown
    assert browser(make_user("sol", "rw")).get("/admin/orders/bond/").status_code == 403
