"""The first-contact PoW gate (docs/PROTOCOL.md §Intake): dispatch asks the apps above the bridge,
through the composition root, whether it already deals with a trade key."""

import pytest

from disputes.models import Dispute
from mostro_site.config import clear_node_config_cache
from nostrbridge.models import InboundEvent
from nostrbridge.protocol.enums import Action
from tests.foundation.factories import make_order
from tests.trade.harness import TradeClient, deliver

pytestmark = pytest.mark.django_db

GATE_DROP = "first-contact proof of work not met"


@pytest.fixture(autouse=True)
def first_contact_pow(settings):
    settings.MOSTRO_POW = 0
    settings.MOSTRO_POW_FIRST_CONTACT = 255  # unreachable: only keys the node knows get through
    clear_node_config_cache()
    yield
    clear_node_config_cache()


def _send_last_trade_index(client: TradeClient) -> tuple[str, list[str]]:
    event = client.build(Action.LAST_TRADE_INDEX, index=1)
    deliver(event)
    return InboundEvent.objects.get(event_id=event.id).drop_reason, [reply.action for reply in client.replies()]


def _disputed_order_with_solver(solver: str, *, status: str) -> None:
    order = make_order(status="dispute", seller_pubkey="c" * 64, creator_pubkey="c" * 64, buyer_pubkey="d" * 64)
    Dispute.objects.create(
        order=order,
        status=status,
        initiator="buyer",
        initiator_pubkey="d" * 64,
        order_previous_status="fiat-sent",
        solver_pubkey=solver,
    )


def test_unknown_key_without_the_first_contact_pow_is_dropped_unanswered():
    assert _send_last_trade_index(TradeClient("stranger")) == (GATE_DROP, [])


@pytest.mark.parametrize(("_case", "status", "known"), [("unfinished", "active", True), ("finished", "success", False)])
def test_a_trade_key_is_known_while_its_order_is_unfinished(_case, status, known):
    client = TradeClient("trader")
    make_order(status=status, seller_pubkey=client.pubkey(1), creator_pubkey=client.pubkey(1))

    drop_reason, replies = _send_last_trade_index(client)

    # Past the gate the identity has no trade index yet: `cant-do not_found`.
    assert (drop_reason, replies) == (("cant-do not_found", ["cant-do"]) if known else (GATE_DROP, []))


@pytest.mark.parametrize(("_case", "status", "known"), [("open", "in-progress", True), ("closed", "settled", False)])
def test_the_solver_of_an_open_dispute_is_known(_case, status, known):
    solver = TradeClient("solver")
    _disputed_order_with_solver(solver.pubkey(1), status=status)

    drop_reason, replies = _send_last_trade_index(solver)

    assert (drop_reason, replies) == (("cant-do not_found", ["cant-do"]) if known else (GATE_DROP, []))
