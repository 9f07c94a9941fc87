"""The effective node configuration: environment defaults overridden by the NodeSettings row.

Read per use (one cheap query, cached for a second) so an operator's change in the web form
applies to the next order without restarting any process.
"""

import functools
import logging
import threading
import time
from dataclasses import dataclass, fields

from django.conf import settings
from django.db import DatabaseError, connection

from mostro_site.config import rules

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeConfig:
    fee: float
    max_routing_fee: float
    max_order_amount_sats: int
    min_payment_amount_sats: int
    expiration_hours: int
    max_expiration_days: int
    expiration_seconds: int
    pow_bits: int
    pow_first_contact_bits: int
    dev_fee_percentage: float
    fiat_currencies_accepted: tuple[str, ...]
    max_orders_per_response: int
    bitcoin_price_api_url: str
    max_price_staleness_seconds: int
    relays: tuple[str, ...]
    protocol_version: int
    name: str
    about: str
    picture: str
    website: str
    dev_fee_lightning_address: str
    hold_invoice_cltv_delta: int
    hold_invoice_expiration_window: int
    invoice_expiration_window: int
    max_final_cltv_expiry_delta: int
    escrow_deadline_margin_blocks: int
    payment_attempts: int
    payment_retries_interval: int
    order_days: int
    rating_days: int
    dispute_days: int
    fee_audit_days: int
    dm_days: int
    # The anti-abuse bond (docs/PROTOCOL.md §Bonds).
    bond_enabled: bool = False
    bond_apply_to: str = "take"
    bond_amount_pct: float = 0.01
    bond_base_amount_sats: int = 1000
    bond_slash_on_waiting_timeout: bool = False
    bond_slash_node_share_pct: float = 0.5
    bond_payout_invoice_window_seconds: int = 300
    bond_payout_max_retries: int = 5
    bond_payout_claim_window_days: int = 15

    def bonds_apply_to(self, role: str) -> bool:
        """Does a `role` ("make" or "take") post a bond under the current settings?"""
        return self.bond_enabled and self.bond_apply_to in (role, "both")

    # Operator policies (docs/OPERATIONS.md §Policies): 0 = off.
    max_open_orders: int = 0
    take_cooldown_seconds: int = 0
    daily_volume_sats: int = 0
    counterparty_threshold_sats: int = 0
    counterparty_min_trades: int = 0
    counterparty_min_rating: float = 0.0
    counterparty_min_age_days: int = 0
    auto_ban_disputes_lost: int = 0
    auto_ban_window_days: int = 30


def env_node_config() -> NodeConfig:
    s = settings
    pow_first = s.MOSTRO_POW_FIRST_CONTACT if s.MOSTRO_POW_FIRST_CONTACT >= 0 else s.MOSTRO_POW
    return NodeConfig(
        fee=s.MOSTRO_FEE,
        max_routing_fee=s.MOSTRO_MAX_ROUTING_FEE,
        max_order_amount_sats=s.MOSTRO_MAX_ORDER_AMOUNT,
        min_payment_amount_sats=s.MOSTRO_MIN_PAYMENT_AMOUNT,
        expiration_hours=s.MOSTRO_EXPIRATION_HOURS,
        max_expiration_days=s.MOSTRO_MAX_EXPIRATION_DAYS,
        expiration_seconds=s.MOSTRO_EXPIRATION_SECONDS,
        pow_bits=s.MOSTRO_POW,
        pow_first_contact_bits=pow_first,
        dev_fee_percentage=s.MOSTRO_DEV_FEE_PERCENTAGE,
        fiat_currencies_accepted=tuple(c.strip() for c in s.MOSTRO_FIAT_CURRENCIES_ACCEPTED if c.strip()),
        max_orders_per_response=s.MOSTRO_MAX_ORDERS_PER_RESPONSE,
        bitcoin_price_api_url=s.MOSTRO_BITCOIN_PRICE_API_URL,
        max_price_staleness_seconds=s.MOSTRO_MAX_PRICE_STALENESS_SECONDS,
        relays=tuple(r.strip() for r in s.MOSTRO_RELAYS if r.strip()),
        protocol_version=s.MOSTRO_PROTOCOL_VERSION,
        name=s.MOSTRO_NAME,
        about=s.MOSTRO_ABOUT,
        picture=s.MOSTRO_PICTURE,
        website=s.MOSTRO_WEBSITE,
        dev_fee_lightning_address=s.MOSTRO_DEV_FEE_LIGHTNING_ADDRESS,
        hold_invoice_cltv_delta=s.LND_HOLD_INVOICE_CLTV_DELTA,
        hold_invoice_expiration_window=s.LND_HOLD_INVOICE_EXPIRATION_WINDOW,
        invoice_expiration_window=s.LND_INVOICE_EXPIRATION_WINDOW,
        max_final_cltv_expiry_delta=s.LND_MAX_FINAL_CLTV_EXPIRY_DELTA,
        escrow_deadline_margin_blocks=s.LND_ESCROW_DEADLINE_MARGIN_BLOCKS,
        payment_attempts=s.LND_PAYMENT_ATTEMPTS,
        payment_retries_interval=s.LND_PAYMENT_RETRIES_INTERVAL,
        order_days=s.MOSTRO_EXPIRATION_ORDER_DAYS,
        rating_days=s.MOSTRO_EXPIRATION_RATING_DAYS,
        dispute_days=s.MOSTRO_EXPIRATION_DISPUTE_DAYS,
        fee_audit_days=s.MOSTRO_EXPIRATION_FEE_AUDIT_DAYS,
        dm_days=s.MOSTRO_EXPIRATION_DM_DAYS,
        bond_enabled=s.MOSTRO_ANTI_ABUSE_BOND_ENABLED,
        bond_apply_to=s.MOSTRO_ANTI_ABUSE_BOND_APPLY_TO,
        bond_amount_pct=s.MOSTRO_ANTI_ABUSE_BOND_AMOUNT_PCT,
        bond_base_amount_sats=s.MOSTRO_ANTI_ABUSE_BOND_BASE_AMOUNT_SATS,
        bond_slash_on_waiting_timeout=s.MOSTRO_ANTI_ABUSE_BOND_SLASH_ON_WAITING_TIMEOUT,
        bond_slash_node_share_pct=s.MOSTRO_ANTI_ABUSE_BOND_SLASH_NODE_SHARE_PCT,
        bond_payout_invoice_window_seconds=s.MOSTRO_ANTI_ABUSE_BOND_PAYOUT_INVOICE_WINDOW_SECONDS,
        bond_payout_max_retries=s.MOSTRO_ANTI_ABUSE_BOND_PAYOUT_MAX_RETRIES,
        bond_payout_claim_window_days=s.MOSTRO_ANTI_ABUSE_BOND_PAYOUT_CLAIM_WINDOW_DAYS,
        max_open_orders=s.MOSTRO_MAX_OPEN_ORDERS,
        take_cooldown_seconds=s.MOSTRO_TAKE_COOLDOWN_SECONDS,
        daily_volume_sats=s.MOSTRO_DAILY_VOLUME_SATS,
        counterparty_threshold_sats=s.MOSTRO_COUNTERPARTY_THRESHOLD_SATS,
        counterparty_min_trades=s.MOSTRO_COUNTERPARTY_MIN_TRADES,
        counterparty_min_rating=s.MOSTRO_COUNTERPARTY_MIN_RATING,
        counterparty_min_age_days=s.MOSTRO_COUNTERPARTY_MIN_AGE_DAYS,
        auto_ban_disputes_lost=s.MOSTRO_AUTO_BAN_DISPUTES_LOST,
        auto_ban_window_days=s.MOSTRO_AUTO_BAN_WINDOW_DAYS,
    )


# NodeSettings field -> NodeConfig field, for the overridable subset.
_OVERRIDES = {
    "fee": "fee",
    "max_routing_fee": "max_routing_fee",
    "max_order_amount_sats": "max_order_amount_sats",
    "min_payment_amount_sats": "min_payment_amount_sats",
    "expiration_hours": "expiration_hours",
    "expiration_seconds": "expiration_seconds",
    "pow_bits": "pow_bits",
    "dev_fee_percentage": "dev_fee_percentage",
    "bitcoin_price_api_url": "bitcoin_price_api_url",
    "protocol_version": "protocol_version",
    "name": "name",
    "about": "about",
    "picture": "picture",
    "website": "website",
    **{name: name for name in rules.BOND_FIELDS},
    **{field: field for field in rules.POLICY_BOUNDS},
}

_CACHE_SECONDS = 1.0
_cache: tuple[float, NodeConfig] | None = None
# One thread reloads an expired cache; the others keep the value it replaces meanwhile. Every
# thread that found it expired used to reload it at once (the bridge's database thread and its
# lane's four: most of the reload's 1 % of the node's CPU, docs/PERFORMANCE.md).
_reloading = threading.Lock()


def node_config(*, fresh: bool = False) -> NodeConfig:
    cached = _cache
    if not fresh and cached is not None and time.monotonic() - cached[0] < _CACHE_SECONDS:
        return cached[1]
    if fresh or cached is None:
        return _reload()
    if not _reloading.acquire(blocking=False):
        return cached[1]  # at most a second and one reload old, as a read just before it would be
    try:
        return _reload()
    finally:
        _reloading.release()


def _reload() -> NodeConfig:
    global _cache
    now = time.monotonic()
    config = _apply_overrides(env_node_config())
    _cache = (now, config)
    return config


def clear_node_config_cache() -> None:
    global _cache
    _cache = None


_warned: set[tuple[str, str]] = set()


def _usable(field: str, stored: str, parse) -> tuple[str, ...]:
    usable = parse(stored)
    if len(usable) != len(rules.split_list(stored)) and (field, stored) not in _warned:
        _warned.add((field, stored))  # once per stored value, not once per read
        logger.warning("node settings %s %r: unusable entries ignored (using %s)", field, stored, usable or "env")
    return usable


@functools.cache
def _row_query(vendor: str) -> tuple[str, tuple]:
    """The row's SELECT, compiled by the ORM once per process and database vendor: compiling the
    same 36-column query at every reload (each process reloads every second: the job cluster's
    workers, pusher and monitor each) cost 0.6 ms against 0.25 ms for the raw query, which keeps
    the ORM's value conversions (docs/PERFORMANCE.md, eleventh round)."""
    from mostro_site.models import NodeSettings

    return NodeSettings.objects.filter(pk=1).query.sql_with_params()


def _apply_overrides(base: NodeConfig) -> NodeConfig:
    from mostro_site.models import NodeSettings

    try:
        sql, params = _row_query(connection.vendor)
        row = next(iter(NodeSettings.objects.raw(sql, params)), None)
    except DatabaseError:
        # Before migrate (e.g. `manage.py check` on a fresh machine) only the env applies.
        return base
    if row is None:
        return base
    values = {f.name: getattr(base, f.name) for f in fields(base)}
    for row_field, config_field in _OVERRIDES.items():
        value = getattr(row, row_field)
        if value is not None:
            values[config_field] = value
    # Defence in depth: the row is validated on every write and CHECKed by the database, but a
    # list that is not understood must never reach a reader (a relay pool, the relay-list job,
    # the info event). Unusable entries are dropped; with none left, the environment applies.
    if row.fiat_currencies_accepted == "":
        values["fiat_currencies_accepted"] = ()  # every currency
    elif row.fiat_currencies_accepted is not None:
        codes = _usable("fiat_currencies_accepted", row.fiat_currencies_accepted, rules.valid_fiat_codes)
        values["fiat_currencies_accepted"] = codes or base.fiat_currencies_accepted
    if row.relays:
        values["relays"] = _usable("relays", row.relays, rules.valid_relays) or base.relays
    if row.pow_bits is not None and settings.MOSTRO_POW_FIRST_CONTACT < 0:
        values["pow_first_contact_bits"] = row.pow_bits
    return NodeConfig(**values)
