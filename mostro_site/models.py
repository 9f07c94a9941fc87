"""Node-wide tables: the operator's live settings (one row over the environment defaults), their
audit trail, and the REST API's tokens."""

import hashlib
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.db.models import F, Q
from django.db.models.functions import Length
from django.db.models.lookups import Exact

from mostro_site.config import rules


def _between(field: str, low, high, message: str) -> models.CheckConstraint:
    """A CHECK that a nullable field is NULL or within [low, high], with a human refusal text."""
    condition = Q(**{f"{field}__isnull": True}) | (Q(**{f"{field}__gte": low}) & Q(**{f"{field}__lte": high}))
    return models.CheckConstraint(
        condition=condition, name=f"node_settings_{field}_range", violation_error_message=message
    )


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
    bitcoin_price_api_url = models.CharField(
        "Bitcoin price API URL", max_length=200, null=True, blank=True
    )  # http(s): the rules check it
    relays = models.TextField(null=True, blank=True)  # comma-separated
    protocol_version = models.PositiveSmallIntegerField("protocol version", null=True, blank=True)
    name = models.CharField(max_length=100, null=True, blank=True)
    about = models.TextField(null=True, blank=True)
    picture = models.CharField(max_length=200, null=True, blank=True)
    website = models.CharField(max_length=200, null=True, blank=True)
    # The anti-abuse bond (docs/PROTOCOL.md §Bonds); rules in rules.node_settings_errors.
    bond_enabled = models.BooleanField("anti-abuse bond enabled", null=True, blank=True)
    bond_apply_to = models.CharField("bond posted on", max_length=4, null=True, blank=True)
    bond_amount_pct = models.FloatField("bond (fraction of the amount)", null=True, blank=True)
    bond_base_amount_sats = models.BigIntegerField("minimum bond (sats)", null=True, blank=True)
    bond_slash_on_waiting_timeout = models.BooleanField("slash on waiting timeout", null=True, blank=True)
    bond_slash_node_share_pct = models.FloatField("node's share of a slashed bond", null=True, blank=True)
    bond_payout_invoice_window_seconds = models.PositiveIntegerField(
        "bond payout invoice window (seconds)", null=True, blank=True
    )
    bond_payout_max_retries = models.PositiveIntegerField("bond payout attempts", null=True, blank=True)
    bond_payout_claim_window_days = models.PositiveIntegerField("bond claim window (days)", null=True, blank=True)
    # Operator policies (docs/OPERATIONS.md §Policies); bounds: rules.POLICY_BOUNDS.
    max_open_orders = models.PositiveIntegerField("max open orders per trader", null=True, blank=True)
    take_cooldown_seconds = models.PositiveIntegerField("cooldown between takes (seconds)", null=True, blank=True)
    daily_volume_sats = models.BigIntegerField("daily volume cap per trader (sats)", null=True, blank=True)
    counterparty_threshold_sats = models.BigIntegerField("taker requirements above (sats)", null=True, blank=True)
    counterparty_min_trades = models.PositiveIntegerField("taker's completed trades", null=True, blank=True)
    counterparty_min_rating = models.FloatField("taker's minimum rating", null=True, blank=True)
    counterparty_min_age_days = models.PositiveIntegerField("taker's minimum age (days)", null=True, blank=True)
    auto_ban_disputes_lost = models.PositiveIntegerField("automatic ban after disputes lost", null=True, blank=True)
    auto_ban_window_days = models.PositiveIntegerField("automatic ban window (days)", null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "node settings"
        # The backstop of `clean` (rules.node_settings_errors): whatever writes the row, the
        # database refuses a value outside these bounds. Keep both in step.
        constraints = [
            models.CheckConstraint(
                condition=Q(id=1), name="node_settings_single_row", violation_error_message="only one settings row"
            ),
            models.CheckConstraint(
                condition=Q(fee__isnull=True) | (Q(fee__gte=0) & Q(fee__lte=1)),
                name="node_settings_fee_range",
                violation_error_message="The fee must be a fraction between 0 and 1.",
            ),
            _between("max_routing_fee", 0, 1, "The max routing fee must be a fraction between 0 and 1."),
            models.CheckConstraint(
                condition=Q(dev_fee_percentage__isnull=True)
                | (Q(dev_fee_percentage__gte=0.1) & Q(dev_fee_percentage__lte=1)),
                name="node_settings_dev_fee_range",
                violation_error_message="The development fee must be 10–100 % of the node's fee.",
            ),
            models.CheckConstraint(
                condition=Q(protocol_version__isnull=True) | Q(protocol_version__in=[1, 2]),
                name="node_settings_protocol_version",
                violation_error_message="The protocol version must be 1 or 2.",
            ),
            _between("min_payment_amount_sats", 1, rules.MAX_SATS, "The minimum order must be 1 sat to 21M BTC."),
            _between("max_order_amount_sats", 1, rules.MAX_SATS, "The maximum order must be 1 sat to 21M BTC."),
            models.CheckConstraint(
                condition=Q(min_payment_amount_sats__isnull=True)
                | Q(max_order_amount_sats__isnull=True)
                | Q(min_payment_amount_sats__lte=F("max_order_amount_sats")),
                name="node_settings_amount_order",
                violation_error_message="The minimum order must not exceed the maximum order.",
            ),
            _between("expiration_hours", 1, 2**31 - 1, "The pending order lifetime must be at least 1 hour."),
            _between("expiration_seconds", 1, 2**31 - 1, "The waiting-state timeout must be at least 1 second."),
            _between("pow_bits", 0, rules.MAX_POW_BITS, f"Proof of work must be 0–{rules.MAX_POW_BITS} bits."),
            models.CheckConstraint(
                condition=Q(bond_apply_to__isnull=True) | Q(bond_apply_to__in=rules.BOND_APPLY_TO),
                name="node_settings_bond_apply_to",
                violation_error_message="Bonds apply to take, make or both.",
            ),
            _between("bond_amount_pct", 0, 1, "The bond percentage must be a fraction between 0 and 1."),
            _between("bond_slash_node_share_pct", 0, 1, "The node's share must be a fraction between 0 and 1."),
            _between("bond_base_amount_sats", 1, rules.MAX_SATS, "The minimum bond must be 1 sat to 21M BTC."),
            _between("bond_payout_invoice_window_seconds", 1, 2**31 - 1, "The invoice window must be ≥ 1 second."),
            _between("bond_payout_max_retries", 1, 2**31 - 1, "At least 1 payout attempt."),
            _between("bond_payout_claim_window_days", 1, 2**31 - 1, "The claim window must be at least 1 day."),
            *(
                _between(field, low, high, f"{field}: {low:g}–{high:g}, {meaning}.")
                for field, (low, high, meaning) in rules.POLICY_BOUNDS.items()
            ),
        ]

    def __str__(self) -> str:
        return "node settings"

    def clean(self) -> None:
        """Normalise blanks and lists, then apply `rules.node_settings_errors` (the one rule set)."""
        from mostro_site.config import env_node_config

        for field in ("bitcoin_price_api_url", "name", "about", "picture", "website", "relays"):
            value = getattr(self, field)
            if isinstance(value, str) and not value.strip():
                setattr(self, field, None)  # blank = environment default
            elif isinstance(value, str):
                setattr(self, field, value.strip())
        if self.relays is not None:
            self.relays = ",".join(rules.split_list(self.relays))
        if self.fiat_currencies_accepted is not None:
            self.fiat_currencies_accepted = ",".join(rules.split_list(self.fiat_currencies_accepted))
        values = {field.name: getattr(self, field.name) for field in self._meta.concrete_fields}
        errors = rules.node_settings_errors(values, env=env_node_config())
        if errors:
            raise ValidationError(errors)


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


class TokenScope(models.TextChoices):
    """What a token may do, on top of (never beyond) its user's own permissions."""

    READ = "read", "read: list and view"
    RESOLVE = "resolve", "resolve disputes: read + take, settle, refund, ban"
    OPERATOR = "operator", "operator: everything the user may do"


class ApiToken(models.Model):
    """A bearer token for the REST API, created by its owner; only its sha256 is stored."""

    PREFIX_LENGTH = 8

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=80)
    scope = models.CharField(max_length=10, choices=TokenScope.choices, default=TokenScope.READ)
    prefix = models.CharField(max_length=PREFIX_LENGTH, editable=False, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(scope__in=TokenScope.values), name="api_token_scope_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def new_key(cls) -> str:
        return secrets.token_urlsafe(32)


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


class MaintenanceState(models.Model):
    """Maintenance ("drain") mode (docs/PROTOCOL.md §Maintenance): one row, read by the intake gate
    on every new-order/take, so a switch from any process applies at once and survives restarts.

    The reason is the operator's own note: shown on the dashboard, REST and `manage.py maintenance
    status`, never published. Written only by `mostro_site.operator.maintenance.maintenance_set`.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    enabled = models.BooleanField(default=False)
    reason = models.TextField(blank=True, default="")
    since = models.DateTimeField(null=True, blank=True)  # when it was switched on; None while off
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="maintenance_state_single_row"),
            models.CheckConstraint(
                condition=Q(enabled=False, since__isnull=True) | Q(enabled=True, since__isnull=False),
                name="maintenance_state_since_iff_enabled",
            ),
        ]

    def __str__(self) -> str:
        return "maintenance on" if self.enabled else "maintenance off"

    @classmethod
    def current(cls) -> "MaintenanceState":
        """The stored state, or "off" when no switch was ever made (never cached: one indexed read)."""
        return cls.objects.filter(pk=1).first() or cls(enabled=False)

    @classmethod
    def is_enabled(cls) -> bool:
        # Plain SQL, same rows as filter(pk=1, enabled=True).exists(): the intake gate asks on
        # every new-order and take, and compiling the query cost more than running it.
        quote = connection.ops.quote_name
        table, key, enabled = quote(cls._meta.db_table), quote("id"), quote("enabled")
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {table} WHERE {key} = %s AND {enabled} = %s", [1, True])  # noqa: S608
            return cursor.fetchone() is not None
