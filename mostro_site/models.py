"""The operator's live node settings: one row that overrides the environment defaults."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length
from django.db.models.lookups import Exact


class NodeSettings(models.Model):
    """Blank fields fall back to the environment (see `mostro_site.config.node_config`)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    fee = models.FloatField("trading fee", null=True, blank=True)
    max_routing_fee = models.FloatField("max routing fee", null=True, blank=True)
    max_order_amount_sats = models.BigIntegerField("max order amount (sats)", null=True, blank=True)
    min_payment_amount_sats = models.BigIntegerField("min order amount (sats)", null=True, blank=True)
    expiration_hours = models.PositiveIntegerField("pending order lifetime (hours)", null=True, blank=True)
    expiration_seconds = models.PositiveIntegerField("waiting-state timeout (seconds)", null=True, blank=True)
    pow_bits = models.PositiveSmallIntegerField("PoW bits", null=True, blank=True)
    dev_fee_percentage = models.FloatField("dev fee (fraction of the node's fee)", null=True, blank=True)
    fiat_currencies_accepted = models.TextField(
        "accepted fiat currencies", null=True, blank=True
    )  # ","-separated; "" = all
    bitcoin_price_api_url = models.URLField("Bitcoin price API URL", null=True, blank=True)
    relays = models.TextField(null=True, blank=True)  # comma-separated
    protocol_version = models.PositiveSmallIntegerField("protocol version", null=True, blank=True)
    name = models.CharField(max_length=100, null=True, blank=True)
    about = models.TextField(null=True, blank=True)
    picture = models.URLField(null=True, blank=True)
    website = models.URLField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "node settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="node_settings_single_row"),
            models.CheckConstraint(
                condition=Q(fee__isnull=True) | (Q(fee__gte=0) & Q(fee__lte=1)), name="node_settings_fee_range"
            ),
            models.CheckConstraint(
                condition=Q(dev_fee_percentage__isnull=True)
                | (Q(dev_fee_percentage__gte=0.1) & Q(dev_fee_percentage__lte=1)),
                name="node_settings_dev_fee_range",
            ),
            models.CheckConstraint(
                condition=Q(protocol_version__isnull=True) | Q(protocol_version__in=[1, 2]),
                name="node_settings_protocol_version",
            ),
        ]

    def __str__(self) -> str:
        return "node settings"


class SettingsAuditEntry(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    field = models.CharField(max_length=60)
    before = models.TextField(blank=True, default="")
    after = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "settings audit entries"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.field}: {self.before!r} -> {self.after!r}"


class ReputationIssuer(models.Model):
    """A trusted issuer of reputation attestations (docs/PROTOCOL.md §Trust-list).

    Imports are deduplicated on the entry's `name`, never on a key, so an issuer can rotate its
    key without every account it attested importing again. Rules: `orders.services.
    reputation_issuers.issuer_entry_errors`, which every write path applies.
    """

    name = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=~Q(name=""), name="reputation_issuer_name_not_empty")]

    def __str__(self) -> str:
        return self.name


class ReputationIssuerKey(models.Model):
    """One key of a trusted issuer; a key belongs to one entry only (the primary key)."""

    pubkey = models.CharField(max_length=64, primary_key=True)  # lowercase hex
    issuer = models.ForeignKey(ReputationIssuer, on_delete=models.CASCADE, related_name="keys")

    class Meta:
        ordering = ["pubkey"]
        constraints = [
            models.CheckConstraint(condition=Exact(Length("pubkey"), 64), name="reputation_issuer_key_length")
        ]

    def __str__(self) -> str:
        return f"{self.issuer_id}: {self.pubkey[:16]}"


class ReputationImport(models.Model):
    """One imported attestation, recorded in the transaction that merges it into the identity's
    reputation. The two unique constraints (docs/PROTOCOL.md §Import-reputation): one source account backs one identity
    here, and an identity imports one account per issuer, even under concurrency."""

    attestation_id = models.CharField(max_length=64, db_index=True)
    issuer_name = models.CharField(max_length=64)
    issuer_key = models.CharField(max_length=64, db_index=True)
    subject = models.CharField(max_length=64)
    identity_pubkey = models.CharField(max_length=64, db_index=True)
    trade_pubkey = models.CharField(max_length=64)
    reviews = models.BigIntegerField()
    rating_hundredths = models.PositiveSmallIntegerField()
    since = models.DateTimeField()  # the UTC day start the attestation carries
    attested_at = models.DateTimeField()  # the attestation's created_at (the issuer's clock)
    imported_at = models.DateTimeField(auto_now_add=True)  # this node's clock: what reversals select on

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["issuer_name", "subject"], name="reputation_import_unique_subject"),
            models.UniqueConstraint(
                fields=["issuer_name", "identity_pubkey"], name="reputation_import_unique_identity"
            ),
            models.CheckConstraint(condition=Q(reviews__gte=5), name="reputation_import_reviews_floor"),
            models.CheckConstraint(
                condition=Q(rating_hundredths__gte=100) & Q(rating_hundredths__lte=500),
                name="reputation_import_rating_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.issuer_name}/{self.subject} -> {self.identity_pubkey[:16]}"
