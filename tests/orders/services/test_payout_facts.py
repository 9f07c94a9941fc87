"""The buyer's invoice is decoded once, where the node accepts it: the release hands the decode's
facts to the payout task (`lightning.bolt11_facts`), and the worker checks the pay-time rules
on them (network, CLTV, expiry now, exact amount) instead of decoding the same string again."""

import pytest
from django.db import transaction
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from lightning import bolt11
from lightning.bolt11_facts import invoice_facts, invoice_from_facts
from orders.models import Order
from orders.services import payout
from orders.services.payout import PAYOUT_TASK, payout_schedule, payout_start
from orders.services.payout_queue import task_enqueue
from tests.guards.support import settled_trade
from tests.orders.services.support import mint_invoice

pytestmark = pytest.mark.django_db
ORDER_ID = "0f5e1f27-5c83-4f0c-9d86-6a5e1a3f2b11"
PAYOUT_SATS = 7827  # the payout of the test trade (amount − fee)


@pytest.fixture
def decodes(monkeypatch):
    """How many invoices the payout decodes from here on (the fake LND decodes what it pays too)."""
    calls = []
    real = payout.validate_payout_invoice

    def counted(payment_request, **kwargs):
        calls.append(payment_request)
        return real(payment_request, **kwargs)

    monkeypatch.setattr(payout, "validate_payout_invoice", counted)
    return lambda: len(calls)


def _sends(fake_ln) -> list[str]:
    return [args["payment_request"] for name, args in fake_ln.calls if name == "send_payment"]


def test_the_payout_with_the_releases_facts_does_not_decode_again(node, fake_ln, decodes):
    trade = settled_trade(fake_ln)
    invoice = trade.refresh().buyer_invoice
    facts = invoice_facts(invoice)

    assert payout_start(order_id=trade.order.id, request_id=5, invoice_facts=facts) == "succeeded"

    assert decodes() == 0
    order = trade.refresh()
    assert (order.status, order.payout_payment_hash) == ("success", bolt11.decode_invoice(invoice).payment_hash_hex)
    assert _sends(fake_ln) == [invoice]


def test_facts_of_another_invoice_are_not_used(node, fake_ln, decodes):
    trade = settled_trade(fake_ln)
    invoice = trade.refresh().buyer_invoice
    other = invoice_facts(mint_invoice(amount_sats=PAYOUT_SATS))  # e.g. the invoice a replacement swapped out

    assert payout_start(order_id=trade.order.id, invoice_facts=other) == "succeeded"

    assert decodes() == 1  # the order's own invoice, decoded here
    assert trade.refresh().payout_payment_hash == bolt11.decode_invoice(invoice).payment_hash_hex
    assert _sends(fake_ln) == [invoice]


@pytest.mark.parametrize(
    ("_case", "invoice"),
    [
        (
            "expired since it was accepted",
            lambda: mint_invoice(amount_sats=PAYOUT_SATS, expiry_seconds=60, age_seconds=61),
        ),
        ("another amount", lambda: mint_invoice(amount_sats=PAYOUT_SATS + 1)),
        ("another chain", lambda: mint_invoice(amount_sats=PAYOUT_SATS, currency="bc")),
        ("a CLTV above the limit", lambda: mint_invoice(amount_sats=PAYOUT_SATS, min_final_cltv=145)),
    ],
)
def test_the_pay_time_rules_apply_to_the_facts(_case, invoice, node, fake_ln, decodes):
    trade = settled_trade(fake_ln)
    bad = invoice()
    Order.objects.filter(pk=trade.order.id).update(buyer_invoice=bad)
    facts = invoice_facts(bad)

    assert payout_start(order_id=trade.order.id, invoice_facts=facts) == "failed"

    assert decodes() == 0  # refused on the facts
    assert _sends(fake_ln) == []
    order = trade.refresh()
    assert (order.status, order.failed_payment, order.payout_payment_hash) == ("settled-hold-invoice", True, None)


@pytest.mark.parametrize(
    "damage",
    [
        lambda facts: facts[:-1],
        lambda facts: list(facts),
        lambda facts: (*facts[:2], True, *facts[3:]),
        lambda facts: (facts[0].hex(), *facts[1:]),
        lambda facts: None,
    ],
)
def test_facts_of_the_wrong_shape_are_not_used(damage):
    invoice = mint_invoice(amount_sats=PAYOUT_SATS)
    decoded, facts = bolt11.decode_invoice(invoice), invoice_facts(invoice)
    known = invoice_from_facts(invoice, facts)
    payout_fields = ("payment_request", "payment_hash_hex", "amount_msat", "network", "timestamp")
    payout_fields += ("expiry_seconds", "min_final_cltv_expiry", "currency")
    assert [getattr(known, name) for name in payout_fields] == [getattr(decoded, name) for name in payout_fields]
    assert invoice_from_facts(invoice, damage(facts)) is None


def test_the_facts_match_the_invoice_written_any_way(node):
    invoice = mint_invoice(amount_sats=PAYOUT_SATS)
    facts = invoice_facts(invoice)
    assert invoice_from_facts(f"  lightning:{invoice.upper()} ", facts).payment_hash_hex == facts[1]
    assert invoice_facts("lnbcrt1notaninvoice") is None


@pytest.mark.django_db(transaction=True)
def test_the_release_queues_the_facts_of_a_bolt11_and_none_of_an_address(monkeypatch):
    # A string that does not decode gets no facts either (not `invoice_facts: None`): the
    # worker's own decode refuses it.
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", "default")
    invoice = mint_invoice(amount_sats=PAYOUT_SATS)
    with transaction.atomic():
        payout_schedule(order_id=ORDER_ID, request_id=7, buyer_invoice=invoice)
        payout_schedule(order_id=ORDER_ID, request_id=8, buyer_invoice="buyer@example.com")
        payout_schedule(order_id=ORDER_ID, request_id=9, buyer_invoice="lnbcrt1notaninvoice")
    kwargs = [SignedPackage.loads(row.payload)["kwargs"] for row in OrmQ.objects.order_by("pk")]
    assert kwargs == [
        {"order_id": ORDER_ID, "request_id": 7, "invoice_facts": invoice_facts(invoice)},
        {"order_id": ORDER_ID, "request_id": 8},
        {"order_id": ORDER_ID, "request_id": 9},
    ]


class _Capture:
    list_key = "mostro"

    def __init__(self):
        self.packages = []

    def enqueue(self, package):
        self.packages.append(package)
        return len(self.packages)


@pytest.mark.parametrize("ack_failures", [True, False])
def test_task_enqueue_builds_async_tasks_package(ack_failures, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ACK_FAILURES", ack_failures)
    seen = []
    from django_q.signals import pre_enqueue

    def receiver(sender, task, **kwargs):
        seen.append((sender, dict(task)))

    pre_enqueue.connect(receiver, dispatch_uid="test-task-enqueue")
    try:
        theirs, ours = _Capture(), _Capture()
        kwargs = {"order_id": ORDER_ID, "request_id": 3, "invoice_facts": (b"x" * 32, "ab", 1, "bcrt", 2, 3, 4)}
        async_task(PAYOUT_TASK, task_name=f"payout-{ORDER_ID}", save=False, broker=theirs, **kwargs)
        assert task_enqueue(func=PAYOUT_TASK, name=f"payout-{ORDER_ID}", kwargs=kwargs, broker=ours, save=False) == 1
    finally:
        pre_enqueue.disconnect(dispatch_uid="test-task-enqueue")
    [expected], [built] = (
        (SignedPackage.loads(p) for p in theirs.packages),
        (SignedPackage.loads(p) for p in ours.packages),
    )
    assert list(built) == list(expected)  # the same keys, in the same order
    assert len(built["id"]) == len(expected["id"]) == 32
    assert built["id"] != expected["id"]
    assert {**built, "id": "", "started": None} == {**expected, "id": "", "started": None}
    assert [sender for sender, _ in seen] == ["django_q", "django_q"]


def test_the_release_hands_the_orders_invoice_to_the_payout(node, fake_ln, monkeypatch):
    scheduled = []
    monkeypatch.setattr("orders.services.release.payout_schedule", lambda **kwargs: scheduled.append(kwargs))
    trade = settled_trade(fake_ln)
    order = trade.refresh()
    assert scheduled == [{"order_id": order.id, "request_id": 5, "buyer_invoice": order.buyer_invoice}]
