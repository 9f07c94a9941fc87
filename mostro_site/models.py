"""The operator's live node settings: one row that overrides the environment defaults."""

from django.conf import settings
from django.db import models
from django.db.models import Q


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
