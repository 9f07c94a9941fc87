"""Maintenance ("drain") mode: switching it and reading it with the drain counters
(docs/PROTOCOL.md §Maintenance, docs/OPERATIONS.md "Maintenance mode").

One service for the three edges (the dashboard, the REST API, `manage.py maintenance`). The
state row, its audit entry and nothing else are written in one short transaction; after commit
the info event is queued again, so clients see `maintenance_mode` flip at once (a changed tag
is never held back by the repeat guard). The reason stays on the node.
"""

import datetime as dt
import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from mostro_site.models import MaintenanceState, SettingsAuditEntry
from mostro_site.operator.services import publish_node_info
from orders.selectors import DrainCounters, drain_counters

logger = logging.getLogger(__name__)

AUDIT_FIELD = "maintenance_mode"
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class MaintenanceStatus:
    enabled: bool
    reason: str
    since: dt.datetime | None
    counters: DrainCounters

    @property
    def drained(self) -> bool:
        return self.counters.drained

    @property
    def safe_to_stop(self) -> bool:
        """No new escrow can start and none is left: stopping or swapping LND loses nothing."""
        return self.enabled and self.drained


def maintenance_status() -> MaintenanceStatus:
    state = MaintenanceState.current()
    return MaintenanceStatus(enabled=state.enabled, reason=state.reason, since=state.since, counters=drain_counters())


def _audit_text(state: MaintenanceState) -> str:
    if not state.enabled:
        return "off"
    return f"on: {state.reason}" if state.reason else "on"


def maintenance_set(*, enabled: bool, reason: str | None = None, user=None, via: str) -> bool:
    """Switch maintenance on (with the operator's reason) or off; True when something changed.

    `via` names the edge in the audit entry ("dashboard", "api", "command line"); `user` is the
    Django user, None from the command line. Switching on again only updates the reason (the
    `since` of the first switch stays; no reason given keeps the stored one); switching off
    clears both.
    """
    reason = None if reason is None else reason.strip()
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise ValueError(f"the reason is limited to {MAX_REASON_CHARS} characters")
    with transaction.atomic(durable=True):
        MaintenanceState.objects.get_or_create(pk=1)
        state = MaintenanceState.objects.select_for_update().get(pk=1)
        before = _audit_text(state)
        if not enabled:
            state.reason, state.since = "", None
        elif not state.enabled:
            state.reason, state.since = reason or "", timezone.now()
        elif reason is not None:
            state.reason = reason
        state.enabled = enabled
        after = _audit_text(state)
        if after == before:
            return False
        state.save()
        SettingsAuditEntry.objects.create(user=user, field=AUDIT_FIELD, before=before, after=f"{after} (via {via})")
        transaction.on_commit(publish_node_info, robust=True)
    logger.warning("maintenance mode %s via %s (%s)", "on" if enabled else "off", via, getattr(user, "username", "-"))
    return True
