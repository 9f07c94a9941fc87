"""Chat events the relay bridge hands over: validate, open, store once, tell the console.

Runs in the bridge's database thread. Each event is its own short transaction; the unique
outer and inner event ids make a relay's second copy, and the echo of the solver's own
message, no-ops. A party that floods its conversation is cut at MAX_PER_MINUTE per process.
"""

import logging
import time
from collections import defaultdict, deque

from django.db import IntegrityError, transaction

from disputes.chat import envelope
from disputes.chat.live import chat_changed_on_commit
from disputes.chat.models import ChatMessage
from disputes.chat.services import Conversation, chat_message_create

logger = logging.getLogger(__name__)

MAX_PER_MINUTE = 30


class _Budget:
    def __init__(self) -> None:
        self._seen: dict[tuple, deque] = defaultdict(deque)

    def allow(self, key: tuple, now: float) -> bool:
        window = self._seen[key]
        while window and now - window[0] > 60:
            window.popleft()
        if len(window) >= MAX_PER_MINUTE:
            return False
        window.append(now)
        return True


_budget = _Budget()


def chat_store_inbound(conv: Conversation, raw: dict) -> ChatMessage | None:
    """Store one event of `conv` if it is a new, valid message from the party; else None."""
    outer_id = raw.get("id")
    if not isinstance(outer_id, str) or ChatMessage.objects.filter(outer_event_id=outer_id).exists():
        return None  # another relay's copy, or our own message coming back
    try:
        message = envelope.unwrap(raw, conv.keys, conv.allowed)
    except envelope.ChatRejected as exc:
        logger.info("dispute %s: chat event %s dropped: %s", conv.dispute_id, str(outer_id)[:12], exc)
        return None
    if message.sender != conv.party_pubkey:
        return None  # the solver's own message re-wrapped by someone: already stored, or not ours
    if not _budget.allow((conv.dispute_id, conv.party), time.monotonic()):
        logger.warning("dispute %s: %s sends too fast; message %s dropped", conv.dispute_id, conv.party, outer_id[:12])
        return None
    try:
        with transaction.atomic():
            row = chat_message_create(conv, message)
            chat_changed_on_commit(conv.dispute_id, [row.pk])
    except IntegrityError:
        return None  # the same inner message in another envelope: stored once
    return row
