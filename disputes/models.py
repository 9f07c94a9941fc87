"""Disputes (one per order, ever), their action log and staff ↔ solver links."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class DisputeStatus(models.TextChoices):
    INITIATED = "initiated"
    IN_PROGRESS = "in-progress"
    SELLER_REFUNDED = "seller-refunded"
    SETTLED = "settled"
    # Closed by the parties themselves (mostrod #967, #968; docs/PROTOCOL.md §Dispute-event).
    RELEASED = "released"  # the seller released
    COOPERATIVELY_CANCELED = "cooperatively-canceled"  # a cooperative cancel


class DisputeInitiator(models.TextChoices):
    BUYER = "buyer"
    SELLER = "seller"


OPEN_DISPUTE_STATUSES = frozenset({DisputeStatus.INITIATED, DisputeStatus.IN_PROGRESS})


class Dispute(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.OneToOneField("orders.Order", on_delete=models.PROTECT, related_name="dispute")
    status = models.CharField(max_length=24, choices=DisputeStatus.choices, default=DisputeStatus.INITIATED)
    initiator = models.CharField(max_length=8, choices=DisputeInitiator.choices)
    initiator_pubkey = models.CharField(max_length=64)
    order_previous_status = models.CharField(max_length=24)
    solver_pubkey = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    # lnp2pBot-style proof tokens; mostrod dropped them, kept nullable for imports.
    buyer_token = models.PositiveSmallIntegerField(null=True, blank=True)
    seller_token = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    taken_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)  # the live pages' database feed

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status__in=DisputeStatus.values), name="dispute_status_valid"),
            models.CheckConstraint(condition=Q(initiator__in=DisputeInitiator.values), name="dispute_initiator_valid"),
        ]
        permissions = [
            ("take_dispute", "Can take a dispute"),
            ("resolve_dispute", "Can settle or cancel a dispute"),
            ("manage_solvers", "Can add or remove solvers"),
        ]

    def __str__(self) -> str:
        return f"dispute {self.id} ({self.status})"


class SolverLink(models.Model):
    """Ties a Django login to the Nostr pubkey the solver acts as."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="solver_link")
    pubkey = models.CharField(max_length=64, unique=True)

    def __str__(self) -> str:
        return f"{self.user} → {self.pubkey[:16]}"


class DisputeLogAction(models.TextChoices):
    OPENED = "opened"
    TAKEN = "taken"
    SETTLED = "settled"
    REFUNDED = "refunded"
    RELEASED = "released"  # by the seller
    COOP_CANCELED = "coop-cancel"  # by both parties


class DisputeLog(models.Model):
    """Who did what to a dispute. A take changes no order status, so OrderStatusChange alone
    would not say who took (or re-took) a dispute."""

    dispute = models.ForeignKey(Dispute, on_delete=models.PROTECT, related_name="log")
    action = models.CharField(max_length=12, choices=DisputeLogAction.choices)
    actor = models.CharField(max_length=80)  # a pubkey, or "admin:<username>" for browser/API users
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.dispute_id} {self.action} by {self.actor}"


from disputes.chat.models import ChatMessage, SolverKey  # noqa: E402, F401 - registered with this app
