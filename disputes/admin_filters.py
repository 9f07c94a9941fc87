"""Dispute queue filters: age buckets, currency and solver (status is a plain field filter)."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from disputes.console import ConsoleForbidden, web_actor
from disputes.models import Dispute
from disputes.selectors import dispute_filter


class AgeFilter(admin.SimpleListFilter):
    title = _("age")
    parameter_name = "age"

    def lookups(self, request, model_admin):
        return [("1h", "under 1 hour"), ("1d", "1 hour – 1 day"), ("7d", "1 – 7 days"), ("older", "over 7 days")]

    def queryset(self, request, queryset):
        return dispute_filter(queryset, age=self.value()) if self.value() else queryset


class CurrencyFilter(admin.SimpleListFilter):
    title = _("currency")
    parameter_name = "currency"

    def lookups(self, request, model_admin):
        codes = Dispute.objects.values_list("order__fiat_code", flat=True).distinct().order_by("order__fiat_code")
        return [(code, code) for code in codes]

    def queryset(self, request, queryset):
        return dispute_filter(queryset, fiat_code=self.value()) if self.value() else queryset


class SolverFilter(admin.SimpleListFilter):
    title = _("solver")
    parameter_name = "solver"

    def lookups(self, request, model_admin):
        keys = Dispute.objects.exclude(solver_pubkey=None).values_list("solver_pubkey", flat=True).distinct()
        solvers = sorted(key for key in keys if key)
        return [("none", "unassigned"), ("me", "assigned to me")] + [(key, f"{key[:12]}…") for key in solvers]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value == "none":
            return dispute_filter(queryset, unassigned=True)
        if value == "me":
            try:
                value = web_actor(request.user).pubkey
            except ConsoleForbidden:
                return queryset.none()
        return dispute_filter(queryset, solver_pubkey=value)
