from django.contrib import admin

from orders.models import Order, OrderStatusChange, Trader

MONEY_FIELDS = (
    "amount_sats",
    "fee_sats",
    "dev_fee_sats",
    "routing_fee_sats",
    "hold_invoice_hash",
    "hold_invoice_payment_request",
    "buyer_invoice",
    "payout_payment_hash",
    "payout_claimed_at",
    "payment_attempts",
    "failed_payment",
    "invoice_held_at",
)


class OrderStatusChangeInline(admin.TabularInline):
    model = OrderStatusChange
    extra = 0
    can_delete = False
    readonly_fields = ("created_at", "from_status", "to_status", "actor", "reason")
    fields = readonly_fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "amount_sats", "fiat_code", "fiat_amount", "created_at", "expires_at")
    list_filter = ("status", "kind", "fiat_code")
    search_fields = (
        "id",
        "buyer_pubkey",
        "seller_pubkey",
        "master_buyer_pubkey",
        "master_seller_pubkey",
        "hold_invoice_hash",
    )
    ordering = ("-created_at",)
    inlines = [OrderStatusChangeInline]
    # The preimage is the escrow's key: never shown in the admin.
    exclude = ("hold_invoice_preimage",)

    def get_readonly_fields(self, request, obj=None):
        # Orders move only through the engine's guarded transitions; the admin never edits them.
        return [f.name for f in Order._meta.fields if f.name != "hold_invoice_preimage"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # view only: a POST would save the row and log a change

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Trader)
class TraderAdmin(admin.ModelAdmin):
    list_display = ("pubkey", "is_solver", "solver_category", "total_reviews", "total_rating", "last_trade_index")
    list_filter = ("is_solver", "solver_category", "is_banned")
    search_fields = ("pubkey",)
    readonly_fields = (
        "pubkey",
        "total_reviews",
        "total_rating",
        "last_rating",
        "max_rating",
        "min_rating",
        "last_trade_index",
        "created_at",
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # Solver status and category change only through disputes' solver services (audited,
        # the same rules as admin-add-solver); reputation only through ratings.
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(OrderStatusChange)
class OrderStatusChangeAdmin(admin.ModelAdmin):
    list_display = ("created_at", "order", "from_status", "to_status", "actor", "reason")
    list_filter = ("to_status",)
    search_fields = ("order__id", "actor")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in OrderStatusChange._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
