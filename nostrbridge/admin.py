from django.contrib import admin
from django.utils.html import format_html

from nostrbridge.models import AddressableClock, InboundEvent, OutboundDelivery, OutboundMessage, RelayHealth


def _short(value: str, length: int = 12):
    """A long hex id, shortened to fit a 1280-px list; the full value on hover."""
    if not value:
        return "—"
    return format_html('<code title="{}">{}</code>', value, value if len(value) <= length else value[:length] + "…")


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
    list_display = ("event", "kind", "action", "status", "attempts", "seen_count", "received_at", "drop_reason")
    list_filter = ("status", "kind", "action")
    search_fields = ("event_id", "pubkey")
    actions = ["requeue"]

    @admin.display(description="event id", ordering="event_id")
    def event(self, obj):
        return _short(obj.event_id)

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
    list_display = ("event", "kind", "action", "recipient", "status", "attempts", "created_at", "sent_at")
    list_filter = ("status", "kind", "action")
    search_fields = ("event_id", "recipient_pubkey", "order_id")
    inlines = [OutboundDeliveryInline]

    @admin.display(description="event id", ordering="event_id")
    def event(self, obj):
        return _short(obj.event_id)

    @admin.display(description="to", ordering="recipient_pubkey")
    def recipient(self, obj):
        return _short(obj.recipient_pubkey)


@admin.register(RelayHealth)
class RelayHealthAdmin(ReadOnlyAdmin):
    list_display = ("relay_url", "connected", "last_event_at", "ok_count", "refused_count", "reconnects", "last_error")


@admin.register(AddressableClock)
class AddressableClockAdmin(ReadOnlyAdmin):
    list_display = ("kind", "d_tag", "last_created_at")
