"""Gauges read from the database at scrape time: the node's state as every process sees it.

Orders by status, sats in escrow, payouts, the dev-fee ledger, inbox/outbox backlog and age,
relays (their counters are already sums over the bridges, kept by `RelayHealth`), price ages,
disputes and process heartbeats. A few aggregate queries per scrape, all on indexed columns
or small tables.
"""

from collections.abc import Iterator
from datetime import datetime

from django.db.models import Count, F, Min, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from devfee.models import DevFeePayment, DevFeeStatus
from disputes.models import Dispute, DisputeStatus
from mostro_site.config import node_config
from mostro_site.ops.models import ProcessHeartbeat
from nostrbridge.models import InboundEvent, InboundStatus, OutboundMessage, OutboundStatus, RelayHealth
from orders.models import BtcPrice, Order
from orders.status import OrderStatus

# Escrow is held from the accepted HTLC until the release settles it or a cancel returns it.
ESCROW_HELD_STATUSES = (
    OrderStatus.WAITING_BUYER_INVOICE,
    OrderStatus.WAITING_PAYMENT,
    OrderStatus.ACTIVE,
    OrderStatus.FIAT_SENT,
    OrderStatus.DISPUTE,
)
STORED_ORDER_STATUSES = [status for status in OrderStatus.values if status != OrderStatus.IN_PROGRESS]
INBOX_BACKLOG_STATUSES = (InboundStatus.RECEIVED, InboundStatus.PROCESSING, InboundStatus.PARKED)
OUTBOX_BACKLOG_STATUSES = (OutboundStatus.PENDING, OutboundStatus.PARKED)
# The bridge writes relay health every 3 s: a row older than this belongs to a bridge that stopped.
RELAY_HEALTH_FRESH_SECONDS = 30


def _age(now: datetime, then: datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then else 0.0


def _by(queryset, field: str, values, *, total: str | None = None) -> dict[str, float]:
    """{value: count (or sum of `total`)} for every value in `values`, zero-filled."""
    aggregate = Sum(total) if total else Count("pk")
    found = dict(queryset.filter(**{f"{field}__in": list(values)}).values_list(field).annotate(n=aggregate))
    return {value: float(found.get(value) or 0) for value in values}


def order_families(now: datetime) -> Iterator[Metric]:
    orders = GaugeMetricFamily("mostro_orders", "Orders by status.", labels=["status"])
    for status, count in _by(Order.objects.all(), "status", STORED_ORDER_STATUSES).items():
        orders.add_metric([status], count)
    yield orders
    held = Order.objects.filter(status__in=ESCROW_HELD_STATUSES, invoice_held_at__isnull=False).aggregate(
        n=Count("pk"), sats=Sum(F("amount_sats") + F("fee_sats"))
    )
    yield GaugeMetricFamily(
        "mostro_escrow_held_sats", "Sats locked in accepted hold invoices (amount + seller fee).", held["sats"] or 0
    )
    yield GaugeMetricFamily("mostro_escrow_held_orders", "Orders whose hold invoice is accepted.", held["n"])
    yield from payout_families()


def payout_families() -> Iterator[Metric]:
    """Buyer payouts of settled escrows: pending (not started), in-flight (hash claimed), failed."""
    settled = Order.objects.filter(status=OrderStatus.SETTLED_HOLD_INVOICE)
    states = {
        "pending": settled.filter(payout_payment_hash__isnull=True, failed_payment=False),
        "in-flight": settled.filter(payout_payment_hash__isnull=False),
        "failed": settled.filter(payout_payment_hash__isnull=True, failed_payment=True),
    }
    count = GaugeMetricFamily(
        "mostro_payouts", "Buyer payouts owed after a settled escrow, by state.", labels=["state"]
    )
    sats = GaugeMetricFamily("mostro_payouts_sats", "Sats of those payouts (amount − fee), by state.", labels=["state"])
    for state, queryset in states.items():
        row = queryset.aggregate(n=Count("pk"), sats=Sum(F("amount_sats") - F("fee_sats")))
        count.add_metric([state], row["n"])
        sats.add_metric([state], row["sats"] or 0)
    yield count
    yield sats


def dev_fee_families() -> Iterator[Metric]:
    count = GaugeMetricFamily("mostro_dev_fee_payments", "Dev-fee ledger rows, by status.", labels=["status"])
    sats = GaugeMetricFamily(
        "mostro_dev_fee_sats", "Dev-fee sats by ledger status (paid; the rest is owed).", labels=["status"]
    )
    counts = _by(DevFeePayment.objects.all(), "status", DevFeeStatus.values)
    sums = _by(DevFeePayment.objects.all(), "status", DevFeeStatus.values, total="amount_sats")
    for status in DevFeeStatus.values:
        count.add_metric([status], counts[status])
        sats.add_metric([status], sums[status])
    yield count
    yield sats


def queue_families(now: datetime) -> Iterator[Metric]:
    inbox = GaugeMetricFamily("mostro_inbox_events", "Inbound events not yet finished, by status.", labels=["status"])
    for status, n in _by(InboundEvent.objects.all(), "status", INBOX_BACKLOG_STATUSES).items():
        inbox.add_metric([status], n)
    yield inbox
    oldest = InboundEvent.objects.filter(status__in=(InboundStatus.RECEIVED, InboundStatus.PROCESSING)).aggregate(
        at=Min("received_at")
    )["at"]
    yield GaugeMetricFamily(
        "mostro_inbox_oldest_age_seconds", "Age of the oldest unfinished inbound event (0: none).", _age(now, oldest)
    )
    outbox = GaugeMetricFamily(
        "mostro_outbox_messages", "Outbound messages no relay has accepted yet, by status.", labels=["status"]
    )
    for status, n in _by(OutboundMessage.objects.all(), "status", OUTBOX_BACKLOG_STATUSES).items():
        outbox.add_metric([status], n)
    yield outbox
    oldest = OutboundMessage.objects.filter(status=OutboundStatus.PENDING).aggregate(at=Min("created_at"))["at"]
    yield GaugeMetricFamily(
        "mostro_outbox_oldest_age_seconds", "Age of the oldest pending outbound message (0: none).", _age(now, oldest)
    )


def relay_families(now: datetime) -> Iterator[Metric]:
    connected = GaugeMetricFamily(
        "mostro_relay_connected", "1 when a running bridge reports the relay connected.", labels=["relay"]
    )
    reconnects = CounterMetricFamily("mostro_relay_reconnects", "Relay reconnections, all bridges.", labels=["relay"])
    received = CounterMetricFamily(
        "mostro_relay_events_received", "Events received from the relay, all bridges.", labels=["relay"]
    )
    answers = CounterMetricFamily(
        "mostro_relay_publish_answers", "The relay's OK answers to our events.", labels=["relay", "result"]
    )
    for row in RelayHealth.objects.order_by("relay_url"):
        fresh = row.updated_at is not None and _age(now, row.updated_at) <= RELAY_HEALTH_FRESH_SECONDS
        connected.add_metric([row.relay_url], 1.0 if row.connected and fresh else 0.0)
        reconnects.add_metric([row.relay_url], row.reconnects)
        received.add_metric([row.relay_url], row.events_received)
        answers.add_metric([row.relay_url, "accepted"], row.ok_count)
        answers.add_metric([row.relay_url, "refused"], row.refused_count)
    yield from (connected, reconnects, received, answers)


def price_families(now: datetime) -> Iterator[Metric]:
    ages = GaugeMetricFamily(
        "mostro_price_age_seconds", "Age of the stored BTC price, by currency.", labels=["currency"]
    )
    for code, as_of in BtcPrice.objects.order_by("fiat_code").values_list("fiat_code", "as_of"):
        ages.add_metric([code], _age(now, as_of))
    yield ages
    yield GaugeMetricFamily(
        "mostro_price_max_age_seconds",
        "Prices older than this refuse market-price orders (price_too_stale).",
        node_config().max_price_staleness_seconds,
    )


def dispute_families() -> Iterator[Metric]:
    disputes = GaugeMetricFamily("mostro_disputes", "Disputes by status.", labels=["status"])
    for status, n in _by(Dispute.objects.all(), "status", DisputeStatus.values).items():
        disputes.add_metric([status], n)
    yield disputes


def heartbeat_families(now: datetime) -> Iterator[Metric]:
    ages = GaugeMetricFamily(
        "mostro_process_heartbeat_age_seconds",
        "Seconds since each long-running process (and the job cluster) last reported.",
        labels=["role", "instance"],
    )
    for row in ProcessHeartbeat.objects.order_by("role", "instance"):
        ages.add_metric([row.role, row.instance], _age(now, row.seen_at))
    yield ages


def state_families() -> Iterator[Metric]:
    now = timezone.now()
    yield from order_families(now)
    yield from dev_fee_families()
    yield from queue_families(now)
    yield from relay_families(now)
    yield from price_families(now)
    yield from dispute_families()
    yield from heartbeat_families(now)
