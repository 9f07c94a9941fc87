from django.contrib import admin

from mostro_site.models import NodeSettings, SettingsAuditEntry


@admin.register(NodeSettings)
class NodeSettingsAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return not NodeSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SettingsAuditEntry)
class SettingsAuditEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "field", "before", "after")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in SettingsAuditEntry._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
