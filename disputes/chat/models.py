"""Solver keys held by the console and the dispute chat messages (both sealed at rest)."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class SolverKey(models.Model):
    """A solver's Nostr key created in the console; its secret is sealed (disputes.chat.atrest).

    The user's `SolverLink` points at `pubkey`, so `admin-took-dispute` announces this key and
    the parties' clients open the dispute chat with it. The node's own key is never one of these.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="solver_key")
    pubkey = models.CharField(max_length=64, unique=True)
    secret_sealed = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "disputes"
        verbose_name = "solver key (held by the console)"
        verbose_name_plural = "solver keys (held by the console)"

    def __str__(self) -> str:
        return f"{self.user} → {self.pubkey[:16]}…"


class ChatParty(models.TextChoices):
    BUYER = "buyer"
    SELLER = "seller"


class ChatDirection(models.TextChoices):
    INBOUND = "in"  # from the party
    OUTBOUND = "out"  # from the solver, through the outbox


class ChatMessage(models.Model):
    """One message of a solver ↔ party conversation; the text (and attachment) is sealed.

    `inner_event_id` (the signed kind-1 message) and `outer_event_id` (its envelope) are
    unique: a message is stored once however many relays deliver it, including the echo of
    the solver's own messages.
    """

    dispute = models.ForeignKey("disputes.Dispute", on_delete=models.PROTECT, related_name="chat_messages")
    party = models.CharField(max_length=6, choices=ChatParty.choices)
    direction = models.CharField(max_length=3, choices=ChatDirection.choices)
    solver_pubkey = models.CharField(max_length=64)
    party_pubkey = models.CharField(max_length=64)
    sender_pubkey = models.CharField(max_length=64)
    envelope = models.CharField(max_length=8)
    inner_event_id = models.CharField(max_length=64, unique=True)
    outer_event_id = models.CharField(max_length=64, unique=True)
    body_sealed = models.TextField()
    sent_at = models.DateTimeField()  # the message's own created_at
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)  # the live pages' database feed
    author = models.CharField(max_length=80, blank=True, default="")  # admin:<username> for the solver's
    # The outbox row that carries an outbound message; pruned rows leave None (long accepted).
    outbound = models.OneToOneField(
        "nostrbridge.OutboundMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="chat_message"
    )

    class Meta:
        app_label = "disputes"
        ordering = ["sent_at", "id"]
        indexes = [models.Index(fields=["dispute", "id"])]
        constraints = [
            models.CheckConstraint(condition=Q(party__in=ChatParty.values), name="chat_party_valid"),
            models.CheckConstraint(condition=Q(direction__in=ChatDirection.values), name="chat_direction_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.dispute_id} {self.direction} {self.party} {self.inner_event_id[:12]}"
