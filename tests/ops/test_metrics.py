"""`/metrics` after a scripted set of events: every counted figure exactly, every gauge exactly.

The events go through the real code paths: trade messages through the inbox and the
dispatcher (`tests.trade.harness`), junk through the bridge's intake checks, LND calls through
the production `LndClient` against simnet, jobs through django-q2 (synchronous here). The
process's increments reach the database through the same persister the running processes use.
"""

import asyncio
import hashlib
from datetime import timedelta
from unittest import mock

import pytest
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from devfee.models import DevFeePayment
from mostro_site.config import env_node_config
from mostro_site.ops.models import MetricSeries, ProcessHeartbeat
from mostro_site.ops.persist import PERSISTER, MetricsPersister, labels_key
from nostrbridge.bridge.intake import CatchUp, Intake
from nostrbridge.models import InboundEvent, InboundStatus, OutboundMessage, RelayHealth
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.nip01 import sign_event
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.models import BtcPrice
from orders.transitions import transition_order
from tests.ops.scrape import METRICS_TOKEN, labels, parse, pick
from tests.orders.services.support import make_order, mint_invoice, order_terms, set_price
from tests.orders.trade_states import active_sell_trade, vector_client
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db

MISSING_ORDER = "00000000-0000-4000-8000-000000000000"
NOW = timezone.now().replace(microsecond=0)


def failing_job() -> None:
    raise RuntimeError("this job fails on purpose")


def scrape(client) -> dict:
    PERSISTER.flush()
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    with mock.patch("mostro_site.ops.state_metrics.timezone.now", return_value=NOW):
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    return parse(response.content.decode())


@pytest.fixture
def metrics_on(settings):
    settings.MOSTRO_METRICS_TOKEN = METRICS_TOKEN
    PERSISTER.rebase()  # earlier tests' increments are not this test's


def junk_through_intake() -> None:
    config = env_node_config()
    intake = Intake(
        node_pubkey=node_pubkey(),
        catch_up=CatchUp(anchor=0, protocol_version=2),
        config=lambda: config,
        nudge=lambda: None,
        store=None,
    )
    wrong_kind = sign_event(Keys.generate(), kind=1, content="x", tags=[["p", node_pubkey()]], created_at=1)
    other_p = sign_event(Keys.generate(), kind=14, content="x", tags=[["p", "ab" * 32]], created_at=1)
    for event in (wrong_kind, other_p, other_p):
        asyncio.run(intake.on_event("ws://a", event.to_dict()))


def inbound_script(fake_ln) -> None:
    """1 handled new-order, 2 cant-do (not_found, invalid_action), 1 dropped at the gate, 1 unreadable."""
    alice = vector_client("alice")
    set_price()
    make_order(alice, index=1, kind="sell")
    stranger = TradeClient("stranger")
    stranger.send(Action.TAKE_SELL, index=1, order_id=MISSING_ORDER, request_id=9)
    invoice_payload = PaymentRequestPayload(None, "lnbcrt1pSOMETHING", None)
    stranger.send(Action.PAY_INVOICE, index=1, order_id=MISSING_ORDER, payload=invoice_payload, request_id=7)
    stranger.send(Action.NEW_ORDER, index=2, trade_index=None, payload=order_terms(), request_id=8)
    stranger.send(Action.PAY_INVOICE, index=1, order_id=MISSING_ORDER, payload=None)


def test_inbound_outcomes_are_counted_by_action_reason_and_cause(node, fake_ln, metrics_on, client):
    inbound_script(fake_ln)
    junk_through_intake()

    samples = scrape(client)

    assert pick(samples, "mostro_inbound_messages_total") == {
        labels(action="new-order", outcome="handled"): 1.0,
        labels(action="take-sell", outcome="cant-do"): 1.0,
        labels(action="pay-invoice", outcome="cant-do"): 1.0,
        labels(action="new-order", outcome="dropped"): 1.0,
        labels(action="unknown", outcome="dropped"): 1.0,
    }
    assert pick(samples, "mostro_inbound_cant_do_total") == {
        labels(action="take-sell", reason="not_found"): 1.0,
        labels(action="pay-invoice", reason="invalid_action"): 1.0,
    }
    assert pick(samples, "mostro_inbound_dropped_total") == {
        labels(stage="dispatch", cause="missing-trade-index"): 1.0,
        labels(stage="dispatch", cause="InvalidMessage"): 1.0,
        labels(stage="intake", cause="kind"): 1.0,
        labels(stage="intake", cause="p tag"): 2.0,
    }
    counts = pick(samples, "mostro_handler_duration_seconds_count")
    assert counts == {
        labels(action="new-order"): 2.0,
        labels(action="take-sell"): 1.0,
        labels(action="pay-invoice"): 1.0,
    }
    buckets = pick(samples, "mostro_handler_duration_seconds_bucket")
    assert {key: value for key, value in buckets.items() if ("le", "+Inf") in key} == {
        labels(action="new-order", le="+Inf"): 2.0,
        labels(action="take-sell", le="+Inf"): 1.0,
        labels(action="pay-invoice", le="+Inf"): 1.0,
    }
    assert len(buckets) == 3 * 12  # 11 bounds + Inf, for each action
    assert all(value > 0 for value in pick(samples, "mostro_handler_duration_seconds_sum").values())


def test_state_gauges_read_the_database(node, fake_ln, metrics_on, client):
    # given: one pending order, one taken (waiting-payment), one active escrow, one settled
    # escrow waiting for its payout, and one paid dev fee
    alice, bob = vector_client("alice"), vector_client("bob")
    set_price()
    active = active_sell_trade(fake_ln, seller=alice, buyer=bob)  # 7851 sats, fee 24
    make_order(TradeClient("carol"), index=1, kind="sell")
    taken = make_order(TradeClient("frank"), index=1, kind="sell")
    take = PaymentRequestPayload(None, mint_invoice(), None)
    TradeClient("grace").send(Action.TAKE_SELL, index=1, order_id=taken.id, payload=take, request_id=3)
    settled = active_sell_trade(fake_ln, seller=TradeClient("dave"), buyer=TradeClient("erin"))
    with transaction.atomic():
        for from_status, to_status in (("active", "fiat-sent"), ("fiat-sent", "settled-hold-invoice")):
            transition_order(
                order_id=settled.order.id, from_statuses=[from_status], to_status=to_status, actor="test", reason="x"
            )
    DevFeePayment.objects.create(order=settled.order, amount_sats=14, status="paid", destination="fund@example.com")
    BtcPrice.objects.filter(fiat_code="VES").update(as_of=NOW - timedelta(seconds=95))
    BtcPrice.objects.create(fiat_code="USD", price=90_000, as_of=NOW - timedelta(seconds=4000))
    InboundEvent.objects.create(
        event_id="e" * 64, kind=14, pubkey="p" * 64, event_created_at=1, raw="{}", status=InboundStatus.PARKED
    )
    RelayHealth.objects.create(relay_url="wss://one", connected=True, reconnects=3, events_received=40, ok_count=7)
    RelayHealth.objects.filter(relay_url="wss://one").update(updated_at=NOW - timedelta(seconds=5))
    RelayHealth.objects.create(relay_url="wss://two", connected=True, reconnects=1)
    RelayHealth.objects.filter(relay_url="wss://two").update(updated_at=NOW - timedelta(seconds=300))
    ProcessHeartbeat.objects.create(
        instance="host:7", role="bridge", started_at=NOW, seen_at=NOW - timedelta(seconds=12)
    )
    OutboundMessage.objects.update(created_at=NOW - timedelta(seconds=30))
    OutboundMessage.objects.filter(status="pending").update(status="sent")
    pending = OutboundMessage.objects.order_by("pk").first()
    OutboundMessage.objects.filter(pk=pending.pk).update(status="pending", created_at=NOW - timedelta(seconds=42))

    samples = scrape(client)

    orders = {dict(key)["status"]: value for key, value in pick(samples, "mostro_orders").items()}
    assert {status: n for status, n in orders.items() if n} == {
        "pending": 1.0,
        "waiting-payment": 1.0,
        "active": 1.0,
        "settled-hold-invoice": 1.0,
    }
    assert len(orders) == 16
    assert pick(samples, "mostro_escrow_held_sats") == {frozenset(): 7851.0 + 24}
    assert pick(samples, "mostro_escrow_held_orders") == {frozenset(): 1.0}
    assert pick(samples, "mostro_payouts") == {
        labels(state="pending"): 1.0,
        labels(state="in-flight"): 0.0,
        labels(state="failed"): 0.0,
    }
    assert pick(samples, "mostro_payouts_sats") == {
        labels(state="pending"): 7851.0 - 24,
        labels(state="in-flight"): 0.0,
        labels(state="failed"): 0.0,
    }
    assert pick(samples, "mostro_dev_fee_sats")[labels(status="paid")] == 14.0
    assert sum(pick(samples, "mostro_dev_fee_sats").values()) == 14.0
    assert pick(samples, "mostro_dev_fee_payments")[labels(status="paid")] == 1.0
    assert pick(samples, "mostro_inbox_events") == {
        labels(status="received"): 0.0,
        labels(status="processing"): 0.0,
        labels(status="parked"): 1.0,
    }
    assert pick(samples, "mostro_inbox_oldest_age_seconds") == {frozenset(): 0.0}
    assert pick(samples, "mostro_outbox_messages") == {labels(status="pending"): 1.0, labels(status="parked"): 0.0}
    assert pick(samples, "mostro_outbox_oldest_age_seconds") == {frozenset(): 42.0}
    assert pick(samples, "mostro_relay_connected") == {labels(relay="wss://one"): 1.0, labels(relay="wss://two"): 0.0}
    assert pick(samples, "mostro_relay_reconnects_total") == {
        labels(relay="wss://one"): 3.0,
        labels(relay="wss://two"): 1.0,
    }
    assert pick(samples, "mostro_relay_events_received_total")[labels(relay="wss://one")] == 40.0
    assert pick(samples, "mostro_relay_publish_answers_total")[labels(relay="wss://one", result="accepted")] == 7.0
    assert pick(samples, "mostro_price_age_seconds") == {labels(currency="VES"): 95.0, labels(currency="USD"): 4000.0}
    assert pick(samples, "mostro_price_max_age_seconds") == {frozenset(): 1800.0}
    assert pick(samples, "mostro_process_heartbeat_age_seconds") == {labels(role="bridge", instance="host:7"): 12.0}
    assert pick(samples, "mostro_disputes")[labels(status="initiated")] == 0.0
    assert active.order.status == "active"


def test_lnd_calls_are_timed_and_errors_counted_by_method(simnet, metrics_on, client):
    mostro = simnet.client("mostro")
    mostro.get_info()
    mostro.get_info()
    with pytest.raises(Exception) as raised:
        mostro.lookup_invoice(payment_hash=hashlib.sha256(b"nobody's invoice").digest())
    mostro.track_payment(payment_hash=hashlib.sha256(b"never paid").digest())
    offline = simnet.client("mostro", call_timeout_seconds=1.0)
    simnet.control.set_online("mostro", False)
    try:
        with pytest.raises(Exception) as unavailable:
            offline.get_info()
    finally:
        simnet.control.set_online("mostro", True)

    samples = scrape(client)

    assert type(raised.value).__name__ == "InvoiceNotFound"
    assert type(unavailable.value).__name__ == "LightningUnavailable"
    assert pick(samples, "mostro_lnd_call_duration_seconds_count") == {
        labels(method="GetInfo"): 3.0,
        labels(method="LookupInvoice"): 1.0,
        labels(method="TrackPaymentV2"): 1.0,
    }
    assert pick(samples, "mostro_lnd_call_errors_total") == {
        labels(method="LookupInvoice", error="InvoiceNotFound"): 1.0,
        labels(method="GetInfo", error="LightningUnavailable"): 1.0,
    }


def test_job_runs_and_failures_are_counted_by_job(metrics_on, client):
    async_task("mostro_site.ops.jobs.job_cluster_heartbeat")
    async_task("mostro_site.ops.jobs.job_cluster_heartbeat")
    with pytest.raises(RuntimeError):
        async_task("tests.ops.test_metrics.failing_job")

    samples = scrape(client)

    assert pick(samples, "mostro_job_runs_total") == {
        labels(job="mostro_site.ops.jobs.job_cluster_heartbeat", outcome="success"): 2.0,
        labels(job="tests.ops.test_metrics.failing_job", outcome="failure"): 1.0,
    }
    assert pick(samples, "mostro_job_duration_seconds_count") == {
        labels(job="mostro_site.ops.jobs.job_cluster_heartbeat"): 2.0,
        labels(job="tests.ops.test_metrics.failing_job"): 1.0,
    }
    [beat] = ProcessHeartbeat.objects.filter(role="jobs")
    assert beat.instance.startswith("cluster:mostro@")


def test_processes_add_up_and_a_flush_without_change_writes_nothing():
    from prometheus_client import CollectorRegistry, Counter

    registries = [CollectorRegistry(), CollectorRegistry()]
    counters = [Counter("mostro_probe", "probe", ["kind"], registry=registry) for registry in registries]
    persisters = [MetricsPersister(registry) for registry in registries]
    counters[0].labels(kind="a").inc(3)
    counters[1].labels(kind="a").inc(4)
    counters[1].labels(kind="b").inc()

    assert [persister.flush() for persister in persisters] == [1, 2]
    counters[0].labels(kind="a").inc()
    assert [persister.flush() for persister in persisters] == [1, 0]
    rows = dict(MetricSeries.objects.values_list("labels", "value"))
    assert rows == {labels_key({"kind": "a"}): 8.0, labels_key({"kind": "b"}): 1.0}


def test_a_forked_child_counts_only_its_own_increments():
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    counter = Counter("mostro_probe", "probe", registry=registry)
    parent = MetricsPersister(registry)
    counter.inc(5)
    assert parent.flush() == 1
    counter.inc(2)  # not flushed by the parent yet: its own next flush writes it
    # The child starts with the same values (a fork copies memory); the hooks rebase it.
    child = MetricsPersister(registry)
    child.after_fork()
    assert child.flush() == 0
    counter.inc(1)  # the child's own work
    assert child.flush() == 1
    assert MetricSeries.objects.get().value == 6.0  # 5 + 1: the inherited 7 are not counted again


def test_metrics_need_the_token(settings, client):
    settings.MOSTRO_METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    settings.MOSTRO_METRICS_TOKEN = METRICS_TOKEN
    for header in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": f"Basic {METRICS_TOKEN}"}):
        response = client.get("/metrics", **header)
        assert (response.status_code, response["WWW-Authenticate"]) == (401, 'Bearer realm="metrics"')
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").status_code == 405
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").status_code == 200
