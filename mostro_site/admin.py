from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from mostro_site.models import NodeSettings, SettingsAuditEntry

admin.site.site_header = "Mostro node"
admin.site.site_title = "Mostro"
admin.site.site_url = "/operator/"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shown, never written through the admin: not by staff, not by a superuser."""

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, *(f.name for f in self.model._meta.fields)]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(NodeSettings)
class NodeSettingsAdmin(ReadOnlyAdmin):
    """Read-only: the settings are written only by /operator/settings/ (validated and audited)."""

    list_display = ("__str__", "updated_at", "edit_link")
    readonly_fields = ("edit_link",)

    @admin.display(description="edit")
    def edit_link(self, obj=None):
        return format_html('<a href="{}">Edit on the settings page</a>', reverse("operator:settings"))


@admin.register(SettingsAuditEntry)
class SettingsAuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "field", "before", "after")
