"""An event whose handler could not reach LND waits out a backoff instead of burning its retries
(nostrbridge/inbox.py `inbox_fail(transient=True)`, nostrbridge/dispatch.py `_lightning_down`)."""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from lightning.errors import LightningRejected, LightningUnavailable
from nostrbridge.dispatch import _lightning_down
from nostrbridge.inbox import MAX_ATTEMPTS, TRANSIENT_RETRY_WINDOW_SECONDS, inbox_claim, inbox_fail, inbox_store
from nostrbridge.models import InboundEvent, InboundStatus
from tests.nostrbridge.test_bridge_units import orders_event

pytestmark = pytest.mark.django_db


def stored_and_claimed() -> InboundEvent:
    inbox_store(items=[("ws://a", orders_event())])
    assert len(inbox_claim(worker_id="host:1:a")) == 1
    return InboundEvent.objects.get()


def test_transient_failure_waits_its_backoff_then_is_claimed_again():
    row = stored_and_claimed()
    now = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=now):
        assert inbox_fail(pk=row.pk, error="EscrowSettleError: LND down", transient=True) == InboundStatus.PROCESSING
    row.refresh_from_db()
    assert (row.status, row.locked_by, row.locked_until, row.attempts) == (
        InboundStatus.PROCESSING, "", now + timedelta(seconds=2), 1,
    )  # fmt: skip
    assert row.last_error == "EscrowSettleError: LND down"
    with mock.patch("django.utils.timezone.now", return_value=now + timedelta(seconds=1)):
        assert inbox_claim(worker_id="host:1:a") == []  # still backing off
    with mock.patch("django.utils.timezone.now", return_value=now + timedelta(seconds=3)):
        assert inbox_claim(worker_id="host:1:b") == [row.pk]


def test_transient_failures_never_park_inside_the_window():
    row = stored_and_claimed()
    InboundEvent.objects.filter(pk=row.pk).update(attempts=MAX_ATTEMPTS + 3)
    assert inbox_fail(pk=row.pk, error="down", transient=True) == InboundStatus.PROCESSING
    row.refresh_from_db()
    assert row.locked_until - timezone.now() <= timedelta(seconds=60)  # the backoff's cap
    assert row.locked_until - timezone.now() > timedelta(seconds=58)


def test_after_the_window_a_transient_failure_counts_like_any_other():
    row = stored_and_claimed()
    old = timezone.now() - timedelta(seconds=TRANSIENT_RETRY_WINDOW_SECONDS + 1)
    InboundEvent.objects.filter(pk=row.pk).update(received_at=old, attempts=MAX_ATTEMPTS)
    assert inbox_fail(pk=row.pk, error="down", transient=True) == InboundStatus.PARKED
    assert InboundEvent.objects.get().status == InboundStatus.PARKED


def test_a_non_transient_failure_is_retried_at_once_as_before():
    row = stored_and_claimed()
    assert inbox_fail(pk=row.pk, error="boom") == InboundStatus.RECEIVED
    assert InboundEvent.objects.values_list("status", "locked_until").get() == (InboundStatus.RECEIVED, None)


def chained(inner: Exception) -> Exception:
    try:
        try:
            raise inner
        except Exception as exc:
            raise RuntimeError("settling order x failed") from exc
    except RuntimeError as outer:
        return outer


def test_lightning_down_is_found_anywhere_in_the_cause_chain():
    assert _lightning_down(chained(LightningUnavailable("LND unavailable", code="UNAVAILABLE")))
    assert _lightning_down(LightningUnavailable("deadline", code="DEADLINE_EXCEEDED"))
    assert not _lightning_down(chained(LightningRejected("no such invoice")))
    assert not _lightning_down(ValueError("poison"))


def test_a_handler_whose_database_connection_died_waits_its_backoff(monkeypatch):
    """The connection dropped mid-handler (a PostgreSQL restart; SQLite locked past its busy
    timeout): the message waits out a backoff like an LND outage instead of spending a retry at once."""
    from django.db import OperationalError

    from nostrbridge import dispatch

    def handler(ctx):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(dispatch, "get_handler", lambda name: handler)
    row = stored_and_claimed()
    now = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=now):
        assert dispatch.process_inbound(row.pk) == InboundStatus.PROCESSING
    row.refresh_from_db()
    assert (row.status, row.locked_by, row.locked_until, row.attempts) == (
        InboundStatus.PROCESSING, "", now + timedelta(seconds=2), 1,
    )  # fmt: skip
    assert row.last_error == "OperationalError: terminating connection due to administrator command"


def test_other_database_errors_are_not_transient():
    from django.db import IntegrityError, InterfaceError

    from nostrbridge.dispatch import _database_down

    assert _database_down(InterfaceError("connection already closed"))
    assert not _database_down(IntegrityError("UNIQUE constraint failed"))
    assert not _database_down(ValueError("poison"))
