"""The bridge's network lane (nostrbridge.bridge.lane): a handler that hangs on LND holds up only
the messages of its order, trade key or identity; every other trader is answered meanwhile, by
the database thread's group commit or by another lane thread. Ordering is asserted by events
(a barrier the hanging call waits on), never by timing. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from nostrbridge import dispatch
from nostrbridge.bridge import lane as lane_module
from nostrbridge.bridge.lane import NetworkLane
from nostrbridge.bridge.worker import drain_batch
from nostrbridge.inbox import inbox_release, inbox_store
from nostrbridge.models import InboundEvent, InboundStatus, OutboundMessage
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import IdsPayload, PaymentRequestPayload
from nostrbridge.wiring import bridge_wiring
from orders.models import Order
from tests.orders.services.support import (  # noqa: F401 — fake_ln and node are fixtures
    fake_ln,
    make_order,
    mint_invoice,
    node,
    order_terms,
    set_price,
)
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db(transaction=True)]

WORKER = "w:1:lane"
WAIT_S = 30.0  # only a bound on a wait for an event that must happen; never an assertion on speed


@pytest.fixture
def lanes() -> Iterator[Callable[..., NetworkLane]]:
    made: list[NetworkLane] = []

    def make(*, threads: int = 2, capacity: int = 64, start: bool = True) -> NetworkLane:
        lane = NetworkLane(worker_id=WORKER, threads=threads, capacity=capacity)
        if start:
            lane.start()
        made.append(lane)
        return lane

    yield make
    for lane in made:
        lane.stop()
        assert lane.join(WAIT_S)


@pytest.fixture
def new_orders_to_the_lane(monkeypatch) -> None:
    """Every new-order goes to the lane, as one paying to a Lightning address or on a node asking
    makers for a bond does (`new_order_stays_in_database`); others stay in the group commit."""
    monkeypatch.setitem(bridge_wiring().group_commit_when, "new-order", lambda ctx: False)


def store(*events) -> list[int]:
    return inbox_store(items=[("ws://test", event.to_dict()) for event in events])


def drain(lane: NetworkLane, *, limit: int = 50) -> int:
    return drain_batch(worker_id=WORKER, limit=limit, stop=threading.Event(), network=lane)


def until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def idle(lane: NetworkLane) -> None:
    until(lambda: lane.busy == 0, "the lane finished its tasks")


def actions_to(client: TradeClient) -> list[str]:
    return [reply.action for reply in client.replies()]


def statuses(pks: list[int]) -> list[str]:
    by_pk = dict(InboundEvent.objects.filter(pk__in=pks).values_list("pk", "status"))
    return [by_pk[pk] for pk in pks]


class Hang:
    """Stands for an LND call that does not answer: `entered` once the call is made, and it
    returns only when the test sets `answer`."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.answer = threading.Event()

    def wait(self) -> None:
        self.entered.set()
        assert self.answer.wait(WAIT_S), "the test never let the hanging call answer"


@pytest.mark.usefixtures("new_orders_to_the_lane")
def test_a_take_hanging_on_lnd_holds_up_no_other_trader(node, fake_ln, monkeypatch, lanes):  # noqa: F811
    """Bob's take waits on LND for its hold invoice. Carol's `orders` query (the database thread)
    and Dave's new-order (another lane thread) are answered while it hangs; the take completes
    when LND answers."""
    set_price()
    alice, bob, carol, dave = (TradeClient(name) for name in ("alice", "bob", "carol", "dave"))
    order = make_order(alice, index=1)
    alice.replies()
    hang = Hang()
    real_add_hold_invoice = fake_ln.add_hold_invoice

    def add_hold_invoice(**kwargs):
        hang.wait()
        return real_add_hold_invoice(**kwargs)

    monkeypatch.setattr(fake_ln, "add_hold_invoice", add_hold_invoice)
    take = bob.build(
        Action.TAKE_SELL,
        index=1,
        order_id=order.id,
        payload=PaymentRequestPayload(None, mint_invoice(amount_sats=7827), None),
        request_id=5,
    )
    query = carol.build(Action.ORDERS, index=1, payload=IdsPayload([order.id]), request_id=6)
    new_order = dave.build(Action.NEW_ORDER, index=1, payload=order_terms(fiat_amount=50), request_id=7)
    pks = store(take, query, new_order)
    lane = lanes(threads=2)

    assert drain(lane) == 3
    assert hang.entered.wait(WAIT_S)
    until(lambda: statuses(pks)[2] == InboundStatus.DONE, "Dave's new-order answered")

    # LND has not answered the take: the other traders are answered, the take is still in hand.
    assert not hang.answer.is_set()
    assert statuses(pks) == [InboundStatus.PROCESSING, InboundStatus.DONE, InboundStatus.DONE]
    assert actions_to(carol) == ["cant-do"]  # not her order: not_found, answered by the group commit
    assert actions_to(dave) == ["new-order"]
    assert actions_to(bob) == []
    assert Order.objects.get(pk=order.id).status == "pending"

    hang.answer.set()
    idle(lane)
    assert statuses(pks) == [InboundStatus.DONE] * 3
    assert actions_to(bob) == ["waiting-seller-to-pay"]
    assert actions_to(alice) == ["pay-invoice"]
    assert Order.objects.get(pk=order.id).status == "waiting-payment"


def patch_handlers(monkeypatch, handlers: dict[str, Callable]) -> None:
    real = dispatch.get_handler
    monkeypatch.setattr(dispatch, "get_handler", lambda name: handlers.get(name) or real(name))


def recording(log: list[str], name: str, *, hang: Hang | None = None) -> Callable:
    def handler(ctx) -> None:
        log.append(f"{name} start in {threading.current_thread().name.rstrip('0123456789')}")
        if hang is not None:
            hang.wait()
        with ctx.atomic():
            pass
        log.append(f"{name} end")

    return handler


def test_one_orders_messages_keep_their_order_and_other_orders_go_on(monkeypatch, lanes):
    """The seller's release of order X hangs. The buyer's fiat-sent of X (database-only) is not
    run in the group but queued behind the release, and a second release of X waits too; Dave's
    take of another order runs meanwhile, Carol's query is answered by the database thread."""
    order_x, order_y = uuid.uuid4(), uuid.uuid4()
    seller, buyer, carol, dave = (TradeClient(name) for name in ("seller", "buyer", "carol", "dave"))
    hang = Hang()
    log: list[str] = []
    take_done = threading.Event()
    take = recording(log, "take Y")
    patch_handlers(
        monkeypatch,
        {
            "release": recording(log, "release X", hang=hang),
            "fiat-sent": recording(log, "fiat-sent X"),
            "take-sell": lambda ctx: (take(ctx), take_done.set()),
        },
    )
    pks = store(
        seller.build(Action.RELEASE, index=1, order_id=order_x),
        buyer.build(Action.FIAT_SENT, index=1, order_id=order_x),
        carol.build(Action.ORDERS, index=1, payload=IdsPayload([order_x])),
        dave.build(Action.TAKE_SELL, index=1, order_id=order_y),
        seller.build(Action.RELEASE, index=1, order_id=order_x),
    )
    lane = lanes(threads=3)

    assert drain(lane) == 5
    assert hang.entered.wait(WAIT_S)
    assert take_done.wait(WAIT_S)

    assert log == ["release X start in bridge-lane-", "take Y start in bridge-lane-", "take Y end"] or log == [
        "take Y start in bridge-lane-",
        "take Y end",
        "release X start in bridge-lane-",
    ]
    assert statuses(pks) == [
        InboundStatus.PROCESSING,
        InboundStatus.PROCESSING,
        InboundStatus.DONE,
        InboundStatus.DONE,
        InboundStatus.PROCESSING,
    ]
    assert actions_to(carol) == ["cant-do"]  # answered while the release hangs

    hang.answer.set()
    idle(lane)
    of_x = [entry for entry in log if "X" in entry]
    assert of_x == [
        "release X start in bridge-lane-",
        "release X end",
        "fiat-sent X start in bridge-lane-",  # not in the database thread's group
        "fiat-sent X end",
        "release X start in bridge-lane-",
        "release X end",
    ]
    assert statuses(pks) == [InboundStatus.DONE] * 5


def test_a_trade_keys_messages_wait_for_its_hanging_one(monkeypatch, lanes):
    """The same trade key (and identity) without an order id: Bob's `orders` query waits behind
    his own hanging take instead of overtaking it."""
    bob = TradeClient("bob")
    hang = Hang()
    log: list[str] = []
    patch_handlers(monkeypatch, {"take-sell": recording(log, "take", hang=hang), "orders": recording(log, "orders")})
    pks = store(
        bob.build(Action.TAKE_SELL, index=1, order_id=uuid.uuid4()),
        bob.build(Action.ORDERS, index=1, payload=IdsPayload([uuid.uuid4()])),
    )
    lane = lanes()

    assert drain(lane) == 2
    assert hang.entered.wait(WAIT_S)
    assert statuses(pks) == [InboundStatus.PROCESSING, InboundStatus.PROCESSING]
    hang.answer.set()
    idle(lane)
    assert log == ["take start in bridge-lane-", "take end", "orders start in bridge-lane-", "orders end"]
    assert statuses(pks) == [InboundStatus.DONE] * 2


def test_a_full_lane_hands_the_message_back_to_the_inbox_for_a_moment(monkeypatch, lanes):
    """The database thread never runs a network handler: with the lane full, Dave's take-buy goes
    back to the inbox (no attempt spent, no reply) and is taken again once its moment is over."""
    bob, dave = TradeClient("bob"), TradeClient("dave")
    hang = Hang()
    log: list[str] = []
    patch_handlers(
        monkeypatch,
        {"take-sell": recording(log, "take", hang=hang), "take-buy": recording(log, "take-buy")},
    )
    pks = store(
        bob.build(Action.TAKE_SELL, index=1, order_id=uuid.uuid4()),
        dave.build(Action.TAKE_BUY, index=1, order_id=uuid.uuid4()),
    )
    lane = lanes(threads=1, capacity=1)
    assert drain(lane) == 2
    assert hang.entered.wait(WAIT_S)

    assert log == ["take start in bridge-lane-"]
    rows = list(InboundEvent.objects.filter(pk__in=pks).order_by("pk").values_list("status", "attempts", "locked_by"))
    assert rows == [(InboundStatus.PROCESSING, 1, WORKER), (InboundStatus.PROCESSING, 0, "deferred")]
    assert OutboundMessage.objects.count() == 0

    hang.answer.set()
    idle(lane)
    InboundEvent.objects.filter(pk=pks[1]).update(locked_until=timezone.now() - timedelta(seconds=1))  # its moment
    assert drain(lane) == 1
    idle(lane)
    assert log == ["take start in bridge-lane-", "take end", "take-buy start in bridge-lane-", "take-buy end"]
    assert statuses(pks) == [InboundStatus.DONE] * 2


def test_stop_hands_back_the_queued_messages_and_lets_the_one_in_hand_finish(monkeypatch, lanes):
    bob, dave = TradeClient("bob"), TradeClient("dave")
    hang = Hang()
    log: list[str] = []
    patch_handlers(monkeypatch, {"take-sell": recording(log, "take", hang=hang), "take-buy": recording(log, "never")})
    pks = store(
        bob.build(Action.TAKE_SELL, index=1, order_id=uuid.uuid4()),
        dave.build(Action.TAKE_BUY, index=1, order_id=uuid.uuid4()),
    )
    lane = lanes(threads=1)
    assert drain(lane) == 2
    assert hang.entered.wait(WAIT_S)

    queued = lane.stop()
    inbox_release(pks=queued, worker_id=WORKER)
    hang.answer.set()
    assert lane.join(WAIT_S)

    assert queued == [pks[1]]
    # A batch still in hand after the lane stopped (the shutdown's wait ran out): handed back too.
    pks += store(TradeClient("erin").build(Action.TAKE_BUY, index=1, order_id=uuid.uuid4()))
    assert drain(lane) == 2
    assert log == ["take start in bridge-lane-", "take end"]
    rows = list(InboundEvent.objects.filter(pk__in=pks).order_by("pk").values_list("status", "attempts", "locked_by"))
    assert rows == [
        (InboundStatus.DONE, 1, WORKER),
        (InboundStatus.RECEIVED, 0, WORKER),
        (InboundStatus.RECEIVED, 0, WORKER),
    ]


def test_a_queued_message_is_not_claimed_again_and_a_lost_lease_is_not_processed(monkeypatch, lanes):
    """A row that waited in the lane past its lease: this bridge does not claim it again; taken
    by another bridge process meanwhile, the lane leaves it to that process."""
    bob, dave = TradeClient("bob"), TradeClient("dave")
    log: list[str] = []
    patch_handlers(monkeypatch, {"take-sell": recording(log, "take"), "take-buy": recording(log, "take-buy")})
    take, take_buy = store(
        bob.build(Action.TAKE_SELL, index=1, order_id=uuid.uuid4()),
        dave.build(Action.TAKE_BUY, index=1, order_id=uuid.uuid4()),
    )
    lane = lanes(threads=1, start=False)
    assert drain(lane) == 2
    # Both leases run out while they wait; another bridge process claims the take-buy.
    monkeypatch.setattr(lane_module, "LEASE_SECONDS", 0)  # every task renews its lease first
    InboundEvent.objects.update(locked_until=timezone.now() - timedelta(seconds=1))
    InboundEvent.objects.filter(pk=take_buy).update(locked_by="elsewhere:1:x")
    assert drain(lane) == 0
    assert lane.busy == 2

    lane.start()
    idle(lane)
    assert log == ["take start in bridge-lane-", "take end"]
    rows = list(InboundEvent.objects.order_by("pk").values_list("status", "attempts", "locked_by"))
    assert rows == [(InboundStatus.DONE, 1, WORKER), (InboundStatus.PROCESSING, 1, "elsewhere:1:x")]
    assert OutboundMessage.objects.count() == 0


def test_a_finished_task_unblocks_every_task_it_held_without_waking_every_thread(monkeypatch):
    """A's end frees two tasks that do not share a key with each other (B: A's order, C: A's
    identity): both run at once, on two threads, each woken by a single notify (the finishing
    thread looks for work itself and wakes one other when more is queued), never `notify_all`."""
    from types import SimpleNamespace

    a_answer, both_in = threading.Event(), threading.Barrier(2, timeout=WAIT_S)
    ran: list[str] = []

    def handler(ctx) -> None:
        ran.append(ctx.name)
        if ctx.name == "A":
            assert a_answer.wait(WAIT_S)
        else:
            both_in.wait()  # B and C inside their handlers at the same time

    monkeypatch.setattr(lane_module, "dispatch_opened", handler)
    lane = NetworkLane(worker_id=WORKER, threads=3)
    woke_all: list[int] = []
    lane._cond.notify_all = lambda: woke_all.append(1)  # type: ignore[method-assign]
    lane.start()

    def task(name: str, pk: int, *, order: str, identity: str) -> SimpleNamespace:
        return SimpleNamespace(name=name, inbound_pk=pk, sender=f"key-{name}", identity=identity, order_id=order)

    lane.submit(task("A", 1, order="X", identity="I1"), claimed_at=time.monotonic())
    until(lambda: ran == ["A"], "A started")
    lane.submit(task("B", 2, order="X", identity="I2"), claimed_at=time.monotonic())
    lane.submit(task("C", 3, order="Y", identity="I1"), claimed_at=time.monotonic())
    time.sleep(0.05)
    assert (ran, lane.busy) == (["A"], 3)  # B and C wait for A
    a_answer.set()
    idle(lane)
    assert sorted(ran[1:]) == ["B", "C"]
    assert woke_all == []
    del lane._cond.notify_all  # the class's own again, for the shutdown
    lane.stop()
    assert lane.join(WAIT_S)
