"""`admin-add-solver` through the pipeline (docs/PROTOCOL.md §Admin-add-solver; vectors F08–F09)."""

import uuid

import pytest

from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import TextMessagePayload
from orders.models import SolverCategory, Trader
from tests.disputes.support import admin_client, npub, solver_client
from tests.orders.services.support import VECTORS, assert_refused, assert_silent

pytestmark = pytest.mark.django_db
ZERO_ID = uuid.UUID(int=0)


def _add(client, text, *, request_id=61, index=1):
    return client.send(
        Action.ADMIN_ADD_SOLVER, index=index, order_id=ZERO_ID, payload=TextMessagePayload(text), request_id=request_id
    )


def test_node_adds_a_read_only_solver(node, fake_ln):
    admin, solver = admin_client(), solver_client()
    request = VECTORS["F08_admin_add_solver_req"].replace("npub1xxxx", npub(solver))
    assert Message.from_json(request).to_json() == request

    replies = _add(admin, f"{npub(solver)}:read")

    assert [(r.recipient, r.message.to_json()) for r in replies] == [
        (admin.pubkey(1), VECTORS["F09_admin_add_solver_resp"])
    ]
    trader = Trader.objects.get(pk=solver.identity.public_key_hex)
    assert (trader.is_solver, trader.solver_category) == (True, SolverCategory.READ)


@pytest.mark.parametrize(
    ("suffix", "category"),
    [
        ("", SolverCategory.READ_WRITE),
        (":write", SolverCategory.READ_WRITE),
        (":read-write", SolverCategory.READ_WRITE),
    ],
)
def test_write_suffixes_and_the_default_mean_read_write(node, fake_ln, suffix, category):
    solver = solver_client()
    assert [r.action for r in _add(admin_client(), npub(solver) + suffix)] == ["admin-add-solver"]
    assert Trader.objects.get(pk=solver.identity.public_key_hex).solver_category == category


def test_existing_user_row_is_promoted(node, fake_ln):
    """Deliberate fix: mostrod's INSERT fails silently for a known key."""
    solver = solver_client()
    Trader.objects.create(pubkey=solver.identity.public_key_hex, total_reviews=3, total_rating=4.0)
    assert [r.action for r in _add(admin_client(), f"{npub(solver)}:read")] == ["admin-add-solver"]
    trader = Trader.objects.get(pk=solver.identity.public_key_hex)
    assert (trader.is_solver, trader.solver_category, trader.total_reviews) == (True, SolverCategory.READ, 3)


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_gets_invalid_text_message(node, fake_ln, text):
    assert_refused(
        admin_client(),
        Action.ADMIN_ADD_SOLVER,
        index=1,
        order_id=ZERO_ID,
        reason="invalid_text_message",
        fake_ln=fake_ln,
        payload=TextMessagePayload(text),
    )


def test_missing_payload_gets_invalid_text_message(node, fake_ln):
    assert_refused(
        admin_client(),
        Action.ADMIN_ADD_SOLVER,
        index=1,
        order_id=ZERO_ID,
        reason="invalid_text_message",
        fake_ln=fake_ln,
    )


@pytest.mark.parametrize("suffix", [":admin", ":read:write", ":"])
def test_bad_suffix_gets_invalid_parameters(node, fake_ln, suffix):
    assert_refused(
        admin_client(),
        Action.ADMIN_ADD_SOLVER,
        index=1,
        order_id=ZERO_ID,
        reason="invalid_parameters",
        fake_ln=fake_ln,
        payload=TextMessagePayload(npub(solver_client()) + suffix),
    )
    assert not Trader.objects.filter(is_solver=True).exists()


@pytest.mark.parametrize(
    "text", ["npub1xxxx:read", "nsec1qqqq", "8f4ee9162f3fb2088908e3a2e0cdaf502293f22eb40e793327c288566c666293"]
)
def test_bad_npub_is_silent(node, fake_ln, text):
    assert_silent(
        admin_client(),
        Action.ADMIN_ADD_SOLVER,
        index=1,
        order_id=ZERO_ID,
        fake_ln=fake_ln,
        payload=TextMessagePayload(text),
    )


def test_non_admin_identity_is_silent_even_with_a_bad_payload(node, fake_ln):
    stranger = solver_client("stranger")
    for payload in (TextMessagePayload(npub(stranger)), TextMessagePayload(""), None):
        assert_silent(stranger, Action.ADMIN_ADD_SOLVER, index=0, order_id=ZERO_ID, fake_ln=fake_ln, payload=payload)
    assert not Trader.objects.filter(is_solver=True).exists()
