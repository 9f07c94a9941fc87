"""A `new-order` in the bridge's group commit (`BridgeWiring.group_commit_when`,
docs/ARCHITECTURE.md §Relay bridge, its group commit): one that cannot leave the database runs
in the group with its neighbours; one paying to a Lightning address, or on a node asking makers
for a bond, runs on its own. A handler kept in the group that finds bonds turned on since leaves
it before writing anything, and no network call is made inside the group's transaction."""

import threading
import uuid

import pytest
from django.db import connection

from nostrbridge.bridge import group as bridge_group
from nostrbridge.bridge.intake import store_batch
from nostrbridge.bridge.worker import drain_batch
from nostrbridge.context import InboundContext
from nostrbridge.inbox import inbox_claim_rows
from nostrbridge.models import InboundEvent, InboundStatus, OutboundMessage
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import IdsPayload
from nostrbridge.protocol.transport import wrap_v2
from nostrbridge.wiring import bridge_wiring
from orders.bonds.models import Bond
from orders.handlers.new_order import new_order_stays_in_database
from orders.models import Order
from tests.nostrbridge.bridge_helpers import commits_counted
from tests.orders.services.support import configure, mint_invoice, order_terms, set_price

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("node")]

WORKER = "w:1:a"


def _store(*messages: Message) -> list[str]:
    """Store one request per message, each from a fresh trade key (full privacy); the senders."""
    senders, items = [], []
    for message in messages:
        trade = Keys.generate()
        items.append(("ws://a", wrap_v2(message, trade, node_pubkey(), sign=False).to_dict(), False))
        senders.append(trade.public_key_hex)
    store_batch(items)
    return senders


def _orders(request_id: int) -> Message:
    """A database-only neighbour: an `orders` request for an unknown id (`cant-do not_found`)."""
    return Message.new(Action.ORDERS, request_id=request_id, payload=IdsPayload([uuid.uuid4()]))


def _new_order(request_id: int, **terms) -> Message:
    return Message.new(Action.NEW_ORDER, request_id=request_id, payload=order_terms(**terms))


def _ctx(**terms) -> InboundContext:
    return InboundContext(
        inbound_pk=None, event_id="e" * 64, sender="a" * 64, identity="a" * 64, action="new-order",
        request_id=1, trade_index=None, order_id=None, payload=order_terms(**terms),
    )  # fmt: skip


def _replies() -> list[tuple[str, str]]:
    return list(OutboundMessage.objects.filter(kind=14).order_by("pk").values_list("recipient_pubkey", "action"))


def test_a_new_order_that_cannot_leave_the_database_commits_with_its_neighbours():
    set_price()
    senders = _store(_orders(1), _new_order(2), _orders(3))
    with commits_counted() as commits:
        assert drain_batch(worker_id=WORKER, limit=50, stop=threading.Event()) == 3

    assert len(commits) == 1  # one transaction for the three (the new-order used to end the group)
    assert list(InboundEvent.objects.values_list("status", flat=True)) == [InboundStatus.DONE] * 3
    assert list(Order.objects.values_list("creator_pubkey", "status")) == [(senders[1], "pending")]
    # The refusals are held writes, inserted at the group's end (nostrbridge.group_writes).
    assert _replies() == [(senders[1], "new-order"), (senders[0], "cant-do"), (senders[2], "cant-do")]


@pytest.mark.parametrize(
    ("terms", "stays"),
    [
        ({"kind": "sell"}, True),  # a market order: its price is read from the database
        ({"kind": "sell", "amount": 5_000, "premium": 0}, True),
        ({"kind": "buy", "buyer_invoice": "buyer@example.com"}, False),  # a Lightning address's check
        ({"kind": "buy", "buyer_invoice": " LNURL1DP68GURN8GHJ7UM9WFMXJCM99E3K7MF0V9CXJ0M385EKVCENXC6R2C35 "}, False),
    ],
)
def test_which_new_orders_stay_in_the_database(terms, stays):
    assert new_order_stays_in_database(_ctx(**terms)) is stays
    assert bridge_wiring().stays_in_database(_ctx(**terms)) is stays


def test_a_new_order_with_a_bolt11_stays_in_the_database():
    invoice = mint_invoice(amount_sats=5_000)
    assert new_order_stays_in_database(_ctx(kind="buy", amount=5_000, premium=0, buyer_invoice=invoice)) is True


def test_on_a_node_asking_makers_for_a_bond_no_new_order_stays(settings):
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_ENABLED=True, MOSTRO_ANTI_ABUSE_BOND_APPLY_TO="make")
    assert new_order_stays_in_database(_ctx(kind="sell", amount=5_000, premium=0)) is False


class _Lane:
    """A network lane that takes nothing by itself and records what the group hands it."""

    def __init__(self) -> None:
        self.handed: list[tuple[str, bool]] = []  # (action, a transaction open)

    def takes(self, ctx) -> bool:
        return not bridge_wiring().stays_in_database(ctx)

    def submit(self, ctx) -> None:
        self.handed.append((ctx.action, connection.in_atomic_block))


def test_bonds_turned_on_after_the_group_kept_the_new_order_leave_it_before_any_write(settings, monkeypatch, fake_ln):
    set_price()
    # The bridge decided with bonds off; the handler reads the configuration with them on.
    monkeypatch.setitem(bridge_wiring().group_commit_when, "new-order", lambda ctx: True)
    configure(settings, MOSTRO_ANTI_ABUSE_BOND_ENABLED=True, MOSTRO_ANTI_ABUSE_BOND_APPLY_TO="make")
    senders = _store(_orders(1), _new_order(2))
    lane = _Lane()
    bridge_group.process_rows(
        inbox_claim_rows(worker_id=WORKER, limit=50),
        stop=threading.Event(),
        process_alone=lambda row: pytest.fail("nothing runs alone"),
        release=lambda pks: None,
        lane=lane,
    )

    assert lane.handed == [("new-order", False)]  # after the group committed
    assert (Order.objects.count(), Bond.objects.count(), fake_ln.calls) == (0, 0, [])
    assert _replies() == [(senders[0], "cant-do")]
    assert list(InboundEvent.objects.order_by("pk").values_list("status", flat=True)) == [
        InboundStatus.DONE,
        InboundStatus.PROCESSING,  # still claimed: the lane runs it
    ]
