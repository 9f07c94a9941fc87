"""Row mappers: one mostrod row in, the fields of one model row out (or `Skip` with a reason).

mostrod stores times as unix seconds (0 = never), flags as 0/1 integers and amounts as
integer sats; this node uses aware datetimes, booleans and `*_sats` fields.
"""

import datetime as dt
import sqlite3
import uuid

from disputes.models import DisputeInitiator, DisputeStatus
from orders.models import SolverCategory
from orders.status import OrderKind, OrderStatus


class Skip(Exception):
    """This row cannot be imported; the message is the reason shown in the report."""


def _get(row: sqlite3.Row, column: str, default=None):
    return row[column] if column in row.keys() else default


def when(value) -> dt.datetime | None:
    """Unix seconds to an aware UTC datetime; 0 or NULL mean "never"."""
    if value in (None, "", 0, "0"):
        return None
    return dt.datetime.fromtimestamp(int(value), tz=dt.UTC)


def flag(value) -> bool:
    return bool(int(value or 0))


def text(value) -> str | None:
    """Empty strings become NULL, as mostrod treats them."""
    return None if value in (None, "") else str(value)


def positive_or_none(value) -> int | None:
    return None if value in (None, "", 0) else int(value)


def _uuid(value, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise Skip(f"{what} {value!r} is not a UUID") from exc


def map_user(row: sqlite3.Row) -> tuple[str, dict]:
    pubkey = str(row["pubkey"]).lower()
    if len(pubkey) != 64:
        raise Skip("pubkey is not 64 hex characters")
    ratings = [row["last_rating"], row["max_rating"], row["min_rating"]]
    if any(not 0 <= int(r or 0) <= 5 for r in ratings) or not 0 <= float(row["total_rating"] or 0) <= 5:
        raise Skip("rating outside 0–5")
    is_solver = flag(row["is_solver"])
    category = int(row["category"] or 0)
    if is_solver and category == SolverCategory.NONE:
        category = (
            SolverCategory.READ_WRITE
        )  # mostrod's own backfill of legacy solvers (docs/PROTOCOL.md §Admin-add-solver)
    if category not in SolverCategory.values:
        raise Skip(f"unknown solver category {category}")
    created_at = when(row["created_at"])
    if created_at is None:
        raise Skip("no created_at")
    total_reviews, total_rating = int(row["total_reviews"] or 0), float(row["total_rating"] or 0)
    seeded_reviews = int(_get(row, "seeded_reviews", 0) or 0)
    if not 0 <= seeded_reviews <= total_reviews:
        raise Skip("seeded_reviews outside 0–total_reviews")
    # A database from before reputation portability: every review is native (mostrod's backfill).
    native_sum = _get(row, "native_rating_sum")
    return pubkey, {
        "is_admin": flag(row["is_admin"]),
        "is_solver": is_solver,
        "solver_category": category,
        "is_banned": flag(row["is_banned"]),
        "last_trade_index": int(row["last_trade_index"] or 0),
        "total_reviews": total_reviews,
        "total_rating": total_rating,
        "last_rating": int(row["last_rating"] or 0),
        "max_rating": int(row["max_rating"] or 0),
        "min_rating": int(row["min_rating"] or 0),
        "created_at": created_at,
        "seeded_reviews": seeded_reviews,
        "seeded_rating_sum": float(_get(row, "seeded_rating_sum", 0) or 0),
        "native_rating_sum": total_rating * total_reviews if native_sum is None else float(native_sum),
        "reputation_exported_to": text(_get(row, "reputation_exported_to")),
        "reputation_exported_at": when(_get(row, "reputation_exported_at")),
    }


def map_order(row: sqlite3.Row) -> tuple[uuid.UUID, dict]:
    order_id = _uuid(row["id"], "id")
    if row["kind"] not in OrderKind.values:
        raise Skip(f"unknown kind {row['kind']!r}")
    if row["status"] not in OrderStatus.values:
        raise Skip(f"unknown status {row['status']!r}")
    created_at = when(row["created_at"])
    if created_at is None:
        raise Skip("no created_at")
    parent = text(row["range_parent_id"])
    return order_id, {
        "kind": row["kind"],
        "status": row["status"],
        "event_id": row["event_id"] or "",
        "creator_pubkey": row["creator_pubkey"] or "",
        "buyer_pubkey": text(row["buyer_pubkey"]),
        "master_buyer_pubkey": text(row["master_buyer_pubkey"]),
        "seller_pubkey": text(row["seller_pubkey"]),
        "master_seller_pubkey": text(row["master_seller_pubkey"]),
        "cancel_initiator_pubkey": text(row["cancel_initiator_pubkey"]),
        "trade_index_buyer": row["trade_index_buyer"],
        "trade_index_seller": row["trade_index_seller"],
        "price_from_api": flag(row["price_from_api"]),
        "premium": int(row["premium"] or 0),
        "payment_method": row["payment_method"] or "",
        "amount_sats": int(row["amount"] or 0),
        "fiat_code": row["fiat_code"],
        "fiat_amount": int(row["fiat_amount"] or 0),
        "min_fiat_amount": positive_or_none(row["min_amount"]),
        "max_fiat_amount": positive_or_none(row["max_amount"]),
        "fee_sats": int(row["fee"] or 0),
        "dev_fee_sats": int(_get(row, "dev_fee") or 0),
        "routing_fee_sats": int(row["routing_fee"] or 0),
        "hold_invoice_hash": text(row["hash"]),
        "hold_invoice_preimage": text(row["preimage"]),
        "invoice_held_at": when(row["invoice_held_at"]),
        "buyer_invoice": text(row["buyer_invoice"]),
        "payout_payment_hash": text(_get(row, "payout_payment_hash")),
        "payout_claimed_at": when(_get(row, "payout_claimed_at")),
        "payment_attempts": int(row["payment_attempts"] or 0),
        "failed_payment": flag(row["failed_payment"]),
        "buyer_cooperative_cancel": flag(row["buyer_cooperativecancel"]),
        "seller_cooperative_cancel": flag(row["seller_cooperativecancel"]),
        "buyer_dispute": flag(row["buyer_dispute"]),
        "seller_dispute": flag(row["seller_dispute"]),
        "buyer_sent_rate": flag(row["buyer_sent_rate"]),
        "seller_sent_rate": flag(row["seller_sent_rate"]),
        "range_parent_id": _uuid(parent, "range_parent_id") if parent else None,
        "next_trade_pubkey": text(row["next_trade_pubkey"]),
        "next_trade_index": row["next_trade_index"],
        "created_at": created_at,
        # mostrod always sets expires_at; a zero would expire the order at once, like there.
        "expires_at": when(row["expires_at"]) or created_at,
        "taken_at": when(row["taken_at"]),
    }


def dispute_initiator(order: sqlite3.Row) -> tuple[str, str]:
    """(initiator, initiator trade pubkey): mostrod keeps only the per-side dispute flags."""
    buyer, seller = flag(order["buyer_dispute"]), flag(order["seller_dispute"])
    declared = text(order["dispute_initiator_pubkey"])
    if declared and declared == order["seller_pubkey"]:
        return DisputeInitiator.SELLER, declared
    if seller and not buyer:
        return DisputeInitiator.SELLER, order["seller_pubkey"] or ""
    return DisputeInitiator.BUYER, order["buyer_pubkey"] or ""


def map_dispute(row: sqlite3.Row, order: sqlite3.Row | None) -> tuple[uuid.UUID, dict]:
    dispute_id = _uuid(row["id"], "id")
    if order is None:
        raise Skip("its order is not in the database")
    if row["status"] not in DisputeStatus.values:
        raise Skip(f"unknown status {row['status']!r}")
    created_at = when(row["created_at"])
    if created_at is None:
        raise Skip("no created_at")
    initiator, initiator_pubkey = dispute_initiator(order)
    return dispute_id, {
        "order_id": _uuid(row["order_id"], "order_id"),
        "status": row["status"],
        "initiator": initiator,
        "initiator_pubkey": initiator_pubkey,
        "order_previous_status": row["order_previous_status"] or "",
        "solver_pubkey": text(row["solver_pubkey"]),
        "created_at": created_at,
        "taken_at": when(row["taken_at"]),
    }


def map_dev_fee(row: sqlite3.Row, *, destination: str) -> tuple[uuid.UUID, dict] | None:
    """The dev-fee ledger row for one order, or None when mostrod never started paying it.

    Paid → `paid`. A real hash without the paid flag is mostrod's "partial" state (sent,
    outcome unknown) → `in-flight`, so this node asks LND before anything else and never
    pays twice. `PENDING-…` values are claim markers, not payments.
    """
    amount = int(_get(row, "dev_fee") or 0)
    paid = flag(_get(row, "dev_fee_paid"))
    payment_hash = text(_get(row, "dev_fee_payment_hash"))
    if payment_hash and payment_hash.startswith("PENDING-"):
        payment_hash = None
    if not paid and not payment_hash:
        return None
    from devfee.models import DevFeeStatus

    return _uuid(row["id"], "id"), {
        "amount_sats": amount,
        "status": DevFeeStatus.PAID if paid else DevFeeStatus.IN_FLIGHT,
        "destination": destination,
        "payment_hash": payment_hash,
    }
