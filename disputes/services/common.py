"""Helpers shared by the dispute services (inside the caller's transaction)."""

from collections.abc import Callable
from contextlib import AbstractContextManager

from django.utils import timezone

from disputes.events import publish_dispute_event
from disputes.models import OPEN_DISPUTE_STATUSES, Dispute, DisputeLog

Atomic = Callable[[], AbstractContextManager]


def dispute_log(dispute: Dispute, *, action: str, actor: str) -> None:
    DisputeLog.objects.create(dispute=dispute, action=action, actor=actor[:80])


def dispute_close(dispute: Dispute, *, status: str, actor: str, log_action: str) -> bool:
    """Close an open dispute (guarded by its status), log it and publish the 38386 revision."""
    now = timezone.now()
    closed = Dispute.objects.filter(pk=dispute.pk, status__in=OPEN_DISPUTE_STATUSES).update(
        status=status, resolved_at=now, updated_at=now
    )
    if not closed:
        return False
    dispute.refresh_from_db()
    dispute_log(dispute, action=log_action, actor=actor)
    publish_dispute_event(dispute=dispute)
    return True
