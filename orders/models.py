"""Orders, traders (Mostro's `users` table) and the per-order status audit trail.

Amounts are integer satoshis (`*_sats`) or integer fiat units (the protocol has no cents).
Pubkeys are 64-char lowercase hex; `master_*` are identity keys, the others trade keys.
"""

import uuid

from django.db import models
from django.db.models import F, Q

from orders.status import OrderKind, OrderStatus


class SolverCategory(models.IntegerChoices):
    NONE = 0, "not a solver"
    READ = 1, "solver (read)"
    READ_WRITE = 2, "solver (read-write)"


class Trader(models.Model):
    """A user known by its identity key; full-privacy users never get a row."""

    pubkey = models.CharField(max_length=64, primary_key=True)
    is_admin = models.BooleanField(default=False)
    is_solver = models.BooleanField(default=False)
    solver_category = models.PositiveSmallIntegerField(choices=SolverCategory.choices, default=SolverCategory.NONE)
    is_banned = models.BooleanField(default=False)
    last_trade_index = models.BigIntegerField(default=0)
    total_reviews = models.BigIntegerField(default=0)
    # A float on purpose: the wire format prints Rust f64 values (4.666666666666667) that
    # only an IEEE double reproduces.
    total_rating = models.FloatField(default=0.0)
    last_rating = models.PositiveSmallIntegerField(default=0)
    max_rating = models.PositiveSmallIntegerField(default=0)
    min_rating = models.PositiveSmallIntegerField(default=0)
    # The record's start: `since` on the wire (its UTC day); an import moves it back to the
    # earliest date it attests (docs/PROTOCOL.md §Import-reputation, §Reputation).
    created_at = models.DateTimeField(auto_now_add=True)
    # Reputation portability (docs/PROTOCOL.md §Reputation): what was imported ("seeded") is kept
    # apart from what was earned here ("native"), so an export never carries an import.
    # native reviews = total_reviews - seeded_reviews; native average = native_rating_sum / them.
    seeded_reviews = models.BigIntegerField(default=0)
    seeded_rating_sum = models.FloatField(default=0.0)
    native_rating_sum = models.FloatField(default=0.0)
    # The identity this account's reputation is exported to (set by compare-and-set), and the
    # UTC day it was bound or last re-attested.
    reputation_exported_to = models.CharField(max_length=64, null=True, blank=True)
    reputation_exported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(last_trade_index__gte=0), name="trader_trade_index_non_negative"),
            models.CheckConstraint(condition=Q(total_reviews__gte=0), name="trader_reviews_non_negative"),
            models.CheckConstraint(
                condition=Q(total_rating__gte=0) & Q(total_rating__lte=5), name="trader_rating_in_range"
            ),
            models.CheckConstraint(condition=Q(solver_category__in=[0, 1, 2]), name="trader_solver_category_valid"),
            models.CheckConstraint(
                condition=Q(seeded_reviews__gte=0) & Q(seeded_reviews__lte=F("total_reviews")),
                name="trader_seeded_reviews_in_range",
            ),
        ]

    def __str__(self) -> str:
        return self.pubkey[:16]

    @property
    def native_reviews(self) -> int:
        return self.total_reviews - self.seeded_reviews

    @property
    def native_rating(self) -> float:
        """The exact average of the ratings received here (0.0 without any)."""
        return self.native_rating_sum / self.native_reviews if self.native_reviews > 0 else 0.0


class Order(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=4, choices=OrderKind.choices)
    # No index of its own: (status, expires_at) and (status, taken_at) below serve every lookup by
    # status, and one index fewer is one page fewer written at each of a trade's six status changes.
    status = models.CharField(max_length=24, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    creator_pubkey = models.CharField(max_length=64)
    buyer_pubkey = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    master_buyer_pubkey = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    seller_pubkey = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    master_seller_pubkey = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    trade_index_buyer = models.BigIntegerField(null=True, blank=True)
    trade_index_seller = models.BigIntegerField(null=True, blank=True)

    # Terms. amount_sats 0 = market price until taken.
    price_from_api = models.BooleanField(default=False)
    premium = models.BigIntegerField(default=0)
    payment_method = models.TextField()
    amount_sats = models.BigIntegerField(default=0)
    fiat_code = models.CharField(max_length=16)
    fiat_amount = models.BigIntegerField(default=0)
    min_fiat_amount = models.BigIntegerField(null=True, blank=True)
    max_fiat_amount = models.BigIntegerField(null=True, blank=True)
    fee_sats = models.BigIntegerField(default=0)  # one party's share
    dev_fee_sats = models.BigIntegerField(default=0)
    routing_fee_sats = models.BigIntegerField(default=0)

    # Escrow.
    hold_invoice_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    hold_invoice_preimage = models.CharField(max_length=64, null=True, blank=True)
    hold_invoice_payment_request = models.TextField(null=True, blank=True)
    hold_invoice_request_id = models.BigIntegerField(null=True, blank=True)  # echoed when the HTLC is accepted
    invoice_held_at = models.DateTimeField(null=True, blank=True)

    # Payout to the buyer. The hash is claimed before paying so a payout happens at most once.
    buyer_invoice = models.TextField(null=True, blank=True)
    payout_payment_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    payout_claimed_at = models.DateTimeField(null=True, blank=True)
    # When the claimed invoice expires: a Lightning-address payout is retried (with a fresh
    # invoice, a new hash) only after LND reported the attempt failed or this time passed.
    payout_invoice_expires_at = models.DateTimeField(null=True, blank=True)
    payout_request_id = models.BigIntegerField(null=True, blank=True)
    payment_attempts = models.PositiveIntegerField(default=0)
    failed_payment = models.BooleanField(default=False)
    next_payout_at = models.DateTimeField(null=True, blank=True)

    # Cancel, dispute and rating flags.
    cancel_initiator_pubkey = models.CharField(max_length=64, null=True, blank=True)
    buyer_cooperative_cancel = models.BooleanField(default=False)
    seller_cooperative_cancel = models.BooleanField(default=False)
    buyer_dispute = models.BooleanField(default=False)
    seller_dispute = models.BooleanField(default=False)
    buyer_sent_rate = models.BooleanField(default=False)
    seller_sent_rate = models.BooleanField(default=False)

    # Range orders.
    range_parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    next_trade_pubkey = models.CharField(max_length=64, null=True, blank=True)
    next_trade_index = models.BigIntegerField(null=True, blank=True)

    # Time.
    created_at = models.DateTimeField(db_index=True)
    expires_at = models.DateTimeField(db_index=True)
    taken_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    event_id = models.CharField(max_length=64, blank=True, default="")  # last kind-38383 revision

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_sats__gte=0), name="order_amount_non_negative"),
            models.CheckConstraint(condition=Q(fee_sats__gte=0), name="order_fee_non_negative"),
            models.CheckConstraint(condition=Q(dev_fee_sats__gte=0), name="order_dev_fee_non_negative"),
            models.CheckConstraint(condition=Q(routing_fee_sats__gte=0), name="order_routing_fee_non_negative"),
            models.CheckConstraint(condition=Q(fiat_amount__gte=0), name="order_fiat_amount_non_negative"),
            models.CheckConstraint(
                condition=Q(min_fiat_amount__isnull=True) | Q(min_fiat_amount__gte=0), name="order_min_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(max_fiat_amount__isnull=True) | Q(max_fiat_amount__gte=0), name="order_max_non_negative"
            ),
            models.CheckConstraint(condition=Q(status__in=OrderStatus.values), name="order_status_valid"),
            models.CheckConstraint(condition=Q(kind__in=OrderKind.values), name="order_kind_valid"),
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"]),
            models.Index(fields=["status", "taken_at"]),
            models.Index(fields=["updated_at"]),  # the payout sweep and the live pages' database feed
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.status})"

    @property
    def is_range(self) -> bool:
        return self.min_fiat_amount is not None and self.max_fiat_amount is not None

    @property
    def fiat_range(self) -> tuple[int, int] | None:
        """(min, max) fiat of a range order; None for a single amount."""
        if self.min_fiat_amount is None or self.max_fiat_amount is None:
            return None
        return self.min_fiat_amount, self.max_fiat_amount

    @property
    def maker_pubkey(self) -> str | None:
        return self.seller_pubkey if self.kind == OrderKind.SELL else self.buyer_pubkey

    @property
    def taker_pubkey(self) -> str | None:
        return self.buyer_pubkey if self.kind == OrderKind.SELL else self.seller_pubkey


class OrderStatusChange(models.Model):
    """Audit row written by `transition_order` in the same transaction as the change."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="status_changes")
    from_status = models.CharField(max_length=24, blank=True)  # "" for creation
    to_status = models.CharField(max_length=24)
    actor = models.CharField(max_length=80)  # a trade pubkey, "scheduler", "lightning", "admin:<username>"
    reason = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.from_status or '∅'} → {self.to_status}"


class BtcPrice(models.Model):
    """Latest aggregated BTC price per fiat code, shared by every process through the DB.

    The order path never calls a price API (Mostro #783): it reads this row and refuses with
    `price_too_stale` when `as_of` is older than the staleness window.
    """

    fiat_code = models.CharField(max_length=16, primary_key=True)
    price = models.DecimalField(max_digits=24, decimal_places=8)  # fiat units per 1 BTC
    as_of = models.DateTimeField()
    sources = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(price__gt=0), name="btc_price_positive")]

    def __str__(self) -> str:
        return f"1 BTC = {self.price} {self.fiat_code}"


class EscrowRefund(models.Model):
    """A refund of the seller's hold invoice the node has decided (docs/PROTOCOL.md §Escrow).

    Written in the transaction of the decision (a cancel, a timeout, admin-cancel, the
    guardian) before LND is asked, so the database says the refund is happening before the
    irreversible call, and a refund LND did not confirm (node down) is retried by a sweep.
    `hold_invoice_hash` is kept here because a taker reset clears it from the order.
    """

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="escrow_refunds")
    hold_invoice_hash = models.CharField(max_length=64, unique=True)
    reason = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True, db_index=True)  # LND said canceled (or unknown)
    attempts = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"refund {self.hold_invoice_hash[:16]} of {self.order_id}"


class Ban(models.Model):
    """An operator's ban of a key (docs/OPERATIONS.md §Policies): the identity key in reputation
    mode, the trade key in full privacy. Rows are never deleted: a lift stamps `lifted_at`, so the
    table is the key's whole history. Written only by `orders/services/bans.py`.

    At most one unlifted row per key (the partial unique constraint); an expired row stays
    unlifted until `ban_create` closes it, and never refuses anything once `expires_at` passed.
    """

    pubkey = models.CharField(max_length=64, db_index=True)  # lowercase hex
    reason = models.CharField(max_length=300)
    expires_at = models.DateTimeField(null=True, blank=True)  # None: until lifted
    banned_by = models.CharField(max_length=80)  # "admin:<username>", "api:<username>", "auto:disputes-lost"
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.CharField(max_length=80, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["pubkey"], condition=Q(lifted_at__isnull=True), name="ban_one_unlifted_per_key"
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="ban_reason_not_empty"),
            models.CheckConstraint(condition=Q(lifted_at__isnull=True) | ~Q(lifted_by=""), name="ban_lift_has_actor"),
        ]

    def __str__(self) -> str:
        return f"ban {self.pubkey[:16]} ({self.reason[:40]})"

    def is_active_at(self, when) -> bool:
        return self.lifted_at is None and (self.expires_at is None or self.expires_at > when)


# Registered with the orders app (docs/PROTOCOL.md §Bonds).
from orders.bonds.models import Bond, BondStateChange  # noqa: E402

__all__ = [
    "Ban",
    "Bond",
    "BondStateChange",
    "BtcPrice",
    "EscrowRefund",
    "Order",
    "OrderStatusChange",
    "SolverCategory",
    "Trader",
]
