"""The development-fee ledger: at most one payment per order, ever.

The one-to-one order link and the unique payment hash make a second payment for the same
order impossible in the schema, whatever the code above does (Mostro's FIX_DUPLICATE_DEV_FEE).
"""

from django.db import models
from django.db.models import Q


class DevFeeStatus(models.TextChoices):
    OWED = "owed"  # computed, not yet claimed
    CLAIMED = "claimed"  # a worker holds the claim; resolving the invoice
    IN_FLIGHT = "in-flight"  # hash stored, payment sent or outcome unknown: ask the node
    PAID = "paid"
    FAILED = "failed"  # node said FAILED; retried later with a fresh invoice


class DevFeePayment(models.Model):
    order = models.OneToOneField("orders.Order", on_delete=models.PROTECT, related_name="dev_fee_payment")
    amount_sats = models.BigIntegerField()
    status = models.CharField(max_length=12, choices=DevFeeStatus.choices, default=DevFeeStatus.OWED, db_index=True)
    destination = models.CharField(max_length=320)
    payment_request = models.TextField(blank=True, default="")
    payment_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    claim_token = models.CharField(max_length=64, null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    routing_fee_sats = models.BigIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    paid_at = models.DateTimeField(null=True, blank=True)
    audit_event_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_sats__gte=0), name="devfee_amount_non_negative"),
            models.CheckConstraint(condition=Q(routing_fee_sats__gte=0), name="devfee_routing_fee_non_negative"),
            models.CheckConstraint(condition=Q(status__in=DevFeeStatus.values), name="devfee_status_valid"),
        ]

    def __str__(self) -> str:
        return f"dev fee {self.amount_sats} sats for {self.order_id} ({self.status})"
