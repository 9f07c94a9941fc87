"""The solver console: the dispute queue, the dispute page, and take / settle / refund.

Actions are thin, permission-gated wrappers (`disputes.admin_console`) around the same
services the REST API and the Nostr handlers call; each shows a confirmation page first.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from disputes import admin_console, admin_page
from disputes.admin_filters import AgeFilter, CurrencyFilter, SolverFilter
from disputes.console import RESOLVE_PERMISSION, TAKE_PERMISSION, ConsoleForbidden, grant_as, remove_as, web_actor
from disputes.models import Dispute, SolverLink
from disputes.selectors import dispute_counters
from nostrbridge.node_identity import node_pubkey
from orders import display
from orders.models import SolverCategory


@admin.register(Dispute)
class DisputeAdmin(admin.ModelAdmin):
    list_display = ("short_id", "status_badge", "order_status", "initiator", "fiat", "amount", "solver", "age")
    list_filter = ("status", AgeFilter, CurrencyFilter, SolverFilter)
    search_fields = (
        "id",
        "order__id",
        "initiator_pubkey",
        "solver_pubkey",
        "order__buyer_pubkey",
        "order__seller_pubkey",
        "order__master_buyer_pubkey",
        "order__master_seller_pubkey",
    )
    list_select_related = ("order",)
    actions = ("take_selected", "settle_selected", "refund_selected")
    change_list_template = "admin/disputes/dispute/change_list.html"
    ordering = ("-created_at",)

    # --- permissions: disputes are never edited by hand --------------------------------------
    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Dispute._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_take_permission(self, request) -> bool:
        return request.user.has_perm(TAKE_PERMISSION)

    def has_resolve_permission(self, request) -> bool:
        return request.user.has_perm(RESOLVE_PERMISSION)

    # --- queue columns --------------------------------------------------------------------
    @admin.display(description="dispute", ordering="created_at")
    def short_id(self, obj: Dispute) -> str:
        return display.short(obj.pk)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Dispute):
        # data-dispute-id lets live.js find the row when a push names this dispute.
        return format_html(
            '<span class="dispute-status badge badge-{}" data-dispute-id="{}">{}</span>', obj.status, obj.pk, obj.status
        )

    @admin.display(description="order", ordering="order__status")
    def order_status(self, obj: Dispute) -> str:
        return obj.order.status

    @admin.display(description="fiat")
    def fiat(self, obj: Dispute) -> str:
        return display.fiat(obj.order.fiat_amount, obj.order.fiat_code)

    @admin.display(description="amount", ordering="order__amount_sats")
    def amount(self, obj: Dispute) -> str:
        return display.sats(obj.order.amount_sats)

    @admin.display(description="solver", ordering="solver_pubkey")
    def solver(self, obj: Dispute) -> str:
        if not obj.solver_pubkey:
            return "—"
        return "node" if obj.solver_pubkey == node_pubkey() else display.short(obj.solver_pubkey, 12)

    @admin.display(description="waiting", ordering="created_at")
    def age(self, obj: Dispute) -> str:
        return display.duration((obj.resolved_at or timezone.now()) - obj.created_at)

    def changelist_view(self, request, extra_context=None):
        try:
            me = web_actor(request.user).pubkey
        except ConsoleForbidden:
            me = None
        extra = {"counters": dispute_counters(solver_pubkey=me), "title": "Dispute queue"}
        return super().changelist_view(request, extra_context={**extra, **(extra_context or {})})

    # --- changelist actions (confirmation first, like delete_selected) -------------------------
    @admin.action(permissions=["take"], description="Take the selected disputes")
    def take_selected(self, request, queryset):
        return self._action(request, "take", queryset)

    @admin.action(permissions=["resolve"], description="Settle the selected disputes to the buyer")
    def settle_selected(self, request, queryset):
        return self._action(request, "settle", queryset)

    @admin.action(permissions=["resolve"], description="Refund the sellers of the selected disputes")
    def refund_selected(self, request, queryset):
        return self._action(request, "refund", queryset)

    def _action(self, request, action: str, queryset):
        disputes = list(queryset.select_related("order"))
        if request.POST.get("post") == "yes":
            admin_console.run(request, self, action, disputes)
            return None  # back to the changelist
        return admin_console.confirmation(request, self, action, disputes, selected=True)

    # --- the dispute page and its per-dispute actions ------------------------------------------
    def get_urls(self):
        prefix = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        custom = [
            path(
                f"<path:object_id>/{name}/",
                self.admin_site.admin_view(self.action_view),
                {"action": name},
                name=f"{prefix}_{name}",
            )
            for name in admin_console.ACTIONS
        ]
        view = self.admin_site.admin_view
        chat = [
            path("<uuid:object_id>/chat/", view(admin_page.chat_messages_view), name=f"{prefix}_chat"),
            path("<uuid:object_id>/chat/send/", view(admin_page.chat_send_view), name=f"{prefix}_chat_send"),
            path("<uuid:object_id>/ban/", view(admin_page.ban_party_view), name=f"{prefix}_ban"),
            path(
                "<uuid:object_id>/chat/<int:message_id>/attachment/",
                view(admin_page.chat_attachment_view),
                name=f"{prefix}_chat_attachment",
            ),
        ]
        return chat + custom + super().get_urls()

    def action_view(self, request, object_id, action):
        dispute = self.get_object(request, unquote(object_id))
        if dispute is None:
            raise Http404("no such dispute")
        allowed = self.has_take_permission(request) if action == "take" else self.has_resolve_permission(request)
        if not allowed:
            raise PermissionDenied
        if request.method == "POST":
            admin_console.run(request, self, action, [dispute])
            return HttpResponseRedirect(reverse("admin:disputes_dispute_change", args=[dispute.pk]))
        return admin_console.confirmation(request, self, action, [dispute], selected=False)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The console page (disputes.admin_page): facts, chat, timeline; never a form.
        Its LND lookups run here, outside any transaction."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        dispute = self.get_object(request, unquote(object_id))
        if dispute is None:
            raise Http404("no such dispute")
        return admin_page.render_page(request, self, dispute)


@admin.register(SolverLink)
class SolverLinkAdmin(admin.ModelAdmin):
    list_display = ("user", "pubkey")
    search_fields = ("user__username", "pubkey")
    actions = ("withdraw_solver_role",)

    def save_model(self, request, obj, form, change):
        """Linking a user also registers its key as a solver of the level its groups give."""
        super().save_model(request, obj, form, change)
        category = SolverCategory.READ_WRITE if obj.user.has_perm(RESOLVE_PERMISSION) else SolverCategory.READ
        if obj.user.has_perm(TAKE_PERMISSION) and request.user.has_perm("disputes.manage_solvers"):
            grant_as(request.user, pubkey=obj.pubkey, category=category)

    @admin.action(permissions=["manage_solvers"], description="Withdraw the solver role of the selected keys")
    def withdraw_solver_role(self, request, queryset):
        removed = sum(remove_as(request.user, pubkey=link.pubkey) for link in queryset)
        self.message_user(request, f"{removed} key(s) are no longer solvers.", messages.SUCCESS)

    def has_manage_solvers_permission(self, request) -> bool:
        return request.user.has_perm("disputes.manage_solvers")
