"""REST writes (take, settle, cancel, solvers) and the authorization matrix."""

import uuid

import pytest
from django.test import Client

from disputes.models import DisputeLog
from mostro_site.api.tokens import api_token_create, api_token_revoke
from mostro_site.models import ApiToken
from nostrbridge.models import OutboundMessage
from nostrbridge.node_identity import encode_npub, node_pubkey
from nostrbridge.protocol.enums import Action
from orders.models import OrderStatusChange, SolverCategory, Trader
from tests.disputes.support import disputed_trade, register, solver_client, take
from tests.disputes.web import bearer, linked_pubkey, make_user
from tests.orders.services.support import ln_writes, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def trade(node, fake_ln):
    return disputed_trade(fake_ln)


def call(method, url, headers=None, **data):
    client = Client()
    url = f"/api{url}"
    if method == "get":
        return client.get(url, **(headers or {}))
    return getattr(client, method)(url, data=data or None, content_type="application/json", **(headers or {}))


def assert_error(response, status, code):
    assert (response.status_code, response.json()["code"]) == (status, code), response.content


def assert_unchanged(trade, fake_ln, before, outbox, writes):
    assert snapshot(trade.order) == before
    assert OutboundMessage.objects.count() == outbox
    assert ln_writes(fake_ln) == writes
    assert trade.refresh_dispute().status in ("initiated", "in-progress")


@pytest.fixture
def frozen(trade, fake_ln):
    """Call it after setup: returns a checker proving nothing moved since."""
    state = {}

    def mark():
        state.update(before=snapshot(trade.order), outbox=OutboundMessage.objects.count(), writes=ln_writes(fake_ln))

    def check():
        assert_unchanged(trade, fake_ln, state["before"], state["outbox"], state["writes"])

    mark.check = check
    return mark


# --- authentication ---------------------------------------------------------------------------


def test_missing_unknown_and_revoked_tokens_get_401(trade):
    user = make_user("op", "operator")
    token, key = api_token_create(owner=user, name="cli")
    assert_error(call("get", "/disputes"), 401, "not_authenticated")
    assert_error(call("get", "/disputes", {"HTTP_AUTHORIZATION": "Bearer nope"}), 401, "invalid_token")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    assert call("get", "/disputes", headers).status_code == 200
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None
    assert api_token_revoke(token=token)
    assert_error(call("get", "/disputes", headers), 401, "token_revoked")
    assert_error(call("post", f"/disputes/{trade.dispute.id}/take", headers), 401, "token_revoked")
    assert trade.refresh_dispute().status == "initiated"


def test_token_of_an_inactive_user_gets_401(trade):
    user = make_user("gone", "operator")
    headers = bearer(user)
    user.is_active = False
    user.save()
    assert_error(call("get", "/disputes", headers), 401, "inactive_user")


def test_token_is_stored_hashed_with_a_visible_prefix():
    token, key = api_token_create(owner=make_user("op", "operator"), name="cli")
    assert (token.prefix, token.key_hash) == (key[:8], ApiToken.hash_key(key))
    assert key not in (token.key_hash, token.prefix, str(token))


def test_session_auth_reads_and_needs_csrf_to_write(trade):
    user = make_user("op", "operator")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/api/disputes").status_code == 200
    response = client.post(f"/api/disputes/{trade.dispute.id}/take")
    assert_error(response, 403, "csrf_failed")
    assert trade.refresh_dispute().status == "initiated"


# --- 403: authenticated but not allowed ------------------------------------------------------


def test_user_without_a_group_is_forbidden_everywhere(trade, frozen):
    headers = bearer(make_user("nobody"))
    frozen()
    # A user without a role can only hold a "read" token: its writes stop at the scope.
    for method, url, code in [
        ("get", "/disputes", "not_authorized"),
        ("get", "/orders", "not_authorized"),
        ("post", f"/disputes/{trade.dispute.id}/take", "token_scope"),
        ("post", f"/disputes/{trade.dispute.id}/settle", "token_scope"),
        ("post", f"/disputes/{trade.dispute.id}/cancel", "token_scope"),
    ]:
        assert_error(call(method, url, headers), 403, code)
    frozen.check()


@pytest.mark.parametrize("action", ["settle", "cancel"])
def test_read_only_solver_may_take_but_not_resolve(trade, frozen, action):
    reader = make_user("reader", "ro")
    headers = bearer(reader)
    assert call("post", f"/disputes/{trade.dispute.id}/take", headers).status_code == 200
    frozen()
    assert_error(call("post", f"/disputes/{trade.dispute.id}/{action}", headers), 403, "not_authorized")
    frozen.check()


def test_read_only_solver_whose_group_says_read_write_is_still_refused_by_the_protocol(trade, frozen):
    """The Django group and the solver's category must both allow it."""
    user = make_user("odd", "rw")
    Trader.objects.filter(pk=linked_pubkey(user)).update(solver_category=SolverCategory.READ)
    headers = bearer(user)
    call("post", f"/disputes/{trade.dispute.id}/take", headers)
    frozen()
    assert_error(call("post", f"/disputes/{trade.dispute.id}/settle", headers), 403, "not_authorized")
    frozen.check()


@pytest.mark.parametrize("action", ["take", "settle", "cancel"])
def test_solver_cannot_act_on_another_solvers_dispute(trade, frozen, action):
    holder = register(solver_client())
    take(holder, trade.dispute)
    headers = bearer(make_user("rival", "rw"))
    frozen()
    reason = "invalid_pubkey" if action == "take" else "is_not_your_dispute"
    assert_error(call("post", f"/disputes/{trade.dispute.id}/{action}", headers), 403, reason)
    frozen.check()
    assert trade.refresh_dispute().solver_pubkey == holder.identity.public_key_hex


def test_solver_refused_when_the_node_holds_the_dispute(trade, frozen):
    call("post", f"/disputes/{trade.dispute.id}/take", bearer(make_user("op", "operator")))
    headers = bearer(make_user("rw", "rw"))
    frozen()
    assert_error(call("post", f"/disputes/{trade.dispute.id}/settle", headers), 403, "dispute_taken_by_admin")
    frozen.check()


def test_user_linked_to_no_pubkey_cannot_act(trade, frozen):
    user = make_user("orphan", "rw")
    user.solver_link.delete()
    frozen()
    assert_error(call("post", f"/disputes/{trade.dispute.id}/take", bearer(user)), 403, "no_solver_identity")
    frozen.check()


# --- successful writes -----------------------------------------------------------------------


def test_linked_solver_takes_and_settles(trade, fake_ln, django_capture_on_commit_callbacks):
    user = make_user("sol", "rw")
    headers = bearer(user)

    response = call("post", f"/disputes/{trade.dispute.id}/take", headers)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["solver_pubkey"]) == ("in-progress", linked_pubkey(user))
    assert [r.payload.peer.pubkey for r in trade.buyer.replies()] == [linked_pubkey(user)]
    solver_copy = OutboundMessage.objects.filter(recipient_pubkey=linked_pubkey(user), action="admin-took-dispute")
    assert solver_copy.count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        response = call("post", f"/disputes/{trade.dispute.id}/settle", headers)
    assert response.status_code == 200, response.content
    assert (response.json()["result"], response.json()["dispute"]["status"]) == ("settled", "settled")
    order = trade.refresh()
    assert order.status == "success"
    assert OrderStatusChange.objects.filter(order=order, to_status="settled-hold-invoice").get().actor == "admin:sol"
    assert list(DisputeLog.objects.filter(dispute=trade.dispute).values_list("action", "actor"))[1:] == [
        ("taken", "admin:sol"),
        ("settled", "admin:sol"),
    ]
    assert [r.action for r in trade.seller.replies()] == ["admin-took-dispute", "admin-settled"]


def test_operator_takes_as_the_node_and_refunds_the_seller(trade, fake_ln):
    headers = bearer(make_user("op", "operator"))
    assert call("post", f"/disputes/{trade.dispute.id}/take", headers).json()["solver_pubkey"] == node_pubkey()

    response = call("post", f"/disputes/{trade.dispute.id}/cancel", headers)

    assert (response.status_code, response.json()["result"]) == (200, "seller-refunded")
    order = trade.refresh()
    assert order.status == "canceled-by-admin"
    assert OrderStatusChange.objects.filter(order=order).last().actor == "admin:op"
    recipients = set(OutboundMessage.objects.filter(action="admin-canceled").values_list("recipient_pubkey", flat=True))
    assert recipients == {trade.buyer_key, trade.seller_key}  # the node key does not message itself


def test_second_settle_gets_409_invalid_order_status(trade, fake_ln, django_capture_on_commit_callbacks):
    headers = bearer(make_user("op", "operator"))
    call("post", f"/disputes/{trade.dispute.id}/take", headers)
    with django_capture_on_commit_callbacks(execute=True):
        call("post", f"/disputes/{trade.dispute.id}/settle", headers)
    assert_error(call("post", f"/disputes/{trade.dispute.id}/settle", headers), 409, "invalid_order_status")
    assert_error(call("post", f"/disputes/{trade.dispute.id}/cancel", headers), 409, "not_allowed_by_status")


def test_cooperatively_canceled_order_gets_409(trade):
    headers = bearer(make_user("op", "operator"))
    call("post", f"/disputes/{trade.dispute.id}/take", headers)
    trade.buyer.send(Action.CANCEL, index=1, order_id=trade.order.id)
    trade.seller.send(Action.CANCEL, index=1, order_id=trade.order.id)
    assert_error(call("post", f"/disputes/{trade.dispute.id}/settle", headers), 409, "order_already_canceled")


def test_lightning_down_gets_503_and_nothing_moves(trade, fake_ln, frozen):
    headers = bearer(make_user("op", "operator"))
    call("post", f"/disputes/{trade.dispute.id}/take", headers)
    frozen()
    fake_ln.set_unavailable(True)
    assert_error(call("post", f"/disputes/{trade.dispute.id}/settle", headers), 503, "lightning_unavailable")
    fake_ln.set_unavailable(False)
    frozen.check()


def test_unknown_dispute_gets_404(trade):
    headers = bearer(make_user("op", "operator"))
    for action in ("take", "settle", "cancel"):
        assert_error(call("post", f"/disputes/{uuid.uuid4()}/{action}", headers), 404, "not_found")


# --- solvers ----------------------------------------------------------------------------------


def test_operator_adds_promotes_lists_and_removes_a_solver(db, node):
    headers = bearer(make_user("op", "operator"))
    keys = solver_client().identity
    Trader.objects.create(pubkey=keys.public_key_hex)

    response = call("post", "/solvers", headers, pubkey=encode_npub(keys.public_key_hex), permission="read")
    assert (response.status_code, response.json()["permission"]) == (200, "read")
    assert Trader.objects.get(pk=keys.public_key_hex).solver_category == SolverCategory.READ
    assert [s["pubkey"] for s in call("get", "/solvers", headers).json()["items"]] == [keys.public_key_hex]

    assert call("delete", f"/solvers/{keys.public_key_hex}", headers).json() == {
        "pubkey": keys.public_key_hex,
        "removed": True,
    }
    assert not Trader.objects.get(pk=keys.public_key_hex).is_solver
    assert_error(call("delete", f"/solvers/{keys.public_key_hex}", headers), 404, "not_found")


def test_solver_management_is_for_operators_only(db, node):
    headers = bearer(make_user("sol", "rw"))
    keys = solver_client("x").identity
    # The solver's best token is "resolve": managing solvers is beyond it (and beyond the user).
    assert_error(call("post", "/solvers", headers, pubkey=keys.public_key_hex), 403, "token_scope")
    assert not Trader.objects.filter(pk=keys.public_key_hex).exists()


@pytest.mark.parametrize("pubkey", ["npub1xxxx", "zz" * 32, "abc"])
def test_bad_solver_key_gets_422(db, node, pubkey):
    headers = bearer(make_user("op", "operator"))
    assert_error(call("post", "/solvers", headers, pubkey=pubkey), 422, "invalid_pubkey")
    assert_error(call("post", "/solvers", headers, pubkey=keys_hex(), permission="admin"), 422, "invalid_request")


def keys_hex() -> str:
    return solver_client("y").identity.public_key_hex
