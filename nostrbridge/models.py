"""Durable inbox and outbox for the relay bridge, relay health, and replaceable-event clocks."""

from django.db import models
from django.db.models import Q


class InboundStatus(models.TextChoices):
    RECEIVED = "received"  # stored, waiting for the consumer
    PROCESSING = "processing"  # claimed by a consumer (lease in locked_until)
    DONE = "done"  # handled (replied or intentionally silent)
    DROPPED = "dropped"  # failed a protocol check: silent drop per the spec
    PARKED = "parked"  # crashed too often; visible in the admin, never retried automatically


# `drop_reason` of a cant-do an operator policy caused: "cant-do <reason> policy:<name> key:<trade key>".
POLICY_MARK = "policy:"


class InboundEvent(models.Model):
    event_id = models.CharField(max_length=64, unique=True)
    kind = models.PositiveIntegerField()
    pubkey = models.CharField(max_length=64)
    event_created_at = models.BigIntegerField()
    raw = models.TextField()
    first_relay = models.CharField(max_length=300, blank=True, default="")
    seen_count = models.PositiveIntegerField(default=1)
    # Received while replaying from `since` after a reconnect: freshness is judged against the
    # catch-up window instead of the 10-second live window (see docs/ARCHITECTURE.md).
    caught_up = models.BooleanField(default=False)
    status = models.CharField(
        max_length=12, choices=InboundStatus.choices, default=InboundStatus.RECEIVED, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    locked_by = models.CharField(max_length=80, blank=True, default="")
    locked_until = models.DateTimeField(null=True, blank=True)
    action = models.CharField(max_length=40, blank=True, default="")
    drop_reason = models.CharField(max_length=200, blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status__in=InboundStatus.values), name="inbound_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id[:12]} kind {self.kind} ({self.status})"


class OutboundStatus(models.TextChoices):
    PENDING = "pending"  # committed, not yet accepted by any relay
    SENT = "sent"  # accepted by at least one relay; others retried in the background
    PARKED = "parked"  # gave up after the retry budget; visible in the admin


class OutboundMessage(models.Model):
    """A signed Nostr event written in the same transaction as the change that caused it."""

    event_id = models.CharField(max_length=64, unique=True)
    kind = models.PositiveIntegerField(db_index=True)
    recipient_pubkey = models.CharField(max_length=64, blank=True, default="")
    action = models.CharField(max_length=40, blank=True, default="")
    order_id = models.UUIDField(null=True, blank=True, db_index=True)
    d_tag = models.CharField(max_length=100, blank=True, default="")
    event_json = models.TextField()
    status = models.CharField(
        max_length=8, choices=OutboundStatus.choices, default=OutboundStatus.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status__in=OutboundStatus.values), name="outbound_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id[:12]} kind {self.kind} {self.action} ({self.status})"


class OutboundDelivery(models.Model):
    """What each relay answered for one outbound event."""

    # db_index=False: the unique (message, relay_url) index below serves the lookups by message (its
    # first column); a second index would be one more page written for each of a trade's ~14 rows.
    message = models.ForeignKey(OutboundMessage, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    relay_url = models.CharField(max_length=300)
    accepted = models.BooleanField(null=True)  # None: no answer yet (timeout or not connected)
    relay_message = models.CharField(max_length=300, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "relay_url"], name="delivery_unique_per_relay")]

    def __str__(self) -> str:
        return f"{self.relay_url}: {self.accepted}"


class RelayHealth(models.Model):
    relay_url = models.CharField(max_length=300, unique=True)
    connected = models.BooleanField(default=False)
    last_connected_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    events_received = models.BigIntegerField(default=0)
    ok_count = models.BigIntegerField(default=0)
    refused_count = models.BigIntegerField(default=0)
    reconnects = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "relay health"

    def __str__(self) -> str:
        return self.relay_url


class AddressableClock(models.Model):
    """Last `created_at` used per (kind, d): revisions must strictly increase across processes."""

    kind = models.PositiveIntegerField()
    d_tag = models.CharField(max_length=100)
    last_created_at = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "d_tag"], name="clock_unique_kind_d")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.d_tag} @ {self.last_created_at}"
