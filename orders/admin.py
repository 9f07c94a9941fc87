"""Orders, traders and status changes in the admin: read-only views, grouped for people.

Orders move only through the engine's guarded transitions, so nothing here edits them; the one
action, an operator's cancel of orders nobody took, calls the engine's service. The order page
is a view (no Save button) grouped as trade, parties, money, Lightning and the timeline, with
links to its dispute and traders; it updates live (`data-live-refresh`).
"""

from django.contrib import admin, messages
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join

from mostro_site.staff import is_operator
from nostrbridge.protocol.errors import CantDo
from orders import display
from orders.models import Bond, BondStateChange, Order, OrderStatusChange, Trader
from orders.services.admin_cancel import order_admin_cancel_pretrade


class OrderStatusChangeInline(admin.TabularInline):
    model = OrderStatusChange
    extra = 0
    can_delete = False
    verbose_name = "status change"
    verbose_name_plural = "Timeline"
    readonly_fields = ("when", "from_status", "to_status", "who", "reason")
    fields = readonly_fields

    @admin.display(description="when")
    def when(self, obj: OrderStatusChange) -> str:
        return display.when(obj.created_at)

    @admin.display(description="who")
    def who(self, obj: OrderStatusChange):
        return format_html('<span title="{}">{}</span>', obj.actor, display.short(obj.actor, 12))

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def _trader_link(identity: str | None, trade: str | None):
    if not trade:
        return "—"
    if not identity or identity == trade:
        return format_html("{} <span class='help'>(full privacy)</span>", display.copyable(trade, 12))
    url = reverse("admin:orders_trader_change", args=[identity])
    return format_html(
        '{} · identity <a href="{}">{}</a>', display.copyable(trade, 12), url, display.short(identity, 12)
    )


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("order_id", "kind", "status_badge", "fiat", "amount", "premium_pct", "method", "created")
    list_display_links = ("kind",)
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
    change_form_template = "admin/orders/order/change_form.html"
    change_list_template = "admin/orders/order/change_list.html"
    fieldsets = (
        ("Trade", {"fields": ("order_id_full", "kind", "status_now", "fiat_terms", "payment_method", "pricing",
                              "range_info", "times", "dispute_link")}),
        ("Parties", {"fields": ("maker_side", "buyer", "seller")}),
        ("Money", {"fields": ("amount_sats_display", "fees", "escrow_display")}),
        ("Lightning", {"fields": ("hold_invoice_hash", "invoice_held_at_display", "hold_invoice_payment_request",
                                  "buyer_invoice", "payout")}),
    )  # fmt: skip

    actions = ["admin_cancel_pretrade"]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, extra_context={"title": "Orders", **(extra_context or {})})

    def has_admin_cancel_permission(self, request) -> bool:
        return is_operator(request.user)

    @admin.action(description="Cancel selected orders nobody took yet (operators)", permissions=["admin_cancel"])
    def admin_cancel_pretrade(self, request, queryset):
        """`pending`/`waiting-taker-bond` only (docs/PROTOCOL.md §Admin-cancel); each other order is
        named and left alone."""
        canceled, refused = [], []
        for order in queryset.order_by("created_at"):
            try:
                order_admin_cancel_pretrade(order_id=order.pk, actor_label=f"admin:{request.user.get_username()}")
            except CantDo as exc:
                refused.append(f"{order.pk} ({order.status}: {exc.reason})")
            else:
                canceled.append(str(order.pk))
        if canceled:
            self.message_user(request, f"Canceled by admin: {', '.join(canceled)}.", messages.SUCCESS)
        if refused:
            self.message_user(
                request, f"Not canceled (already taken or closed): {', '.join(refused)}.", messages.WARNING
            )

    def get_readonly_fields(self, request, obj=None):
        # The preimage is the escrow's key: never shown.
        return [name for _, group in self.fieldsets for name in group["fields"]]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # view only: a POST would save the row and log a change

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    # --- list columns ----------------------------------------------------------------------
    @admin.display(description="order", ordering="id")
    def order_id(self, obj: Order):
        return display.copyable(obj.pk)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Order):
        return format_html('<span class="badge badge-{}" data-order-id="{}">{}</span>', obj.status, obj.pk, obj.status)

    @admin.display(description="fiat", ordering="fiat_amount")
    def fiat(self, obj: Order) -> str:
        if obj.is_range and not obj.fiat_amount:
            return f"{display.fiat(obj.min_fiat_amount)}–{display.fiat(obj.max_fiat_amount, obj.fiat_code)}"
        return display.fiat(obj.fiat_amount, obj.fiat_code)

    @admin.display(description="amount", ordering="amount_sats")
    def amount(self, obj: Order) -> str:
        return display.sats(obj.amount_sats) if obj.amount_sats else "market price"

    @admin.display(description="premium", ordering="premium")
    def premium_pct(self, obj: Order) -> str:
        return f"{obj.premium} %"

    @admin.display(description="payment method")
    def method(self, obj: Order) -> str:
        return display.short(obj.payment_method, 24)

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Order) -> str:
        return display.when(obj.created_at)

    # --- the order page ----------------------------------------------------------------------
    @admin.display(description="order")
    def order_id_full(self, obj: Order):
        return display.copyable(obj.pk, 36)

    @admin.display(description="status")
    def status_now(self, obj: Order):
        return format_html('<strong id="order-status">{}</strong>', obj.status)

    @admin.display(description="fiat")
    def fiat_terms(self, obj: Order) -> str:
        return self.fiat(obj)

    @admin.display(description="price")
    def pricing(self, obj: Order) -> str:
        basis = "market price" if obj.price_from_api else "fixed amount"
        return f"{basis}, premium {obj.premium} %"

    @admin.display(description="range")
    def range_info(self, obj: Order):
        if obj.range_parent_id:
            url = reverse("admin:orders_order_change", args=[obj.range_parent_id])
            return format_html('child of <a href="{}">{}</a>', url, display.short(obj.range_parent_id))
        if obj.is_range:
            return f"{display.fiat(obj.min_fiat_amount)}–{display.fiat(obj.max_fiat_amount, obj.fiat_code)}"
        return "—"

    @admin.display(description="times")
    def times(self, obj: Order):
        return format_html(
            "created {} · taken {} · expires {}", display.when(obj.created_at), display.when(obj.taken_at),
            display.when(obj.expires_at),
        )  # fmt: skip

    @admin.display(description="dispute")
    def dispute_link(self, obj: Order):
        dispute = getattr(obj, "dispute", None)
        if dispute is None:
            return "none"
        try:
            url = reverse("admin:disputes_dispute_change", args=[dispute.pk])
        except NoReverseMatch:
            return dispute.status
        return format_html('<a href="{}" id="dispute-link">{}</a> ({})', url, display.short(dispute.pk), dispute.status)

    @admin.display(description="maker")
    def maker_side(self, obj: Order) -> str:
        return "the seller (a sell order)" if obj.kind == "sell" else "the buyer (a buy order)"

    @admin.display(description="buyer")
    def buyer(self, obj: Order):
        return _trader_link(obj.master_buyer_pubkey, obj.buyer_pubkey)

    @admin.display(description="seller")
    def seller(self, obj: Order):
        return _trader_link(obj.master_seller_pubkey, obj.seller_pubkey)

    @admin.display(description="amount")
    def amount_sats_display(self, obj: Order) -> str:
        return self.amount(obj)

    @admin.display(description="fees")
    def fees(self, obj: Order) -> str:
        return (
            f"{display.sats(obj.fee_sats)} per party · dev fee {display.sats(obj.dev_fee_sats)} · "
            f"routing {display.sats(obj.routing_fee_sats)}"
        )

    @admin.display(description="escrow")
    def escrow_display(self, obj: Order) -> str:
        return display.sats(obj.amount_sats + obj.fee_sats) if obj.hold_invoice_hash else "—"

    @admin.display(description="escrow locked")
    def invoice_held_at_display(self, obj: Order) -> str:
        return display.when(obj.invoice_held_at)

    @admin.display(description="payout")
    def payout(self, obj: Order):
        parts = [
            ("hash", obj.payout_payment_hash or "—"),
            ("attempts", str(obj.payment_attempts)),
            ("failed", "yes" if obj.failed_payment else "no"),
            ("next try", display.when(obj.next_payout_at)),
        ]
        return format_html_join(" · ", "{} {}", parts)


@admin.register(Trader)
class TraderAdmin(admin.ModelAdmin):
    list_display = ("short_pubkey", "rating", "total_reviews", "is_solver", "solver_category", "is_banned", "since")
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

    @admin.display(description="identity key", ordering="pubkey")
    def short_pubkey(self, obj: Trader):
        return display.copyable(obj.pubkey, 16)

    @admin.display(description="rating", ordering="total_rating")
    def rating(self, obj: Trader) -> str:
        return f"{obj.total_rating:.1f} / 5"

    @admin.display(description="since", ordering="created_at")
    def since(self, obj: Trader) -> str:
        return display.when(obj.created_at)

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
    list_display = ("when", "order_short", "from_status", "to_status", "actor_short", "reason")
    list_filter = ("to_status",)
    search_fields = ("order__id", "actor")

    @admin.display(description="when", ordering="created_at")
    def when(self, obj: OrderStatusChange) -> str:
        return display.when(obj.created_at)

    @admin.display(description="order", ordering="order")
    def order_short(self, obj: OrderStatusChange):
        return display.copyable(obj.order_id)

    @admin.display(description="actor", ordering="actor")
    def actor_short(self, obj: OrderStatusChange) -> str:
        return display.short(obj.actor, 16)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in OrderStatusChange._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class BondStateChangeInline(admin.TabularInline):
    """A bond's history: every state change, who made it and why."""

    model = BondStateChange
    extra = 0
    can_delete = False
    verbose_name = "state change"
    verbose_name_plural = "History"
    readonly_fields = ("created_at", "from_state", "to_state", "actor", "reason")
    fields = readonly_fields

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("orders.view_bond")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Bond)
class BondAdmin(admin.ModelAdmin):
    """Anti-abuse bonds (docs/PROTOCOL.md §Bonds), read-only: they move only through `orders.bonds`."""

    list_display = ("created_at", "order", "role", "part", "state", "amount_sats", "node_share_sats", "payout_sats")
    list_filter = ("state", "role", "part", "slashed_reason")
    search_fields = ("order__id", "pubkey", "identity", "hash", "payout_recipient")
    inlines = [BondStateChangeInline]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Bond._meta.fields if f.name != "preimage"]

    def get_fields(self, request, obj=None):
        return self.get_readonly_fields(request, obj)  # the preimage is never shown

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# Bans live in their own module (registered on import).
from orders import admin_bans  # noqa: E402, F401
