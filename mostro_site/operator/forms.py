"""The node settings form: every field blank means "use the environment default".

The form edits the whole `NodeSettings` row; `model_values()` gives the model values, which
the service saves with one audit entry per changed field. The form converts what the operator
typed; the rules are the model's (`rules.node_settings_errors`), shown here as form errors.
"""

from typing import cast

from django import forms
from django.core.exceptions import ValidationError

from mostro_site.config import NodeConfig, env_node_config, rules
from mostro_site.config.currencies import iso4217
from mostro_site.models import NodeSettings

FIAT_ENV, FIAT_ALL, FIAT_LIST = "env", "all", "list"

# Form field -> (model field, NodeConfig field). Converted fields are handled in _model_values.
_PLAIN_FIELDS = {
    "fee": "fee",
    "max_routing_fee": "max_routing_fee",
    "min_payment_amount_sats": "min_payment_amount_sats",
    "max_order_amount_sats": "max_order_amount_sats",
    "expiration_hours": "expiration_hours",
    "expiration_seconds": "expiration_seconds",
    "pow_bits": "pow_bits",
    "bitcoin_price_api_url": "bitcoin_price_api_url",
    "protocol_version": "protocol_version",
    "name": "name",
    "about": "about",
    "picture": "picture",
    "website": "website",
    **{name: name for name in rules.BOND_FIELDS},
    **{field: field for field in rules.POLICY_BOUNDS},
}
AUDITED_FIELDS = (*_PLAIN_FIELDS, "dev_fee_percentage", "fiat_currencies_accepted", "relays")
# Model field -> the form field that shows its error.
_FORM_FIELD = {"dev_fee_percentage": "dev_fee_percent", "fiat_currencies_accepted": "fiat_currencies"}


def _int(label: str, help_text: str) -> forms.IntegerField:
    return forms.IntegerField(label=label, required=False, help_text=help_text)


def _on_off(label: str, help_text: str) -> forms.TypedChoiceField:
    """A switch that may also fall back to the environment (blank)."""
    return forms.TypedChoiceField(
        label=label,
        required=False,
        coerce=lambda value: value == "true",
        empty_value=None,
        choices=[("", "Environment default"), ("true", "On"), ("false", "Off")],
        help_text=help_text,
    )


class NodeSettingsForm(forms.Form):
    fee = forms.FloatField(
        label="Trading fee",
        required=False,
        help_text="Fraction of the amount, split between buyer and seller (0.006 = 0.6 %).",
    )
    max_routing_fee = forms.FloatField(
        label="Max routing fee", required=False, help_text="Fraction of a payout the node may spend on routing."
    )
    min_payment_amount_sats = _int("Minimum order (sats)", "Also the smallest payment.")
    max_order_amount_sats = _int("Maximum order (sats)", "")
    expiration_hours = _int("Pending order lifetime (hours)", "How long an untaken order stays on the book.")
    expiration_seconds = _int("Waiting-state timeout (seconds)", "Time a taker has to pay or send an invoice.")
    pow_bits = _int("PoW bits", "Proof of work: leading zero bits required on every inbound event (0 = off).")
    dev_fee_percent = forms.FloatField(
        label="Development fee (% of the node's fee)",
        required=False,
        help_text="10–100 %. Paid by the operator from its earnings, never by users.",
    )
    fiat_mode = forms.ChoiceField(
        label="Accepted fiat currencies",
        choices=[
            (FIAT_ENV, "Environment default"),
            (FIAT_ALL, "All currencies"),
            (FIAT_LIST, "Only those selected below"),
        ],
        widget=forms.RadioSelect,
        initial=FIAT_ENV,
    )
    fiat_currencies = forms.MultipleChoiceField(
        label="Currencies", required=False, choices=(), widget=forms.CheckboxSelectMultiple
    )
    bitcoin_price_api_url = forms.CharField(
        label="Bitcoin price API URL", required=False, help_text="Yadio-compatible API."
    )
    relays = forms.CharField(
        label="Relays",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One ws:// or wss:// URL per line.",
    )
    protocol_version = forms.TypedChoiceField(
        label="Protocol version",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "Environment default"), ("2", "2 — NIP-44 kind 14"), ("1", "1 — NIP-59 gift wrap (deprecated)")],
    )
    name = forms.CharField(label="Node name (kind 0)", required=False, max_length=100)
    about = forms.CharField(label="About (kind 0)", required=False, widget=forms.Textarea(attrs={"rows": 3}))
    picture = forms.CharField(label="Picture URL (kind 0)", required=False)
    website = forms.CharField(label="Website (kind 0)", required=False)
    # The anti-abuse bond (docs/PROTOCOL.md §Bonds).
    bond_enabled = _on_off("Anti-abuse bond", "A second hold invoice a trader locks before trading.")
    bond_apply_to = forms.TypedChoiceField(
        label="Bond posted by",
        required=False,
        empty_value=None,
        choices=[("", "Environment default"), ("take", "takers"), ("make", "makers"), ("both", "both")],
    )
    bond_amount_pct = forms.FloatField(
        label="Bond (fraction of the amount)", required=False, help_text="bond = max(round(fraction × sats), minimum)."
    )
    bond_base_amount_sats = _int("Minimum bond (sats)", "")
    bond_slash_on_waiting_timeout = _on_off(
        "Slash on waiting timeout", "Slash the bond of the party whose invoice or payment timed out."
    )
    bond_slash_node_share_pct = forms.FloatField(
        label="Node's share of a slashed bond",
        required=False,
        help_text="floor(bond × share) stays with the node; the counterparty gets the rest.",
    )
    bond_payout_invoice_window_seconds = _int("Bond payout: ask for an invoice every (seconds)", "")
    bond_payout_max_retries = _int("Bond payout: payment attempts", "")
    bond_payout_claim_window_days = _int("Bond payout: claim window (days)", "Unclaimed after this: forfeited.")
    # Operator policies (docs/OPERATIONS.md §Policies); 0 turns one off.
    max_open_orders = _int("Max open orders per trader", "Orders on the book at once (lnp2pBot's MAX_PENDING_ORDERS).")
    take_cooldown_seconds = _int("Cooldown between takes (seconds)", "A trader's next take waits this long.")
    daily_volume_sats = _int("Daily volume cap (sats)", "What one trader may make or take in 24 hours.")
    counterparty_threshold_sats = _int(
        "Taker requirements above (sats)", "Orders above this amount only go to takers who qualify (0 = off)."
    )
    counterparty_min_trades = _int("Taker: completed trades", "At least this many successful trades here.")
    counterparty_min_rating = forms.FloatField(
        label="Taker: minimum rating", required=False, help_text="0–5, the rating the node publishes."
    )
    counterparty_min_age_days = _int("Taker: minimum age (days)", "Known to this node for at least this long.")
    auto_ban_disputes_lost = _int(
        "Automatic ban after disputes lost", "Ban a trader who lost this many disputes in the window (0 = off)."
    )
    auto_ban_window_days = _int("Automatic ban window (days)", "")

    def __init__(self, *args, row: NodeSettings | None = None, env: NodeConfig | None = None, **kwargs):
        self.row = row or NodeSettings(pk=1)
        self.env = env or env_node_config()
        kwargs.setdefault("initial", initial_from_row(self.row))
        super().__init__(*args, **kwargs)
        self._choice_field("fiat_currencies").choices = [(code, f"{code} — {name}") for code, name in iso4217()]
        self._describe_defaults()

    def _describe_defaults(self) -> None:
        env = self.env
        defaults = {
            "fee": env.fee,
            "max_routing_fee": env.max_routing_fee,
            "min_payment_amount_sats": env.min_payment_amount_sats,
            "max_order_amount_sats": env.max_order_amount_sats,
            "expiration_hours": env.expiration_hours,
            "expiration_seconds": env.expiration_seconds,
            "pow_bits": env.pow_bits,
            "dev_fee_percent": f"{env.dev_fee_percentage * 100:g}",
            "bitcoin_price_api_url": env.bitcoin_price_api_url,
            "relays": "\n".join(env.relays),
            "name": env.name,
            "bond_amount_pct": env.bond_amount_pct,
            "bond_base_amount_sats": env.bond_base_amount_sats,
            "bond_slash_node_share_pct": env.bond_slash_node_share_pct,
            "bond_payout_invoice_window_seconds": env.bond_payout_invoice_window_seconds,
            "bond_payout_max_retries": env.bond_payout_max_retries,
            "bond_payout_claim_window_days": env.bond_payout_claim_window_days,
            **{field: getattr(env, field) for field in rules.POLICY_BOUNDS},
        }
        for name, value in defaults.items():
            self.fields[name].widget.attrs["placeholder"] = str(value)
        fiat = ", ".join(env.fiat_currencies_accepted) or "all"
        fiat_mode, protocol = self._choice_field("fiat_mode"), self._choice_field("protocol_version")
        # A ChoiceField's choices read back as a list (django-stubs types the setter's input).
        fiat_mode.choices = [(FIAT_ENV, f"Environment default ({fiat})"), *cast(list, fiat_mode.choices)[1:]]
        protocol.choices = [("", f"Environment default ({env.protocol_version})"), *cast(list, protocol.choices)[1:]]
        switches = {
            "bond_enabled": "on" if env.bond_enabled else "off",
            "bond_slash_on_waiting_timeout": "on" if env.bond_slash_on_waiting_timeout else "off",
            "bond_apply_to": env.bond_apply_to,
        }
        for name, shown in switches.items():
            field = self._choice_field(name)
            field.choices = [("", f"Environment default ({shown})"), *cast(list, field.choices)[1:]]

    def _choice_field(self, name: str) -> forms.ChoiceField:
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField), name
        return field

    # --- conversions (the rules themselves are the model's: rules.node_settings_errors) ----
    def clean_dev_fee_percent(self):
        value = self.cleaned_data.get("dev_fee_percent")
        return None if value is None else round(value / 100, 6)

    def clean_relays(self):
        relays = rules.split_list(self.cleaned_data.get("relays", ""))
        return ",".join(relays) if relays else None

    def _text(self, name: str) -> str | None:
        return (self.cleaned_data.get(name) or "").strip() or None

    def clean_bitcoin_price_api_url(self):
        return self._text("bitcoin_price_api_url")

    def clean_picture(self):
        return self._text("picture")

    def clean_website(self):
        return self._text("website")

    def clean_name(self):
        return self._text("name")

    def clean_about(self):
        return self._text("about")

    # --- the row's rules, then what only the form knows -----------------------------------
    def clean(self):
        data = super().clean() or {}
        self._add_row_errors(rules.node_settings_errors(self.model_values(), env=self.env))
        if data.get("fiat_mode") == FIAT_LIST and not data.get("fiat_currencies") and "fiat_currencies" in data:
            self.add_error("fiat_currencies", "Select at least one currency, or choose “All currencies”.")
        return data

    def add_model_errors(self, exc: ValidationError) -> None:
        """Show a ValidationError from `NodeSettings.full_clean` on the matching form fields."""
        self._add_row_errors(exc.message_dict)

    def _add_row_errors(self, errors: dict[str, list[str]]) -> None:
        for model_field, messages in errors.items():
            form_field: str | None = _FORM_FIELD.get(model_field, model_field)
            if form_field not in self.fields:
                form_field = None  # a non-field error (the whole row)
            if form_field is None or form_field not in self.errors:
                self.add_error(form_field, messages)

    # --- results ------------------------------------------------------------------------
    def model_values(self) -> dict[str, object]:
        """The NodeSettings values this form describes (None = environment default)."""
        data = self.cleaned_data
        values = {model_field: data.get(form_field) for form_field, model_field in _PLAIN_FIELDS.items()}
        values["dev_fee_percentage"] = data.get("dev_fee_percent")
        values["relays"] = data.get("relays")
        mode = data.get("fiat_mode")
        if mode == FIAT_ALL:
            values["fiat_currencies_accepted"] = ""
        elif mode == FIAT_LIST:
            values["fiat_currencies_accepted"] = ",".join(data.get("fiat_currencies") or [])
        else:
            values["fiat_currencies_accepted"] = None
        return values


def initial_from_row(row: NodeSettings) -> dict[str, object]:
    initial = {form_field: getattr(row, model_field) for form_field, model_field in _PLAIN_FIELDS.items()}
    for switch in ("bond_enabled", "bond_slash_on_waiting_timeout"):
        value = getattr(row, switch)
        initial[switch] = "" if value is None else ("true" if value else "false")
    if row.dev_fee_percentage is not None:
        initial["dev_fee_percent"] = round(row.dev_fee_percentage * 100, 4)
    initial["relays"] = "\n".join(rules.split_list(row.relays or ""))
    if row.fiat_currencies_accepted is None:
        initial["fiat_mode"] = FIAT_ENV
    elif row.fiat_currencies_accepted == "":
        initial["fiat_mode"] = FIAT_ALL
    else:
        initial["fiat_mode"] = FIAT_LIST
        initial["fiat_currencies"] = rules.split_list(row.fiat_currencies_accepted)
    return initial
