"""Replies handed to the publisher already leased (nostrbridge.outbox.outbox_handed,
nostrbridge.bridge.handoff): the network lane's handlers and the invoice watcher's reports write
their replies leased and hand them over once committed, so the publisher publishes them without a
claim round on the database thread. A rolled-back reply is not handed over; a hand-off lost (the
process dies, the loop is closed) leaves the row to the claim once its lease ends; a leased row is
never claimed while its lease runs, so it is not published twice at once. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connections, transaction
from django.utils import timezone

from lightning.types import InvoiceState
from nostrbridge import publisher as publisher_module
from nostrbridge.bridge.handoff import ThreadsafeHandoff, handoff_register, handoff_unregister
from nostrbridge.models import OutboundMessage, OutboundStatus
from nostrbridge.outbox import Collected, LeasedHandoff, enqueue_cant_do, outbox_handed, outbox_handoff_set
from nostrbridge.outbox_rounds import PublishPolicy, outbox_claim
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.payloads import PaymentRequestPayload
from nostrbridge.publisher import OutboxPublisher
from nostrbridge.relays import PublishResult
from orders import escrow_watcher
from orders.models import Order
from tests.nostrbridge.bridge_helpers import close_db_thread_connections  # noqa: F401 — a fixture
from tests.nostrbridge.test_network_lane import (  # noqa: F401 — lanes and new_orders_to_the_lane are fixtures
    WAIT_S,
    drain,
    idle,
    lanes,
    new_orders_to_the_lane,
    store,
)
from tests.orders.services.support import (  # noqa: F401 — fake_ln and node are fixtures
    fake_ln,
    make_order,
    mint_invoice,
    node,
    order_terms,
    set_price,
)
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db(transaction=True)

POLICY = PublishPolicy(timeout_s=3.0)


class Received:
    """A registered publisher stand-in: the rows handed over, from whichever thread."""

    def __init__(self, lease_s: float = POLICY.lease_s) -> None:
        self.rows: list[Collected] = []
        self.threads: list[str] = []
        self.lock = threading.Lock()
        self.handoff = LeasedHandoff(lease_s=lease_s, take=self.take)

    def take(self, rows: list[Collected]) -> None:
        with self.lock:
            self.rows += rows
            self.threads.append(threading.current_thread().name)

    @property
    def pks(self) -> list[int]:
        return [row.pk for row in self.rows]


@pytest.fixture
def received():
    publisher = Received()
    outbox_handoff_set(publisher.handoff)
    yield publisher
    outbox_handoff_set(None, replacing=publisher.handoff)


def cant_do(recipient: str, request_id: int) -> None:
    enqueue_cant_do(recipient_pubkey=recipient, reason=CantDoReason.NOT_FOUND, request_id=request_id, order_id=None)


def claimable(*, after_s: float = 0.0) -> list[int]:
    """What the publisher's claim would take now (or `after_s` later); the claim is rolled back."""
    with transaction.atomic():
        pks = [
            row.pk
            for row in outbox_claim(limit=100, lease_s=POLICY.lease_s, now=timezone.now() + timedelta(seconds=after_s))
        ]
        transaction.set_rollback(True)
    return pks


# -- outbox_handed ---------------------------------------------------------------------------


def test_committed_replies_are_handed_over_leased_and_rolled_back_ones_are_not(received):
    first, second, third = (Keys.generate().public_key_hex for _ in range(3))
    with outbox_handed():
        with transaction.atomic():
            cant_do(first, 1)
            try:
                with transaction.atomic():
                    cant_do(second, 2)
                    raise RuntimeError("the transition was lost")
            except RuntimeError:
                pass
        assert received.rows == []  # handed over at the block's end, all committed rows at once
        try:
            with transaction.atomic():
                cant_do(third, 3)
                raise RuntimeError("rolled back as a whole")
        except RuntimeError:
            pass
    rows = list(OutboundMessage.objects.order_by("pk"))
    assert [row.recipient_pubkey for row in rows] == [first]
    assert received.pks == [rows[0].pk]
    assert received.rows[0].event.id == rows[0].event_id
    # Leased as the claim leases them: the publisher's claim does not take the row meanwhile.
    assert rows[0].next_attempt_at > timezone.now() + timedelta(seconds=POLICY.lease_s - 1)
    assert claimable() == []


def test_a_lost_hand_off_leaves_the_row_to_the_claim_after_its_lease():
    def lost(rows: list[Collected]) -> None:
        raise RuntimeError("the process died before the publisher got them")

    handoff = LeasedHandoff(lease_s=POLICY.lease_s, take=lost)
    outbox_handoff_set(handoff)
    try:
        recipient = Keys.generate().public_key_hex
        with outbox_handed(), transaction.atomic():
            cant_do(recipient, 1)
    finally:
        outbox_handoff_set(None, replacing=handoff)
    row = OutboundMessage.objects.get()
    assert row.status == OutboundStatus.PENDING
    assert claimable() == []
    assert claimable(after_s=POLICY.lease_s + 1) == [row.pk]


def test_without_a_registered_publisher_replies_are_written_for_the_claim_as_before():
    recipient = Keys.generate().public_key_hex
    with outbox_handed(), transaction.atomic():
        cant_do(recipient, 1)
    row = OutboundMessage.objects.get()
    assert row.next_attempt_at is None
    assert claimable() == [row.pk]


def test_the_lease_is_taken_when_the_row_is_written_not_when_the_block_began(received):
    first, second = (Keys.generate().public_key_hex for _ in range(2))
    with outbox_handed():
        with transaction.atomic():
            cant_do(first, 1)
        time.sleep(0.6)  # a lane's handler waiting on LND between its transactions
        written_at = timezone.now()
        with transaction.atomic():
            cant_do(second, 2)
    rows = list(OutboundMessage.objects.order_by("pk"))
    assert rows[1].next_attempt_at >= written_at + timedelta(seconds=POLICY.lease_s)
    assert rows[0].next_attempt_at < written_at + timedelta(seconds=POLICY.lease_s)
    assert received.rows[1].lease_ends_at >= time.monotonic() + POLICY.lease_s - 1


def test_a_claim_running_alongside_never_takes_a_handed_row(received):
    """Race: the publisher's claim loops in another thread (its own connection) while replies are
    written, some handed over, some for the claim. Every handed row is handed once and never
    claimed; every other row is claimed once."""
    stop = threading.Event()
    claimed: list[int] = []

    def claim_loop() -> None:
        try:
            while not stop.is_set():
                claimed.extend(row.pk for row in outbox_claim(limit=100, lease_s=POLICY.lease_s))
        finally:
            connections.close_all()

    claimer = threading.Thread(target=claim_loop)
    claimer.start()
    try:
        for number in range(30):
            with outbox_handed(), transaction.atomic():
                cant_do(Keys.generate().public_key_hex, number)
                cant_do(Keys.generate().public_key_hex, number)
            with transaction.atomic():
                cant_do(Keys.generate().public_key_hex, number)  # unleased: the claim's
    finally:
        stop.set()
        claimer.join()
    claimed += [row.pk for row in outbox_claim(limit=100, lease_s=POLICY.lease_s)]
    handed = received.pks
    assert len(handed) == len(set(handed)) == 60
    assert len(claimed) == len(set(claimed)) == 30
    assert set(claimed).isdisjoint(handed)
    assert set(claimed) | set(handed) == set(OutboundMessage.objects.values_list("pk", flat=True))


# -- the paths that use it ---------------------------------------------------------------------


@pytest.mark.usefixtures("new_orders_to_the_lane")
def test_a_lane_handlers_replies_reach_the_publisher_leased_without_a_claim(node, fake_ln, lanes, received):  # noqa: F811
    dave = TradeClient("dave")
    set_price()
    store(dave.build(Action.NEW_ORDER, index=1, payload=order_terms(fiat_amount=50), request_id=7))
    lane = lanes(threads=1)
    assert drain(lane) == 1
    idle(lane)

    rows = list(OutboundMessage.objects.order_by("pk"))
    assert [reply.action for reply in dave.replies()] == ["new-order"]
    assert len(rows) == 2  # the reply and the order's public event
    assert sorted(received.pks) == [row.pk for row in rows]
    assert received.threads == ["bridge-lane-0"]  # once, by the lane's thread, after its commits
    assert claimable() == []
    assert sorted(claimable(after_s=POLICY.lease_s + 1)) == [row.pk for row in rows]


def test_the_hold_accepted_reports_replies_reach_the_publisher_leased(node, fake_ln, received):  # noqa: F811
    set_price()
    alice, bob = TradeClient("alice"), TradeClient("bob")
    order = make_order(alice, index=1, kind="sell")
    bob.send(
        Action.TAKE_SELL,
        index=1,
        order_id=order.id,
        payload=PaymentRequestPayload(None, mint_invoice(amount_sats=0), None),
        request_id=3,
    )
    order.refresh_from_db()
    before = set(OutboundMessage.objects.values_list("pk", flat=True))
    received.rows.clear()  # the take ran in this thread, outside any lane or report
    fake_ln.mark_accepted(order.hold_invoice_hash)

    escrow_watcher._invoice_on_update_handed(payment_hash_hex=order.hold_invoice_hash, state=InvoiceState.ACCEPTED)

    assert Order.objects.get(pk=order.id).status == "active"
    new = sorted(set(OutboundMessage.objects.values_list("pk", flat=True)) - before)
    assert len(new) == 2  # buyer-took-order to the seller, hold-invoice-payment-accepted to the buyer
    assert sorted(received.pks) == new
    assert [reply.action for reply in bob.replies()] == ["hold-invoice-payment-accepted"]
    assert set(claimable()).isdisjoint(new)  # the earlier steps' rows (written here, unleased) only


# -- the publisher's side ----------------------------------------------------------------------


class FakePool:
    def __init__(self, *, connected: bool = True) -> None:
        self.connected = connected
        self.published: list[str] = []

    def connected_urls(self) -> list[str]:
        return ["ws://a"] if self.connected else []

    async def publish_many(self, items, *, timeout_s: float):
        self.published += [event_id for event_id, _ in items]
        if not self.connected:
            return [{"ws://a": PublishResult(None, "not connected")} for _ in items]
        return [{"ws://a": PublishResult(True, "")} for _ in items]


async def until(predicate, what: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while not predicate():  # noqa: ASYNC110 — polls state other tasks write
            await asyncio.sleep(0.01)
    assert predicate(), what


def write_handed(count: int) -> list[int]:
    """In the calling thread (not the loop's): `count` replies in one transaction, handed over."""
    with outbox_handed(), transaction.atomic():
        for number in range(count):
            cant_do(Keys.generate().public_key_hex, number)
    return list(OutboundMessage.objects.order_by("pk").values_list("pk", flat=True))


def no_claims(monkeypatch) -> list[int]:
    claims: list[int] = []
    real = publisher_module.outbox_claim

    def counted(**kwargs):
        found = real(**kwargs)
        claims.append(len(found))
        return found

    monkeypatch.setattr(publisher_module, "outbox_claim", counted)
    return claims


async def test_rows_handed_from_another_thread_are_published_once_without_a_claim(
    monkeypatch,
    close_db_thread_connections,  # noqa: F811
):
    claims = no_claims(monkeypatch)
    pool = FakePool()
    publisher = OutboxPublisher(pool, policy=POLICY)  # type: ignore[arg-type]
    handoff = handoff_register(asyncio.get_running_loop(), publisher)
    try:
        pks = await sync_to_async(write_handed)(3)
    finally:
        handoff_unregister(handoff)
    await until(lambda: publisher.published == 3, "the handed rows published and recorded")
    events = [row.event_id for row in await sync_to_async(lambda: list(OutboundMessage.objects.order_by("pk")))()]
    assert pool.published == events  # once each, in order
    assert claims == []  # no claim round
    statuses = await sync_to_async(
        lambda: set(OutboundMessage.objects.filter(pk__in=pks).values_list("status", flat=True))
    )()
    assert statuses == {OutboundStatus.SENT}
    assert await sync_to_async(claimable)(after_s=POLICY.lease_s + 1) == []


async def test_handed_rows_wait_for_a_relay_and_are_left_to_the_claim_once_their_lease_is_short(
    monkeypatch,
    close_db_thread_connections,  # noqa: F811
):
    no_claims(monkeypatch)
    pool = FakePool(connected=False)
    publisher = OutboxPublisher(pool, policy=POLICY)  # type: ignore[arg-type]
    take = ThreadsafeHandoff(asyncio.get_running_loop(), publisher)
    handoff = LeasedHandoff(lease_s=POLICY.lease_s, take=take)
    outbox_handoff_set(handoff)
    try:
        fresh = await sync_to_async(write_handed)(1)
    finally:
        outbox_handoff_set(None, replacing=handoff)
    await asyncio.sleep(0.05)
    assert pool.published == []  # no relay: held by the publisher, not published, not dropped
    pool.connected = True
    await publisher.publish_due()  # as at a relay's connection
    await until(lambda: publisher.published == 1, "the held row published once a relay connected")
    first = await sync_to_async(lambda: OutboundMessage.objects.get(pk=fresh[0]))()
    assert pool.published == [first.event_id]

    # A row whose lease no longer leaves a full round: not started, so it cannot be published
    # at the same time as by the claim that takes it when the lease ends.
    short = time.monotonic() + POLICY.timeout_s  # a lease ending within one publish timeout
    publisher.publish_handed([(short, publisher_module.Claimed(first.pk, {"id": first.event_id}, "pending", 0))])
    await asyncio.sleep(0.05)
    assert pool.published == [first.event_id]


async def test_a_closed_loop_loses_the_hand_off_and_the_lease_brings_the_row_back(
    close_db_thread_connections,  # noqa: F811
):
    loop = asyncio.new_event_loop()
    loop.close()
    publisher = OutboxPublisher(FakePool(), policy=POLICY)  # type: ignore[arg-type]
    handoff = LeasedHandoff(lease_s=POLICY.lease_s, take=ThreadsafeHandoff(loop, publisher))
    outbox_handoff_set(handoff)
    try:
        pks = await sync_to_async(write_handed)(1)  # logged, not raised: the commit stands
    finally:
        outbox_handoff_set(None, replacing=handoff)
    assert await sync_to_async(claimable)() == []
    assert await sync_to_async(claimable)(after_s=POLICY.lease_s + 1) == pks


@pytest.mark.usefixtures("new_orders_to_the_lane")
async def test_a_lane_threads_replies_reach_the_relays_through_the_loop_without_a_claim(
    node,  # noqa: F811
    fake_ln,  # noqa: F811
    lanes,  # noqa: F811
    monkeypatch,
    close_db_thread_connections,  # noqa: F811
):
    """The whole way: a new-order handled on a lane thread, its replies committed there, handed
    to the publisher on this loop, published and recorded; the publisher never claims them."""
    claims = no_claims(monkeypatch)
    pool = FakePool()
    publisher = OutboxPublisher(pool, policy=POLICY)  # type: ignore[arg-type]
    handoff = handoff_register(asyncio.get_running_loop(), publisher)
    dave = TradeClient("dave")
    try:
        await sync_to_async(set_price)()
        new_order = dave.build(Action.NEW_ORDER, index=1, payload=order_terms(fiat_amount=50), request_id=7)
        await sync_to_async(store)(new_order)
        lane = lanes(threads=1)
        assert await sync_to_async(drain)(lane) == 1
        await until(lambda: publisher.published == 2, "the reply and the order event published and recorded")
    finally:
        handoff_unregister(handoff)
    rows = await sync_to_async(lambda: list(OutboundMessage.objects.order_by("pk")))()
    assert sorted(pool.published) == sorted(row.event_id for row in rows)
    assert {row.status for row in rows} == {OutboundStatus.SENT}
    assert claims == []
    assert [reply.action for reply in await sync_to_async(dave.replies)()] == ["new-order"]
