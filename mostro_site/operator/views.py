"""Operator pages, rendered inside the admin's look (its base template and sidebar)."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from mostro_site.config import node_config, rules
from mostro_site.models import NodeSettings, SettingsAuditEntry
from mostro_site.operator import charts, dashboard, refusals
from mostro_site.operator.access import operator_required
from mostro_site.operator.forms import NodeSettingsForm
from mostro_site.operator.lnstatus import lightning_status
from mostro_site.operator.maintenance import MAX_REASON_CHARS, maintenance_set, maintenance_status
from mostro_site.operator.nostr_links import encode_nevent
from mostro_site.operator.reputation import FORM_NAME as ISSUER_FORM
from mostro_site.operator.reputation import handle_issuer_post, reputation_context
from mostro_site.operator.services import node_settings_update
from nostrbridge.node_identity import node_pubkey
from orders.bonds.selectors import bond_figures

SETTINGS_GROUPS = [
    ("Fees", ["fee", "max_routing_fee", "dev_fee_percent"]),
    ("Orders", ["min_payment_amount_sats", "max_order_amount_sats", "expiration_hours", "expiration_seconds"]),
    ("Fiat and prices", ["fiat_mode", "fiat_currencies", "bitcoin_price_api_url"]),
    ("Nostr", ["relays", "protocol_version", "pow_bits"]),
    ("Public profile (kind 0)", ["name", "about", "picture", "website"]),
    ("Anti-abuse bond", list(rules.BOND_FIELDS)),
    ("Limits per trader", ["max_open_orders", "take_cooldown_seconds", "daily_volume_sats"]),
    (
        "Taker requirements (large orders)",
        [
            "counterparty_threshold_sats",
            "counterparty_min_trades",
            "counterparty_min_rating",
            "counterparty_min_age_days",
        ],
    ),
    ("Automatic ban", ["auto_ban_disputes_lost", "auto_ban_window_days"]),
]
RECENT_AUDIT = 25


def _context(request, title: str, **extra) -> dict:
    return {**admin.site.each_context(request), "title": title, **extra}


@operator_required
def settings_view(request):
    issuer_form = None
    if request.method == "POST" and request.POST.get("form") == ISSUER_FORM:
        done, issuer_form = handle_issuer_post(request)
        if done is not None:
            return done
    row = NodeSettings.objects.filter(pk=1).first()
    # Bound only to this form's own POST: a GET must show the saved values (an empty QueryDict binds).
    posted = request.method == "POST" and issuer_form is None
    form = NodeSettingsForm(request.POST if posted else None, row=row)
    if request.method == "POST" and form.is_valid():
        try:
            entries = node_settings_update(user=request.user, values=form.model_values())
        except ValidationError as exc:  # the model's own check (same rules): shown, nothing saved
            form.add_model_errors(exc)
            return _settings_page(request, form, issuer_form)
        if entries:
            changed = ", ".join(entry.field for entry in entries)
            messages.success(request, f"Saved and applied without a restart: {changed}.")
        else:
            messages.info(request, "Nothing changed.")
        return redirect("operator:settings")
    return _settings_page(request, form, issuer_form)


def _settings_page(request, form: NodeSettingsForm, issuer_form):
    groups = [(label, [form[name] for name in names]) for label, names in SETTINGS_GROUPS]
    context = _context(
        request,
        "Node settings",
        form=form,
        groups=groups,
        effective=node_config(fresh=True),
        audit=SettingsAuditEntry.objects.select_related("user")[:RECENT_AUDIT],
        **reputation_context(request, issuer_form),
    )
    return render(request, "operator/settings.html", context)


@operator_required
def dashboard_view(request):
    statuses = dashboard.orders_by_status()
    days = dashboard.volume_by_day()
    paid_count, paid_sats, recent_dev_fees = dashboard.dev_fees_paid()
    author = node_pubkey()
    dev_fee_rows = [
        (payment, encode_nevent(payment.audit_event_id, author_hex=author, kind=dashboard.DEV_FEE_AUDIT_KIND))
        if payment.audit_event_id
        else (payment, "")
        for payment in recent_dev_fees
    ]
    fees = dashboard.fees_by_day()
    opened = dashboard.disputes_by_day()
    recent_refusals, refusals_by_policy = refusals.policy_refusals()
    context = _context(
        request,
        "Node dashboard",
        now=timezone.now(),
        statuses=statuses,
        status_chart=charts.hbar_chart(statuses),
        orders_total=sum(count for _, count in statuses),
        days=days,
        day_chart=charts.vbar_chart(
            [(day.day.strftime("%m-%d"), day.sats) for day in days], unit=" sats", axis_label="sats traded", step=22
        ),
        fee_chart=charts.vbar_chart(
            [(day.strftime("%m-%d"), sats) for day, sats in fees],
            unit=" sats",
            axis_label="fees earned (sats)",
            step=22,
        ),
        dispute_chart=charts.vbar_chart(
            [(day.strftime("%m-%d"), count) for day, count in opened], axis_label="disputes opened", step=22
        ),
        fees_30d=sum(sats for _, sats in fees),
        disputes_30d=sum(count for _, count in opened),
        resolution=dashboard.resolution_times(),
        escrow=dashboard.escrow_now(),
        bonds=bond_figures(),
        payouts=dashboard.payouts(),
        currencies=dashboard.volume_by_currency(),
        fees_earned=dashboard.fees_earned_sats(),
        dev_fee_count=paid_count,
        dev_fee_sats=paid_sats,
        dev_fee_rows=dev_fee_rows,
        disputes=dashboard.open_disputes(),
        recent_refusals=recent_refusals,
        refusals_by_policy=refusals_by_policy,
        relays=dashboard.relay_health(),
        lightning=lightning_status(),
        maintenance=maintenance_status(),
    )
    return render(request, "operator/dashboard.html", context)


@operator_required
@require_POST
def maintenance_view(request):
    """The dashboard's switch: `enabled` = on/off, `reason` (optional, kept on the node)."""
    choice = request.POST.get("enabled")
    reason = request.POST.get("reason") or None
    if choice not in ("on", "off"):
        messages.error(request, "Choose on or off.")
    elif reason is not None and len(reason.strip()) > MAX_REASON_CHARS:
        messages.error(request, f"The reason is limited to {MAX_REASON_CHARS} characters; nothing changed.")
    elif maintenance_set(enabled=choice == "on", reason=reason, user=request.user, via="dashboard"):
        messages.success(request, f"Maintenance mode is {choice}; the info event was republished.")
    else:
        messages.info(request, f"Maintenance mode was already {choice}.")
    return redirect("operator:dashboard")
