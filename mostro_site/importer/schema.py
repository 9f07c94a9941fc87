"""The mostrod SQLite schema this importer understands (mostrod 0.18.x; docs/OPERATIONS.md §5), and its check.

The source database is opened read-only: the import never changes the operator's mostrod
data. A table or column the importer does not know means a mostrod version it was not
written for, so it refuses rather than silently dropping data.
"""

import sqlite3
from pathlib import Path

REQUIRED_COLUMNS: dict[str, frozenset[str]] = {
    "orders": frozenset(
        {
            "id",
            "kind",
            "event_id",
            "hash",
            "preimage",
            "creator_pubkey",
            "cancel_initiator_pubkey",
            "dispute_initiator_pubkey",
            "buyer_pubkey",
            "master_buyer_pubkey",
            "seller_pubkey",
            "master_seller_pubkey",
            "status",
            "price_from_api",
            "premium",
            "payment_method",
            "amount",
            "min_amount",
            "max_amount",
            "buyer_dispute",
            "seller_dispute",
            "buyer_cooperativecancel",
            "seller_cooperativecancel",
            "fee",
            "routing_fee",
            "fiat_code",
            "fiat_amount",
            "buyer_invoice",
            "range_parent_id",
            "invoice_held_at",
            "taken_at",
            "created_at",
            "buyer_sent_rate",
            "seller_sent_rate",
            "failed_payment",
            "payment_attempts",
            "expires_at",
            "trade_index_seller",
            "trade_index_buyer",
            "next_trade_pubkey",
            "next_trade_index",
        }
    ),  # fmt: skip
    "disputes": frozenset(
        {"id", "order_id", "status", "order_previous_status", "solver_pubkey", "created_at", "taken_at"}
    ),
    "users": frozenset(
        {
            "pubkey",
            "is_admin",
            "is_solver",
            "is_banned",
            "category",
            "last_trade_index",
            "total_reviews",
            "total_rating",
            "last_rating",
            "max_rating",
            "min_rating",
            "created_at",
        }
    ),  # fmt: skip
}

# Columns added by later mostrod versions (read when present, defaults otherwise), and
# columns that exist but carry nothing this node uses.
OPTIONAL_COLUMNS: dict[str, frozenset[str]] = {
    "orders": frozenset(
        {
            "dev_fee",
            "dev_fee_paid",
            "dev_fee_payment_hash",
            "payout_payment_hash",
            "payout_claimed_at",
            "cashu_mint_url",
            "cashu_escrow_token",
            "cashu_escrow_locked_at",
        }
    ),  # fmt: skip
    "disputes": frozenset({"buyer_token", "seller_token"}),  # dropped by mostrod at startup
    "users": frozenset(
        {
            "admin_password",
            # Reputation portability (docs/PROTOCOL.md §Reputation); native_created_at is not kept here.
            "seeded_reviews",
            "seeded_rating_sum",
            "native_rating_sum",
            "native_created_at",
            "reputation_exported_to",
            "reputation_exported_at",
        }
    ),  # fmt: skip
}

# Tables read by nothing here: mostrod's bond rows are not imported, Cashu escrow is not supported.
IGNORED_TABLES = frozenset({"bonds", "_sqlx_migrations", "daemon_state", "sqlite_sequence"})


class UnknownSchema(Exception):
    """The database is not a mostrod schema this importer knows; the message says why."""


def open_readonly(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise UnknownSchema(f"{path} does not exist or is not a file.")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def table_columns(conn: sqlite3.Connection) -> dict[str, set[str]]:
    try:
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    except sqlite3.DatabaseError as exc:
        raise UnknownSchema(f"not a SQLite database ({exc}).") from exc
    return {name: {row[1] for row in conn.execute(f'PRAGMA table_info("{name}")')} for name in names}


def verify_schema(conn: sqlite3.Connection, *, allow_unknown_columns: bool = False) -> list[str]:
    """Raise UnknownSchema listing every problem; return notes (ignored tables and columns)."""
    tables = table_columns(conn)
    problems, notes = [], []
    for table, required in REQUIRED_COLUMNS.items():
        if table not in tables:
            problems.append(f"table `{table}` is missing")
            continue
        missing = sorted(required - tables[table])
        if missing:
            problems.append(f"table `{table}` lacks columns: {', '.join(missing)}")
        unknown = sorted(tables[table] - required - OPTIONAL_COLUMNS[table])
        if unknown and not allow_unknown_columns:
            problems.append(f"table `{table}` has columns this importer does not know: {', '.join(unknown)}")
        elif unknown:
            notes.append(f"ignored unknown columns of `{table}`: {', '.join(unknown)}")
    extra = sorted(set(tables) - set(REQUIRED_COLUMNS) - IGNORED_TABLES)
    if extra:
        notes.append(f"ignored tables: {', '.join(extra)}")
    if problems:
        raise UnknownSchema(
            "this is not a mostrod database schema the importer knows (mostrod 0.18.x, docs/OPERATIONS.md §5):\n  - "
            + "\n  - ".join(problems)
        )
    return notes
