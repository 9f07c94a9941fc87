"""Copy the relay pool's in-memory health records to the `RelayHealth` rows the admin shows.

Counters are written as increments (F() + delta since the last sync), so several bridge
processes connected to the same relay add up instead of overwriting each other; the state
fields (connected, last event, last error) are the latest writer's view.
"""

from dataclasses import dataclass
from typing import Any

from django.db.models import F
from django.utils import timezone

from nostrbridge.models import RelayHealth as RelayHealthRow
from nostrbridge.relays import RelayHealth

COUNTERS = ("events_received", "ok_count", "refused_count", "reconnects")


@dataclass(frozen=True)
class HealthChange:
    url: str
    state: dict[str, Any]  # fields to overwrite (None values are left alone)
    deltas: dict[str, int]  # counters to increment


class HealthTracker:
    """Remembers the counters already written, to turn the pool's totals into increments."""

    def __init__(self) -> None:
        self._written: dict[str, dict[str, int]] = {}

    def changes(self, health: dict[str, RelayHealth]) -> tuple[list[HealthChange], list[str]]:
        changes = []
        for url, record in health.items():
            before = self._written.get(url, dict.fromkeys(COUNTERS, 0))
            totals = {name: getattr(record, name) for name in COUNTERS}
            changes.append(HealthChange(url, _state(record), {n: totals[n] - before[n] for n in COUNTERS}))
            self._written[url] = totals
        gone = [url for url in self._written if url not in health]
        for url in gone:
            del self._written[url]
        return changes, gone


def _state(record: RelayHealth) -> dict[str, Any]:
    return {
        "connected": record.connected,
        "last_connected_at": record.last_connected_at,
        "last_event_at": record.last_event_at,
        "last_error": record.last_error[-4000:] if record.last_error else None,
        "last_error_at": record.last_error_at,
    }


def relay_health_save(*, changes: list[HealthChange], gone: list[str]) -> None:
    for change in changes:
        RelayHealthRow.objects.get_or_create(relay_url=change.url[:300])
        values: dict[str, Any] = {key: value for key, value in change.state.items() if value is not None}
        values.update({name: F(name) + delta for name, delta in change.deltas.items() if delta})
        values["updated_at"] = timezone.now()
        RelayHealthRow.objects.filter(relay_url=change.url[:300]).update(**values)
    if gone:
        # A relay removed from the configuration is no longer connected by this process.
        RelayHealthRow.objects.filter(relay_url__in=gone).update(connected=False, updated_at=timezone.now())
