"""Builders for the events the node publishes (docs/PROTOCOL.md §Events), with the exact tag order.

Tag order does not matter to relays or clients, but it determines the event id, and the
vectors in `mostro.vectors.json` → `published_events` pin it. Every builder takes `now`
(for NIP-40 expirations) separately from `created_at` (defaults to `now`; addressable
order and dispute revisions get theirs from `MonotonicClock`).
"""

from __future__ import annotations

import threading
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import SupportsFloat

from nostrbridge.protocol.enums import DisputeStatus, Kind, Status
from nostrbridge.protocol.jsonwire import dumps_compact, rust_display_float, serde_float
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.nip01 import Event, sign_event
from nostrbridge.protocol.structs import day_start
from nostrbridge.protocol.wirefields import write_str

ORDER_KIND = 38383
RATING_KIND = 38384
INFO_KIND = 38385
DISPUTE_KIND = 38386
DEV_FEE_KIND = 8383
RATES_KIND = 30078
RELAY_LIST_KIND = 10002
METADATA_KIND = 0
SECONDS_PER_DAY = 86_400
RATES_D_TAG = "mostro-rates"
MAX_RATES_EXPIRATION_SECONDS = 3_600

Tags = list[list[str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class PublisherSettings:
    """Node-wide inputs of the builders; retention defaults are the `[expiration]` defaults."""

    node_pubkey: str
    instance_name: str = ""
    relays: tuple[str, ...] = ()
    order_days: int = 30
    rating_days: int = 90
    dispute_days: int = 90
    fee_audit_days: int = 365

    def y_tag(self) -> list[str]:
        """`["y","mostro"]`, plus the trimmed instance name when it is not empty (docs/PROTOCOL.md §Events)."""
        name = self.instance_name.strip()
        return ["y", "mostro", name] if name else ["y", "mostro"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderSnapshot:
    """The stored order fields a 38383 revision is built from (amounts as stored)."""

    id: uuid.UUID | str
    kind: Kind
    status: Status
    fiat_code: str
    amount_sats: int
    fiat_amount: int
    min_amount: int | None = None
    max_amount: int | None = None
    payment_method: str
    premium: int
    expires_at: int
    # The order's creation time, the same in every revision (mostrod #971/#1000, after 0.18.5);
    # None leaves the tag out, as 0.18.5 published it.
    published_at: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MakerReputation:
    """The maker's aggregates for the `rating` tag; the default is the full-privacy maker.

    `since`: the UTC day the maker's record starts (docs/PROTOCOL.md §Reputation), None when
    there is no record (full privacy): then the key is left out, as before it existed.
    """

    days: int = 0
    since: int | None = None
    total_rating: float = 0.0
    total_reviews: int = 0


# Internal status → published `s` bucket (docs/PROTOCOL.md §Order-event); statuses absent here are never published.
_ALWAYS_PUBLISHED = {
    Status.PENDING: "pending",
    Status.WAITING_TAKER_BOND: "pending",
    Status.SUCCESS: "success",
    Status.COMPLETED_BY_ADMIN: "completed-by-admin",
    Status.CANCELED: "canceled",
    Status.CANCELED_BY_ADMIN: "canceled",
    Status.COOPERATIVELY_CANCELED: "canceled",
    Status.EXPIRED: "canceled",
}


def order_status_bucket(status: Status, kind: Kind) -> str | None:
    """The `s` value for an order status, or None when that status is not published."""
    if status == Status.WAITING_BUYER_INVOICE:
        return "in-progress" if kind == Kind.SELL else None
    if status == Status.WAITING_PAYMENT:
        return "in-progress" if kind == Kind.BUY else None
    return _ALWAYS_PUBLISHED.get(status)


def rating_tag_value(reputation: MakerReputation) -> str:
    """`["rating",{"days":…,"since":…,"total_rating":…,"total_reviews":…}]` with sorted keys
    (docs/PROTOCOL.md §Order-event): `since` between `days` and `total_rating`, left out without a
    record."""
    since = "" if reputation.since is None else f'"since":{day_start(int(reputation.since))},'
    return (
        f'["rating",{{"days":{int(reputation.days)},{since}"total_rating":{serde_float(float(reputation.total_rating))},'
        f'"total_reviews":{int(reputation.total_reviews)}}}]'
    )


def order_event_tags(
    order: OrderSnapshot,
    *,
    settings: PublisherSettings,
    now: int,
    network: str | None,
    reputation: MakerReputation | None = None,
) -> Tags | None:
    """Tags of a 38383 revision in order (docs/PROTOCOL.md §Order-event), or None for an unpublished status."""
    bucket = order_status_bucket(order.status, order.kind)
    if bucket is None:
        return None
    is_pending = bucket == "pending"
    order_id = str(order.id)
    has_range = order.min_amount is not None and order.max_amount is not None
    if is_pending and has_range:
        fiat = ["fa", str(order.min_amount), str(order.max_amount)]
    else:
        fiat = ["fa", str(order.fiat_amount)]
    tags: Tags = [
        ["d", order_id],
        ["k", str(order.kind)],
        ["f", order.fiat_code],
        ["s", bucket],
        ["amt", str(order.amount_sats)],
        fiat,
        ["pm", *(part for part in order.payment_method.split(",") if part)],  # split, never trimmed
        ["premium", str(order.premium)],
    ]
    if is_pending:
        relays = ",".join(settings.relays)
        tags.append(["rating", rating_tag_value(reputation or MakerReputation())])
        tags.append(["source", f"mostro:{order_id}?relays={relays}&mostro={settings.node_pubkey}"])
    if is_pending and order.expires_at > 0:
        expiration = order.expires_at
    else:
        expiration = now + settings.order_days * SECONDS_PER_DAY
    tags += [
        ["network", network or "unknown"],
        ["layer", "lightning"],
        ["expires_at", str(order.expires_at)],
        *([["published_at", str(order.published_at)]] if order.published_at is not None else []),
        ["expiration", str(expiration)],
        settings.y_tag(),
        ["z", "order"],
    ]
    return tags


def build_order_event(
    order: OrderSnapshot,
    keys: Keys,
    *,
    settings: PublisherSettings,
    now: int,
    network: str | None,
    reputation: MakerReputation | None = None,
    created_at: int | None = None,
    aux_rand: bytes | None = None,
) -> Event | None:
    """Signed 38383 revision, or None when the order's status is not published (docs/PROTOCOL.md §Order-event)."""
    tags = order_event_tags(order, settings=settings, now=now, network=network, reputation=reputation)
    if tags is None:
        return None
    return _sign(keys, ORDER_KIND, tags, now if created_at is None else created_at, aux_rand)


def build_rating_event(
    keys: Keys,
    *,
    d_pubkey: str,
    total_reviews: int,
    total_rating: float,
    last_rating: int,
    max_rate: int,
    min_rate: int,
    days: int,
    settings: PublisherSettings,
    now: int,
    since: int | None = None,
    created_at: int | None = None,
    aux_rand: bytes | None = None,
) -> Event:
    """Kind 38384 (docs/PROTOCOL.md §Rating-event). `d_pubkey`: the rated user's trade key here
    (§Differences). `since` after `min_rate`, before `z`; `days` last."""
    tags = [
        ["d", d_pubkey],
        ["expiration", str(now + settings.rating_days * SECONDS_PER_DAY)],
        ["total_reviews", str(total_reviews)],
        ["total_rating", rust_display_float(float(total_rating))],
        ["last_rating", str(last_rating)],
        ["max_rate", str(max_rate)],
        ["min_rate", str(min_rate)],
    ]
    if since is not None:
        tags.append(["since", str(day_start(int(since)))])
    tags += [["z", "rating"], ["days", str(days)]]
    return _sign(keys, RATING_KIND, tags, now if created_at is None else created_at, aux_rand)


def build_dispute_event(
    keys: Keys,
    *,
    dispute_id: uuid.UUID | str,
    status: DisputeStatus,
    initiator: str,
    dispute_created_at: int,
    settings: PublisherSettings,
    now: int,
    created_at: int | None = None,
    aux_rand: bytes | None = None,
) -> Event:
    """Kind 38386 (docs/PROTOCOL.md §Dispute-event); `initiator` is `buyer`, `seller` or `unknown`."""
    tags = [
        ["d", str(dispute_id)],
        ["expiration", str(now + settings.dispute_days * SECONDS_PER_DAY)],
        ["s", str(status)],
        ["initiator", initiator],
        # mostrod #1001 renamed the dispute's creation time from `created_at` (docs/PROTOCOL.md §Dispute-event).
        ["published_at", str(dispute_created_at)],
        settings.y_tag(),
        ["z", "dispute"],
    ]
    return _sign(keys, DISPUTE_KIND, tags, now if created_at is None else created_at, aux_rand)


def build_dev_fee_event(
    keys: Keys,
    *,
    order_id: uuid.UUID | str,
    amount_sats: int,
    payment_hash: str,
    destination: str,
    network: str,
    settings: PublisherSettings,
    now: int,
    aux_rand: bytes | None = None,
) -> Event:
    """Kind 8383 dev-fee audit (docs/PROTOCOL.md §Dev-fee-event): regular event, no `d`, `expiration` last."""
    tags = [
        ["order-id", str(order_id)],
        ["amount", str(amount_sats)],
        ["hash", payment_hash],
        ["destination", destination],
        ["network", network],
        settings.y_tag(),
        ["z", "dev-fee-payment"],
        ["expiration", str(now + settings.fee_audit_days * SECONDS_PER_DAY)],
    ]
    return _sign(keys, DEV_FEE_KIND, tags, now, aux_rand)


def build_rates_event(
    keys: Keys,
    *,
    rates: Mapping[str, SupportsFloat],
    sources: list[str],
    update_interval_seconds: int,
    now: int,
    aux_rand: bytes | None = None,
) -> Event:
    """Kind 30078 exchange rates (docs/PROTOCOL.md §Rates-event): content `{"BTC":{"<CODE>":price,…}}`."""
    expiration = now + min(2 * update_interval_seconds, MAX_RATES_EXPIRATION_SECONDS)
    tags = [
        ["d", RATES_D_TAG],
        ["published_at", str(now)],
        ["source", ",".join(sorted(sources))],
        ["expiration", str(expiration)],
    ]
    prices = ",".join(f"{write_str(code)}:{serde_float(float(price))}" for code, price in rates.items())
    return sign_event(
        keys, kind=RATES_KIND, content=f'{{"BTC":{{{prices}}}}}', tags=tags, created_at=now, aux_rand=aux_rand
    )


def build_relay_list_event(keys: Keys, *, relays: list[str], now: int, aux_rand: bytes | None = None) -> Event:
    """Kind 10002 (docs/PROTOCOL.md §Relay-list): one `["r", url]` per connected relay, no read/write marker."""
    return _sign(keys, RELAY_LIST_KIND, [["r", url] for url in relays], now, aux_rand)


def build_metadata_event(
    keys: Keys,
    *,
    now: int,
    name: str | None = None,
    about: str | None = None,
    picture: str | None = None,
    website: str | None = None,
    aux_rand: bytes | None = None,
) -> Event | None:
    """Kind 0 (docs/PROTOCOL.md §Metadata), only when something is configured; URLs that do not parse are skipped."""
    fields = {
        "name": name or None,
        "about": about or None,
        # rust-nostr's Metadata field order: name, about, website, picture.
        "website": website if _is_url(website) else None,
        "picture": picture if _is_url(picture) else None,
    }
    content = {key: value for key, value in fields.items() if value is not None}
    if not content:
        return None
    return sign_event(
        keys, kind=METADATA_KIND, content=dumps_compact(content), tags=[], created_at=now, aux_rand=aux_rand
    )


def _is_url(value: str | None) -> bool:
    if not value:
        return False
    parsed = urllib.parse.urlsplit(value)
    return bool(parsed.scheme and parsed.netloc)


def _sign(keys: Keys, kind: int, tags: Tags, created_at: int, aux_rand: bytes | None, content: str = "") -> Event:
    return sign_event(keys, kind=kind, content=content, tags=tags, created_at=created_at, aux_rand=aux_rand)


class MonotonicClock:
    """`created_at = max(now, previous + 1)` per (kind, d) (docs/PROTOCOL.md §Events).

    Relays break `created_at` ties of addressable events by the lowest id, so two revisions
    of one order in the same second could leave the older one in place. Kept in memory per
    process, like the daemon; thread-safe.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[int, str], int] = {}
        self._lock = threading.Lock()

    def next(self, kind: int, d: str, now: int) -> int:
        key = (kind, d)
        with self._lock:
            stamp = max(now, self._last.get(key, now - 1) + 1)
            self._last[key] = stamp
            return stamp

    def forget(self, kind: int, d: str) -> None:
        """Drop the entry of a finished order or dispute so the map does not grow forever."""
        with self._lock:
            self._last.pop((kind, d), None)
