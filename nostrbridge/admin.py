from django.contrib import admin

from nostrbridge.models import AddressableClock, InboundEvent, OutboundDelivery, OutboundMessage, RelayHealth


class ReadOnlyAdmin(admin.ModelAdmin):
    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a POST to the change form would still save the row and log a change

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "kind", "action", "status", "attempts", "seen_count", "received_at", "drop_reason")
    list_filter = ("status", "kind", "action")
    search_fields = ("event_id", "pubkey")
    actions = ["requeue"]

    @admin.action(description="Requeue parked events for another attempt")
    def requeue(self, request, queryset):
        count = queryset.filter(status="parked").update(status="received", attempts=0, locked_until=None)
        self.message_user(request, f"{count} event(s) requeued.")


class OutboundDeliveryInline(admin.TabularInline):
    model = OutboundDelivery
    extra = 0
    can_delete = False
    readonly_fields = ("relay_url", "accepted", "relay_message", "attempts", "updated_at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "kind", "action", "recipient_pubkey", "status", "attempts", "created_at", "sent_at")
    list_filter = ("status", "kind", "action")
    search_fields = ("event_id", "recipient_pubkey", "order_id")
    inlines = [OutboundDeliveryInline]


@admin.register(RelayHealth)
class RelayHealthAdmin(ReadOnlyAdmin):
    list_display = ("relay_url", "connected", "last_event_at", "ok_count", "refused_count", "reconnects", "last_error")


@admin.register(AddressableClock)
class AddressableClockAdmin(ReadOnlyAdmin):
    list_display = ("kind", "d_tag", "last_created_at")
