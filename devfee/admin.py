from django.contrib import admin

from devfee.models import DevFeePayment


@admin.register(DevFeePayment)
class DevFeePaymentAdmin(admin.ModelAdmin):
    list_display = ("order", "amount_sats", "status", "attempts", "paid_at", "payment_hash")
    list_filter = ("status",)
    search_fields = ("order__id", "payment_hash")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in DevFeePayment._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the ledger moves only through devfee.services

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
