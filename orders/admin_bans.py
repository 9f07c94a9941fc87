"""Bans in the admin: the list with every key's history, a new ban (the service's rules), and
lifting (operators). Rows are never edited or deleted; `orders/services/bans.py` writes them."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils import timezone

from orders import display
from orders.models import Ban
from orders.services.bans import BanConflict, active_ban, ban_create, ban_errors, ban_lift


class BanForm(forms.ModelForm):
    """A new ban: the rules are the service's (`ban_errors`), shown as form errors."""

    class Meta:
        model = Ban
        fields = ("pubkey", "reason", "expires_at")
        help_texts = {
            "pubkey": "Identity key (reputation mode) or trade key (full privacy), 64 hex characters.",
            "expires_at": "Empty: until lifted.",
        }

    def clean(self):
        data = super().clean() or {}
        errors = ban_errors(
            pubkey=(data.get("pubkey") or "").strip().lower(),
            reason=data.get("reason") or "",
            expires_at=data.get("expires_at"),
            now=timezone.now(),
        )
        for field, field_errors in errors.items():
            if field not in self.errors:
                self.add_error(field, field_errors)
        pubkey = (data.get("pubkey") or "").strip().lower()
        if "pubkey" not in self.errors and active_ban(pubkey) is not None:
            self.add_error("pubkey", "This key is banned already: lift that ban first to change it.")
        return data


@admin.register(Ban)
class BanAdmin(admin.ModelAdmin):
    """Bans and their history: created here, by the console, the API or the automatic ban;
    lifted with the action (operators); never edited or deleted, so the history stays whole."""

    form = BanForm
    list_display = ("key", "reason", "banned_by", "created", "expires", "state", "lifted_by")
    list_filter = ("lifted_at", "banned_by")
    search_fields = ("pubkey", "reason", "banned_by")
    actions = ("lift_selected",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("pubkey", "reason", "expires_at")
        return ("pubkey", "reason", "banned_by", "created_at", "expires_at", "lifted_at", "lifted_by")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.get_fields(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # lifted with the action, never edited

    def has_lift_permission(self, request) -> bool:
        return request.user.has_perm("orders.change_ban")

    def save_model(self, request, obj, form, change):
        try:
            ban = ban_create(
                pubkey=form.cleaned_data["pubkey"],
                reason=form.cleaned_data["reason"],
                expires_at=form.cleaned_data.get("expires_at"),
                actor=f"admin:{request.user.get_username()}",
            )
        except (ValidationError, BanConflict) as exc:
            raise ValidationError(str(exc)) from exc
        obj.pk, obj.created_at, obj.banned_by = ban.pk, ban.created_at, ban.banned_by

    @admin.action(permissions=["lift"], description="Lift the selected bans")
    def lift_selected(self, request, queryset):
        lifted = 0
        for ban_id in queryset.filter(lifted_at__isnull=True).values_list("pk", flat=True):
            try:
                ban_lift(ban_id=ban_id, actor=f"admin:{request.user.get_username()}")
                lifted += 1
            except BanConflict:
                continue  # lifted meanwhile by someone else
        self.message_user(request, f"{lifted} ban(s) lifted.", messages.SUCCESS)

    @admin.display(description="key", ordering="pubkey")
    def key(self, obj: Ban):
        return display.copyable(obj.pubkey, 16)

    @admin.display(description="banned", ordering="created_at")
    def created(self, obj: Ban) -> str:
        return display.when(obj.created_at)

    @admin.display(description="expires", ordering="expires_at")
    def expires(self, obj: Ban) -> str:
        return display.when(obj.expires_at) if obj.expires_at else "until lifted"

    @admin.display(description="state")
    def state(self, obj: Ban) -> str:
        if obj.lifted_at is not None:
            return f"lifted {display.when(obj.lifted_at)}"
        return "active" if obj.is_active_at(timezone.now()) else "expired"
