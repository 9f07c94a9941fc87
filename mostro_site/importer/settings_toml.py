"""mostrod's settings.toml → the NodeSettings row (validated by the settings form) plus the
`.env` lines for what this node reads from the environment (docs/OPERATIONS.md §5).

The nsec is never printed: it is reported as found, and written only to a file the
operator names (`--write-env`).
"""

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mostro_site.config import rules
from mostro_site.operator.forms import FIAT_ALL, FIAT_ENV, FIAT_LIST, NodeSettingsForm

# (section, key) -> environment variable of this node.
ENV_KEYS = {
    ("lightning", "lnd_cert_file"): "LND_CERT_FILE",
    ("lightning", "lnd_macaroon_file"): "LND_MACAROON_FILE",
    ("lightning", "invoice_expiration_window"): "LND_INVOICE_EXPIRATION_WINDOW",
    ("lightning", "hold_invoice_cltv_delta"): "LND_HOLD_INVOICE_CLTV_DELTA",
    ("lightning", "hold_invoice_expiration_window"): "LND_HOLD_INVOICE_EXPIRATION_WINDOW",
    ("lightning", "payment_attempts"): "LND_PAYMENT_ATTEMPTS",
    ("lightning", "payment_retries_interval"): "LND_PAYMENT_RETRIES_INTERVAL",
    ("lightning", "max_final_cltv_expiry_delta"): "LND_MAX_FINAL_CLTV_EXPIRY_DELTA",
    ("lightning", "escrow_deadline_margin_blocks"): "LND_ESCROW_DEADLINE_MARGIN_BLOCKS",
    ("mostro", "max_expiration_days"): "MOSTRO_MAX_EXPIRATION_DAYS",
    ("mostro", "user_rates_sent_interval_seconds"): "MOSTRO_USER_RATES_SENT_INTERVAL_SECONDS",
    ("mostro", "publish_relays_interval"): "MOSTRO_PUBLISH_RELAYS_INTERVAL",
    ("mostro", "publish_mostro_info_interval"): "MOSTRO_PUBLISH_MOSTRO_INFO_INTERVAL",
    ("mostro", "max_orders_per_response"): "MOSTRO_MAX_ORDERS_PER_RESPONSE",
    ("mostro", "pow_first_contact"): "MOSTRO_POW_FIRST_CONTACT",
    ("mostro", "exchange_rates_update_interval_seconds"): "MOSTRO_EXCHANGE_RATES_UPDATE_INTERVAL_SECONDS",
    ("expiration", "order_days"): "MOSTRO_EXPIRATION_ORDER_DAYS",
    ("expiration", "rating_days"): "MOSTRO_EXPIRATION_RATING_DAYS",
    ("expiration", "dispute_days"): "MOSTRO_EXPIRATION_DISPUTE_DAYS",
    ("expiration", "fee_audit_days"): "MOSTRO_EXPIRATION_FEE_AUDIT_DAYS",
    ("expiration", "dm_days"): "MOSTRO_EXPIRATION_DM_DAYS",
    # [price] replaces the legacy mostro.* price keys when present (mostrod does the same).
    ("price", "update_interval_seconds"): "MOSTRO_EXCHANGE_RATES_UPDATE_INTERVAL_SECONDS",
    ("price", "max_price_staleness_seconds"): "MOSTRO_MAX_PRICE_STALENESS_SECONDS",
    ("price", "outlier_threshold_pct"): "MOSTRO_PRICE_OUTLIER_THRESHOLD_PCT",
    ("price", "provider_timeout_seconds"): "MOSTRO_PRICE_PROVIDER_TIMEOUT_SECONDS",
}
NSEC_ENV = "MOSTRO_NSEC_PRIVKEY"
TRANSPORT_PROTOCOL = {"nip44": 2, "gift-wrap": 1}


class SettingsFileError(Exception):
    pass


@dataclass
class SettingsImport:
    form: NodeSettingsForm
    env_lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    nsec: str = ""  # never printed
    nsec_source: str = ""


def read_settings(path: Path) -> SettingsImport:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsFileError(f"cannot read {path}: {exc}") from exc
    mostro, nostr = data.get("mostro", {}), data.get("nostr", {})
    result = SettingsImport(form=NodeSettingsForm(data=_form_data(mostro, nostr, data.get("anti_abuse_bond", {}))))
    result.env_lines = _env_lines(data)
    result.notes = _notes(data) + _kind0_url_notes(mostro)
    result.nsec, result.nsec_source = _find_nsec(path, nostr)
    return result


def _value(section: dict, key: str) -> str:
    value = section.get(key)
    return "" if value is None else str(value)


def _form_data(mostro: dict, nostr: dict, bond: dict) -> Any:
    data: dict[str, Any] = {
        "fee": _value(mostro, "fee"),
        "max_routing_fee": _value(mostro, "max_routing_fee"),
        "min_payment_amount_sats": _value(mostro, "min_payment_amount"),
        "max_order_amount_sats": _value(mostro, "max_order_amount"),
        "expiration_hours": _value(mostro, "expiration_hours"),
        "expiration_seconds": _value(mostro, "expiration_seconds"),
        "pow_bits": _value(mostro, "pow"),
        "bitcoin_price_api_url": _value(mostro, "bitcoin_price_api_url"),
        "relays": "\n".join(str(r) for r in nostr.get("relays", [])),
        "name": _value(mostro, "name"),
        "about": _value(mostro, "about"),
        "picture": _value(mostro, "picture") if _is_url(mostro.get("picture")) else "",
        "website": _value(mostro, "website") if _is_url(mostro.get("website")) else "",
    }
    if "dev_fee_percentage" in mostro:
        data["dev_fee_percent"] = str(round(float(mostro["dev_fee_percentage"]) * 100, 6))
    data.update(_bond_form_data(bond))
    transport = mostro.get("transport")
    data["protocol_version"] = str(TRANSPORT_PROTOCOL.get(str(transport), transport or ""))
    fiat = mostro.get("fiat_currencies_accepted")
    if fiat is None:
        data["fiat_mode"] = FIAT_ENV
    elif not fiat:
        data["fiat_mode"] = FIAT_ALL  # mostrod: an empty list accepts every currency
    else:
        data["fiat_mode"] = FIAT_LIST
        data["fiat_currencies"] = [str(code).strip().upper() for code in fiat]
    return _as_query(data)


def _bond_form_data(bond: dict) -> dict[str, str]:
    """[anti_abuse_bond] as the settings form's fields (live settings, docs/OPERATIONS.md)."""
    data = {}
    for key, value in bond.items():
        field = f"bond_{key}"
        if field not in rules.BOND_FIELDS:
            continue  # mostrod ignores unknown keys too
        data[field] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return data


def _as_query(data: dict) -> Any:
    """A QueryDict-like mapping (the form reads lists with getlist)."""
    from django.http import QueryDict

    query = QueryDict(mutable=True)
    for key, value in data.items():
        if isinstance(value, list):
            query.setlist(key, value)
        else:
            query[key] = value
    return query


def _is_url(value) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def _env_lines(data: dict) -> list[str]:
    values = {}
    host = data.get("lightning", {}).get("lnd_grpc_host")
    if host:
        # mostrod takes a URL (https://host:port); the gRPC client here takes host:port.
        values["LND_GRPC_HOST"] = str(host).removeprefix("https://").removeprefix("http://").rstrip("/")
    for (section, key), env_name in ENV_KEYS.items():  # later entries ([price]) win
        value = data.get(section, {}).get(key)
        if value is not None:
            values[env_name] = value
    return [f"{name}={value}" for name, value in values.items()]


def _notes(data: dict) -> list[str]:
    notes = ["database.url is ignored: this node keeps its data where DATABASE_URL points"]
    if data.get("rpc", {}).get("enabled"):
        notes.append("rpc.enabled: the admin gRPC is not provided; use the admin site or the REST admin API")
    if data.get("cashu", {}).get("enabled"):
        notes.append("[cashu] is enabled in mostrod but not supported by this node")
    if data.get("mostro", {}).get("transport") == "gift-wrap":
        notes.append("transport gift-wrap → protocol version 1 (deprecated); consider version 2")
    if "expiration" not in data and "max_expiration_days" in data.get("mostro", {}):
        days = data["mostro"]["max_expiration_days"]
        notes.append(
            f"no [expiration] block: mostrod let events expire after max_expiration_days ({days} d); this node "
            "uses 30/90/90/365/30 d unless MOSTRO_EXPIRATION_*_DAYS are set"
        )
    providers = data.get("price", {}).get("providers")
    if providers:
        notes.append("[price] providers: set MOSTRO_PRICE_PROVIDERS by hand (kind:url, comma-separated)")
    return notes


def _kind0_url_notes(mostro: dict) -> list[str]:
    return [
        f"mostro.{key} {mostro[key]!r} is not an http(s) URL and was skipped (as mostrod does)"
        for key in ("picture", "website")
        if mostro.get(key) and not _is_url(mostro[key])
    ]


def _find_nsec(path: Path, nostr: dict) -> tuple[str, str]:
    """mostrod's precedence: <dir>/.env over the TOML (the process environment is not ours to read)."""
    env_file = path.parent / ".env"
    if env_file.is_file():
        for line in env_file.read_text(encoding="utf-8").splitlines():
            name, _, value = line.partition("=")
            if name.strip() == NSEC_ENV and value.strip():
                return value.strip().strip("\"'"), str(env_file)
    nsec = str(nostr.get("nsec_privkey") or "").strip()
    return (nsec, str(path)) if nsec else ("", "")
