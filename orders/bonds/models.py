"""Bond rows and their audit trail (docs/PROTOCOL.md §Bonds).

A bond is a hold invoice the node issues to one party of one order. Its `state` is the node's
decision; `htlc_resolved_at` records that LND confirmed the matching cancel or settle, so a
decision taken before a crash is finished by the reconciliation job, never taken twice.
"""

from django.db import models
from django.db.models import F, Q


class BondRole(models.TextChoices):
    MAKER = "maker"
    TAKER = "taker"


class BondState(models.TextChoices):
    REQUESTED = "requested"  # invoice issued, HTLC not accepted yet
    LOCKED = "locked"  # HTLC accepted and held
    RELEASED = "released"  # HTLC canceled (or to be canceled): the party keeps its sats
    PENDING_PAYOUT = "pending-payout"  # slashed: HTLC settled, the counterparty's share unpaid
    SLASHED = "slashed"  # slashed and the counterparty's share paid (or none was owed)
    FORFEITED = "forfeited"  # slashed, the share unclaimed within the claim window: the node keeps it
    FAILED = "failed"  # slashed, the payout failed every attempt; a new invoice revives it
    LND_CANCELED = "lnd-canceled"  # LND canceled a locked HTLC nobody here decided to cancel


class BondPart(models.TextChoices):
    """A range maker's bond is split into parts (docs/PROTOCOL.md §Bonds, Range makers)."""

    WHOLE = ""  # a bond with its own hold invoice
    SLICE = "slice"  # the share of one slice the maker was slashed on; `order` is that slice
    REFUND = "refund"  # what no slice took, owed back to the maker; `order` is the range's first


class SlashReason(models.TextChoices):
    LOST_DISPUTE = "lost-dispute"
    TIMEOUT = "timeout"


class Bond(models.Model):
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="bonds")
    role = models.CharField(max_length=5, choices=BondRole.choices)
    pubkey = models.CharField(max_length=64)  # the party's trade key
    identity = models.CharField(max_length=64)
    trade_index = models.BigIntegerField(null=True, blank=True)
    request_id = models.BigIntegerField(null=True, blank=True)  # echoed in pay-bond-invoice and the resumed take
    state = models.CharField(max_length=16, choices=BondState.choices, default=BondState.REQUESTED, db_index=True)
    amount_sats = models.BigIntegerField()
    hash = models.CharField(max_length=64, unique=True, null=True, blank=True)  # null: a part (no invoice)
    preimage = models.CharField(max_length=64, blank=True, default="")
    payment_request = models.TextField(blank=True, default="")
    # A part of a range maker's bond: its one hold invoice is the parent's.
    parent_bond = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="parts")
    part = models.CharField(max_length=8, choices=BondPart.choices, blank=True, default=BondPart.WHOLE)
    # What a taker's take fixed (fiat, sats, fees, its invoice): copied onto the order if it wins.
    take_context = models.JSONField(default=dict, blank=True)
    invoice_expires_at = models.DateTimeField()  # an unpaid bond is canceled then
    locked_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)  # released or slashed
    htlc_resolved_at = models.DateTimeField(null=True, blank=True)  # LND confirmed the cancel/settle
    lnd_canceled_at = models.DateTimeField(null=True, blank=True)
    # Slash and payout (docs/PROTOCOL.md §Bonds, Slash and Payout).
    slashed_reason = models.CharField(max_length=16, choices=SlashReason.choices, blank=True, default="")
    slashed_at = models.DateTimeField(null=True, blank=True)
    node_share_sats = models.BigIntegerField(null=True, blank=True)
    payout_sats = models.BigIntegerField(null=True, blank=True)  # the counterparty's share
    payout_recipient = models.CharField(max_length=64, null=True, blank=True)  # its trade key
    payout_invoice = models.TextField(null=True, blank=True)
    payout_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    payout_claimed_at = models.DateTimeField(null=True, blank=True)
    payout_attempts = models.PositiveIntegerField(default=0)
    payout_asked_at = models.DateTimeField(null=True, blank=True)  # last add-bond-invoice request
    payout_paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_sats__gt=0), name="bond_amount_positive"),
            models.CheckConstraint(condition=Q(state__in=BondState.values), name="bond_state_valid"),
            models.CheckConstraint(condition=Q(role__in=BondRole.values), name="bond_role_valid"),
            models.CheckConstraint(
                condition=Q(node_share_sats__isnull=True)
                | (Q(node_share_sats__gte=0) & Q(node_share_sats__lte=F("amount_sats"))),
                name="bond_node_share_in_range",
            ),
            models.CheckConstraint(
                condition=Q(payout_sats__isnull=True)
                | Q(node_share_sats__isnull=True)
                | Q(payout_sats=F("amount_sats") - F("node_share_sats")),
                name="bond_split_exact",
            ),
            # The first taker bond to lock wins (docs/PROTOCOL.md §Bonds): the database refuses a second.
            models.UniqueConstraint(
                fields=["order"], condition=Q(role="taker", state="locked"), name="bond_one_locked_taker"
            ),
            models.UniqueConstraint(
                fields=["order"], condition=Q(role="maker", parent_bond__isnull=True), name="bond_one_maker_per_order"
            ),
            # A part has a parent and no invoice of its own; a whole bond the reverse.
            models.CheckConstraint(
                condition=(Q(part="") & Q(parent_bond__isnull=True) & Q(hash__isnull=False))
                | (Q(part__in=["slice", "refund"]) & Q(parent_bond__isnull=False) & Q(hash__isnull=True)),
                name="bond_part_shape",
            ),
            # One slash per slice, one refund per range bond (mostrod's unique slice index).
            models.UniqueConstraint(
                fields=["parent_bond", "order"], condition=Q(part="slice"), name="bond_one_slash_per_slice"
            ),
            models.UniqueConstraint(fields=["parent_bond"], condition=Q(part="refund"), name="bond_one_refund"),
        ]

    def __str__(self) -> str:
        return f"{self.role} bond {self.pk} of {self.order_id} ({self.state})"


class BondStateChange(models.Model):
    """Audit row written by `bond_transition` in the same transaction as the change."""

    bond = models.ForeignKey(Bond, on_delete=models.PROTECT, related_name="changes")
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16)
    actor = models.CharField(max_length=80)
    reason = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"bond {self.bond_id}: {self.from_state or '∅'} → {self.to_state}"
