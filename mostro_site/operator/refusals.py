"""The dashboard's recent policy refusals (docs/OPERATIONS.md §Policies), read from the inbound
rows: the dispatcher records `cant-do <reason> policy:<name> key:<trade key prefix>` on every
request an operator policy refused (a selector; no writes)."""

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass

from django.utils import timezone

from nostrbridge.models import POLICY_MARK, InboundEvent

RECENT_REFUSALS = 25
_NOTE = re.compile(rf"^cant-do (?P<reason>\S+) {POLICY_MARK}(?P<policy>\S+) key:(?P<key>[0-9a-f]*)$")


@dataclass(frozen=True)
class Refusal:
    at: dt.datetime | None  # when it was processed
    action: str
    reason: str
    policy: str
    key_prefix: str


def _parse(at: dt.datetime | None, action: str, note: str) -> Refusal | None:
    match = _NOTE.match(note)
    if match is None:
        return None
    return Refusal(at=at, action=action, reason=match["reason"], policy=match["policy"], key_prefix=match["key"])


def policy_refusals(*, limit: int = RECENT_REFUSALS, now: dt.datetime | None = None) -> tuple[list[Refusal], dict]:
    """(the latest refusals, newest first; count per policy over the last 24 hours)."""
    marked = InboundEvent.objects.filter(drop_reason__contains=f" {POLICY_MARK}")
    recent = [
        refusal
        for at, action, note in marked.order_by("-pk").values_list("processed_at", "action", "drop_reason")[:limit]
        if (refusal := _parse(at, action, note)) is not None
    ]
    since = (now or timezone.now()) - dt.timedelta(days=1)
    counts: Counter[str] = Counter()
    for at, action, note in marked.filter(processed_at__gte=since).values_list("processed_at", "action", "drop_reason"):
        refusal = _parse(at, action, note)
        if refusal is not None:
            counts[refusal.policy] += 1
    return recent, dict(sorted(counts.items()))
