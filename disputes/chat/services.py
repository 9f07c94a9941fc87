"""Dispute chat services: who may read and write, sending through the outbox, the history.

A conversation is (dispute, party): the dispute's solver key ↔ that party's trade key. The
console can take part only when it holds the solver key (`disputes.chat.keys`); the node's key
is never used for chat.
"""

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from disputes.chat import atrest, envelope
from disputes.chat.attachments import parse_attachment
from disputes.chat.keys import console_keys
from disputes.chat.live import chat_changed_on_commit
from disputes.chat.models import ChatDirection, ChatMessage, ChatParty
from disputes.console import TAKE_PERMISSION, ConsoleForbidden, require, web_actor
from disputes.models import OPEN_DISPUTE_STATUSES, Dispute
from mostro_site.staff import is_operator
from nostrbridge.models import OutboundStatus
from nostrbridge.outbox import enqueue_signed
from nostrbridge.protocol.keys import Keys

MAX_TEXT_CHARS = 2_000
# Parties often answer the ruling; their conversation stays open this long after it.
CHAT_AFTER_RESOLUTION = timedelta(hours=24)
CHAT_ACTION = "chat"


@dataclass(frozen=True)
class Conversation:
    dispute_id: UUID | str
    party: str
    solver_pubkey: str
    party_pubkey: str
    keys: envelope.ChatKeys

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset({self.solver_pubkey, self.party_pubkey})


@functools.lru_cache(maxsize=1024)
def _derive(solver: Keys, party_pubkey: str) -> envelope.ChatKeys:
    return envelope.chat_keys(solver, party_pubkey)


def party_pubkey(dispute: Dispute, party: str) -> str | None:
    order = dispute.order
    return order.buyer_pubkey if party == ChatParty.BUYER else order.seller_pubkey


def conversation(dispute: Dispute, party: str, solver: Keys | None = None) -> Conversation | None:
    """The conversation, when the console holds the dispute's solver key and the party is known."""
    peer = party_pubkey(dispute, party)
    solver = solver or (console_keys(dispute.solver_pubkey) if dispute.solver_pubkey else None)
    if solver is None or not peer or solver.public_key_hex != dispute.solver_pubkey:
        return None
    return Conversation(dispute.pk, party, solver.public_key_hex, peer, _derive(solver, peer))


def chat_is_open(dispute: Dispute, *, now=None) -> bool:
    if dispute.status in OPEN_DISPUTE_STATUSES:
        return True
    now = now or timezone.now()
    return dispute.resolved_at is not None and now - dispute.resolved_at < CHAT_AFTER_RESOLUTION


def may_read_chat(user, dispute: Dispute) -> bool:
    """The dispute's solver and the operators (responsible for the node) read its chat."""
    if not (user.is_active and user.has_perm("disputes.view_dispute")):
        return False
    if is_operator(user):
        return True
    try:
        return dispute.solver_pubkey is not None and web_actor(user).pubkey == dispute.solver_pubkey
    except ConsoleForbidden:
        return False


def seal_body(body: dict, *, inner_id: str) -> str:
    return atrest.seal(json.dumps(body).encode(), purpose=atrest.CHAT, aad=inner_id.encode())


def open_body(message: ChatMessage) -> dict:
    return json.loads(atrest.unseal(message.body_sealed, purpose=atrest.CHAT, aad=message.inner_event_id.encode()))


def chat_send(*, user, dispute_id, party: str, text: str) -> ChatMessage:
    """Queue one message from the dispute's solver (the user) to a party; published after commit."""
    require(user, TAKE_PERMISSION)
    text = (text or "").strip()
    if party not in ChatParty.values:
        raise ConsoleForbidden("bad_party", "write to the buyer or to the seller")
    if not text or len(text) > MAX_TEXT_CHARS:
        raise ConsoleForbidden("bad_text", f"a message has 1 to {MAX_TEXT_CHARS} characters")
    dispute = Dispute.objects.select_related("order").filter(pk=dispute_id).first()
    if dispute is None:
        raise ConsoleForbidden("not_found", "no such dispute")
    if not dispute.solver_pubkey or web_actor(user).pubkey != dispute.solver_pubkey:
        raise ConsoleForbidden("is_not_your_dispute", "only the dispute's solver writes to its parties")
    if not chat_is_open(dispute):
        raise ConsoleForbidden("chat_closed", "the chat closed a day after the resolution")
    conv = conversation(dispute, party)
    solver = console_keys(conv.solver_pubkey) if conv is not None else None
    if conv is None or solver is None:
        raise ConsoleForbidden("no_console_key", "the console does not hold this dispute's solver key")
    outer, inner = envelope.wrap(solver, conv.keys, text, envelope=settings.MOSTRO_CHAT_ENVELOPE)
    with transaction.atomic():
        row = enqueue_signed(
            event=outer, recipient_pubkey=conv.party_pubkey, action=CHAT_ACTION, order_id=dispute.order_id
        )
        message = chat_message_create(
            conv,
            envelope.ChatMessageIn(settings.MOSTRO_CHAT_ENVELOPE, conv.solver_pubkey, text, inner.created_at,
                                   inner.id, outer.id),
            author=f"admin:{user.get_username()}"[:80],
            outbound=row,
        )  # fmt: skip
        chat_changed_on_commit(dispute.pk, [message.pk])
    return message


def chat_message_create(conv: Conversation, message: envelope.ChatMessageIn, **extra) -> ChatMessage:
    """The row of one message of `conv`, its text sealed (inside the caller's transaction).
    The direction follows the sender: the solver's messages are outbound."""
    outbound = message.sender == conv.solver_pubkey
    return ChatMessage.objects.create(
        dispute_id=conv.dispute_id,
        party=conv.party,
        direction=ChatDirection.OUTBOUND if outbound else ChatDirection.INBOUND,
        solver_pubkey=conv.solver_pubkey,
        party_pubkey=conv.party_pubkey,
        sender_pubkey=message.sender,
        envelope=message.envelope,
        inner_event_id=message.inner_id,
        outer_event_id=message.outer_id,
        body_sealed=seal_body({"text": message.content}, inner_id=message.inner_id),
        sent_at=datetime.fromtimestamp(message.created_at, tz=UTC),
        **extra,
    )


def delivery_state(message: ChatMessage, accepted_relays: int = 0) -> str:
    """queued → sent (handed to the relays, none has confirmed) → accepted (a relay said OK)."""
    if message.direction == ChatDirection.INBOUND:
        return "received"
    row = message.outbound
    if row is None:
        return "accepted"  # the outbox row was pruned a month after a relay accepted it
    if row.status == OutboundStatus.SENT:
        return "accepted"
    if row.status == OutboundStatus.PARKED:
        return "failed"
    return "sent" if row.attempts or accepted_relays else "queued"


def chat_history(dispute: Dispute, *, after_id: int = 0, ids=None) -> list[dict]:
    """The messages (oldest first) as the console shows them; bodies are unsealed here."""
    rows = ChatMessage.objects.filter(dispute=dispute, id__gt=after_id).select_related("outbound")
    if ids is not None:
        rows = ChatMessage.objects.filter(dispute=dispute, id__in=ids).select_related("outbound")
    rows = rows.annotate(accepted_relays=Count("outbound__deliveries", filter=Q(outbound__deliveries__accepted=True)))
    return [chat_view(row) for row in rows.order_by("sent_at", "id")]


def chat_view(row: ChatMessage) -> dict:
    try:
        body = open_body(row)
    except atrest.SealError:
        body = {"text": "(this message cannot be opened with the configured keys)"}
    text = body.get("text", "")
    attachment = parse_attachment(text) if row.direction == ChatDirection.INBOUND else None
    accepted = getattr(row, "accepted_relays", 0)
    return {
        "id": row.pk,
        "party": row.party,
        "direction": row.direction,
        "from": "solver" if row.direction == ChatDirection.OUTBOUND else row.party,
        "author": row.author,
        "text": "" if attachment else text,
        "attachment": attachment.public() if attachment else None,
        "sent_at": row.sent_at.isoformat(),
        "received_at": row.received_at.isoformat(),
        "state": delivery_state(row, accepted),
        "relays": accepted,
        "envelope": row.envelope,
        "event_id": row.inner_event_id,
    }


def chat_reseal(message: ChatMessage) -> bool:
    """Re-seal a message body with the current key after a rotation; True when it changed."""
    if atrest.is_current(message.body_sealed, purpose=atrest.CHAT):
        return False
    sealed = seal_body(open_body(message), inner_id=message.inner_event_id)
    ChatMessage.objects.filter(pk=message.pk).update(body_sealed=sealed)
    return True
