from django.contrib import admin

from disputes.models import Dispute, SolverLink


@admin.register(Dispute)
class DisputeAdmin(admin.ModelAdmin):
    list_display = ("id", "order", "status", "initiator", "solver_pubkey", "created_at")
    list_filter = ("status", "initiator")
    search_fields = ("id", "order__id", "solver_pubkey", "initiator_pubkey")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Dispute._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SolverLink)
class SolverLinkAdmin(admin.ModelAdmin):
    list_display = ("user", "pubkey")
    search_fields = ("user__username", "pubkey")
