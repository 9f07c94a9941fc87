"""What the relay bridge calls for the dispute chat (a "side channel", `nostrbridge.bridge.side`).

`subscription()` lists every conversation the console can take part in (disputes held by a
console key: open, or resolved less than a day ago), derives their keys, and returns the
relay filters the chat design needs with a cheap predicate that picks their events out of
the relay stream: kind 14 by author pub(K_sign) (never by `#p`, which anyone could flood), and,
while MOSTRO_CHAT_READ_LEGACY is on, kind 1059 by `#p` pub(S). `store()` opens and stores what
the predicate picked; `published()` tells the console that an outbound message's relays answered.
"""

import time
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from disputes.chat import envelope
from disputes.chat.inbound import chat_store_inbound
from disputes.chat.live import chat_changed_now
from disputes.chat.models import ChatMessage, ChatParty, SolverKey
from disputes.chat.services import CHAT_AFTER_RESOLUTION, Conversation, conversation
from disputes.models import OPEN_DISPUTE_STATUSES, Dispute

LOOKBACK_S = 7 * 86_400  # the clients' default history window
SLACK_S = 120


@dataclass(frozen=True)
class SideSubscription:
    filters: list[dict]
    authors: frozenset[str]
    addresses: frozenset[str]

    def claims(self, raw: dict) -> bool:
        kind = raw.get("kind")
        if kind == envelope.CHAT_KIND:
            return raw.get("pubkey") in self.authors
        if kind == envelope.GIFT_WRAP_KIND and self.addresses:
            p_tags = [t for t in raw.get("tags", ()) if isinstance(t, list) and t and t[0] == "p"]
            return len(p_tags) == 1 and len(p_tags[0]) > 1 and p_tags[0][1] in self.addresses
        return False


def active_conversations(*, now=None) -> list[tuple[Conversation, int]]:
    """(conversation, unix time its dispute was taken) for every chat the console can hold."""
    now = now or timezone.now()
    held = SolverKey.objects.values_list("pubkey", flat=True)
    disputes = Dispute.objects.filter(solver_pubkey__in=held).filter(
        Q(status__in=OPEN_DISPUTE_STATUSES) | Q(resolved_at__gt=now - CHAT_AFTER_RESOLUTION)
    )
    found = []
    for dispute in disputes.select_related("order"):
        taken = int((dispute.taken_at or dispute.created_at).timestamp())
        for party in ChatParty.values:
            conv = conversation(dispute, party)
            if conv is not None:
                found.append((conv, taken))
    return found


class ChatHooks:
    sub_id = "mostro-chat"

    def __init__(self) -> None:
        self._by_author: dict[str, Conversation] = {}
        self._by_address: dict[str, Conversation] = {}

    def subscription(self) -> SideSubscription:
        now = int(time.time())
        conversations = active_conversations()
        self._by_author = {conv.keys.sign.public_key_hex: conv for conv, _ in conversations}
        legacy = settings.MOSTRO_CHAT_READ_LEGACY
        self._by_address = {conv.keys.legacy.public_key_hex: conv for conv, _ in conversations} if legacy else {}
        if not conversations:
            return SideSubscription([], frozenset(), frozenset())
        oldest = min(taken for _, taken in conversations)
        since = max(now - LOOKBACK_S, oldest - SLACK_S)
        filters = [{"kinds": [envelope.CHAT_KIND], "authors": sorted(self._by_author), "since": since}]
        if legacy:
            backdated = max(now - LOOKBACK_S, oldest - envelope.GIFT_WRAP_BACKDATE_S - SLACK_S)
            filters.append({"kinds": [envelope.GIFT_WRAP_KIND], "#p": sorted(self._by_address), "since": backdated})
        return SideSubscription(filters, frozenset(self._by_author), frozenset(self._by_address))

    def store(self, events: list[dict]) -> int:
        stored = 0
        for raw in events:
            author = raw.get("pubkey")
            conv = self._by_author.get(author) if raw.get("kind") == envelope.CHAT_KIND and author else None
            if conv is None:
                p_tag = next((t[1] for t in raw.get("tags", ()) if len(t) > 1 and t[0] == "p"), None)
                conv = self._by_address.get(p_tag) if p_tag is not None else None
            if conv is not None and chat_store_inbound(conv, raw) is not None:
                stored += 1
        return stored

    def published(self, event_ids: list[str]) -> None:
        rows = ChatMessage.objects.filter(outer_event_id__in=event_ids).values_list("dispute_id", "id")
        by_dispute: dict = {}
        for dispute_id, pk in rows:
            by_dispute.setdefault(dispute_id, []).append(pk)
        for dispute_id, pks in by_dispute.items():
            chat_changed_now(dispute_id, pks)
