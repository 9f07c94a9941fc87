from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from mostro_site.api.tokens import (
    DEFAULT_LIFETIME_DAYS,
    LIFETIME_DAYS,
    api_token_create,
    api_token_revoke,
    scopes_for,
)
from mostro_site.models import ApiToken, NodeSettings, SettingsAuditEntry, TokenScope
from mostro_site.staff import is_operator


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


class ApiTokenForm(forms.ModelForm):
    lifetime_days = forms.TypedChoiceField(
        label="Expires after",
        coerce=int,
        choices=[(days, f"{days} days") for days in LIFETIME_DAYS],
        initial=DEFAULT_LIFETIME_DAYS,
    )

    class Meta:
        model = ApiToken
        fields = ("name", "scope")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Each user creates and sees its own tokens (the key once, on creation); operators see every
    token's metadata (never a key) and may revoke any of them."""

    form = ApiTokenForm
    list_display = ("name", "user", "scope", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_filter = ("scope", "revoked_at")
    search_fields = ("name", "user__username", "prefix")
    actions = ("revoke_selected",)

    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("user")
        return queryset if is_operator(request.user) else queryset.filter(user=request.user)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "scope", "lifetime_days")
        return ("name", "user", "scope", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.get_fields(request, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            scopes = scopes_for(request.user)
            scope_field = form.base_fields["scope"]
            assert isinstance(scope_field, forms.ChoiceField)
            scope_field.choices = [c for c in TokenScope.choices if c[0] in scopes]
        return form

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a token is revoked, never edited

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the row keeps the audit trail (last use)

    def save_model(self, request, obj, form, change):
        token, key = api_token_create(
            owner=request.user,  # never another user: the key is shown only to whoever creates it
            name=form.cleaned_data["name"],
            scope=form.cleaned_data["scope"],
            lifetime_days=form.cleaned_data["lifetime_days"],
        )
        obj.pk, obj.user, obj.prefix, obj.expires_at = token.pk, token.user, token.prefix, token.expires_at
        self.message_user(
            request,
            f"API token “{token.name}” created. Copy it now, it is shown only once: {key}",
            messages.WARNING,
        )

    @admin.action(permissions=["view"], description="Revoke the selected tokens")
    def revoke_selected(self, request, queryset):
        revoked = sum(api_token_revoke(token=token) for token in self.get_queryset(request).filter(pk__in=queryset))
        self.message_user(request, f"{revoked} token(s) revoked.", messages.SUCCESS)


# --- the job queue (django-q2): shown, never edited --------------------------------------------
# A schedule names any importable function with arguments: adding or editing one through the
# admin would run arbitrary code in the job cluster. Schedules come from `sync_schedules`
# (mostro_site.schedules) only; the task lists are history. Resubmitting is left out with them.
def _read_only_job_admins() -> None:
    from django_q import admin as q_admin
    from django_q.models import Failure, OrmQ, Schedule, Success

    for model, base in (
        (Schedule, q_admin.ScheduleAdmin),
        (Success, q_admin.TaskAdmin),
        (Failure, q_admin.FailAdmin),
        (OrmQ, q_admin.QueueAdmin),
    ):
        if admin.site.is_registered(model):
            admin.site.unregister(model)
            admin.site.register(model, type(base.__name__, (ReadOnlyAdmin, base), {"actions": ()}))


_read_only_job_admins()


# --- the login throttle (django-axes) ---------------------------------------------------------
# Its logs are an audit trail: shown, never edited or deleted. An attempt row may be deleted
# (superusers: that unlocks the username/address now). Its "Clean up expired attempts" action
# reads an attribute axes sets only while a login is checked, so in the admin it answered 500
# (found by the authorization matrix); expired attempts are cleaned at the next login anyway.
def _axes_admins() -> None:
    from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    def no(self, request, obj=None) -> bool:
        return False

    for model, base, extra in (
        (AccessAttempt, AccessAttemptAdmin, {"actions": ("delete_selected",), "has_change_permission": no}),
        (AccessLog, AccessLogAdmin, {"actions": ()}),
        (AccessFailureLog, AccessFailureLogAdmin, {"actions": ()}),
    ):
        if admin.site.is_registered(model):
            admin.site.unregister(model)
            bases = (base,) if model is AccessAttempt else (ReadOnlyAdmin, base)
            admin.site.register(model, type(base.__name__, bases, extra))


_axes_admins()
