"""The order-event reconciliation job (orders.jobs.reconcile_order_events)."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from nostrbridge.models import OutboundMessage, OutboundStatus
from nostrbridge.protocol.published_events import ORDER_KIND
from orders import jobs
from orders.publish import publish_order_event
from tests.foundation.factories import make_order

pytestmark = pytest.mark.django_db


def parked_revision(order) -> OutboundMessage:
    with transaction.atomic():
        row = publish_order_event(order)
    OutboundMessage.objects.filter(pk=row.pk).update(
        status=OutboundStatus.PARKED, created_at=timezone.now() - timedelta(seconds=200)
    )
    return row


def park_latest(order) -> None:
    latest = OutboundMessage.objects.filter(order_id=order.id).order_by("-pk").first()
    OutboundMessage.objects.filter(pk=latest.pk).update(
        status=OutboundStatus.PARKED, created_at=timezone.now() - timedelta(seconds=200)
    )


def test_reconciliation_republishes_an_order_event_that_reached_no_relay_at_most_five_times():
    order = make_order()
    parked_revision(order)

    republished = []
    for _ in range(7):
        republished.append(jobs.reconcile_order_events())
        park_latest(order)

    assert republished == [1, 1, 1, 1, 1, 0, 0]
    rows = list(OutboundMessage.objects.filter(order_id=order.id, kind=ORDER_KIND).values_list("action", flat=True))
    assert rows == ["", "reconcile", "reconcile", "reconcile", "reconcile", "reconcile"]


def test_reconciliation_leaves_recent_failures_and_newer_revisions_alone():
    recent, superseded = make_order(), make_order()
    with transaction.atomic():
        row = publish_order_event(recent)
    OutboundMessage.objects.filter(pk=row.pk).update(status=OutboundStatus.PARKED)  # failed just now
    parked_revision(superseded)
    with transaction.atomic():
        publish_order_event(superseded)  # a service published a newer revision since

    assert jobs.reconcile_order_events() == 0
    assert OutboundMessage.objects.filter(action="reconcile").count() == 0
