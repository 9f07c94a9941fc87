"""Build a mostrod SQLite database from the documented schema, with known rows."""

import sqlite3
from pathlib import Path

SCHEMA = Path(__file__).with_name("mostrod_schema.sql")

ALICE = "a1" * 32
BOB = "b0" * 32
SOLVER = "c5" * 32
LEGACY_SOLVER = "d4" * 32
BAD_RATING = "e3" * 32

O_SUCCESS = "0f5a1b2c-0000-4000-8000-000000000001"
O_RANGE = "0f5a1b2c-0000-4000-8000-000000000002"
O_CHILD = "0f5a1b2c-0000-4000-8000-000000000003"
O_DISPUTE = "0f5a1b2c-0000-4000-8000-000000000004"
O_PARTIAL_FEE = "0f5a1b2c-0000-4000-8000-000000000005"
O_BAD_STATUS = "0f5a1b2c-0000-4000-8000-000000000006"
O_ORPHAN = "0f5a1b2c-0000-4000-8000-000000000007"
D_OPEN = "d15b0000-0000-4000-8000-000000000001"
D_NO_ORDER = "d15b0000-0000-4000-8000-000000000002"
T0 = 1_700_000_000


def _order(order_id: str, **values) -> dict:
    row = {
        "id": order_id,
        "kind": "sell",
        "event_id": "ee" * 32,
        "creator_pubkey": "f1" * 32,
        "status": "pending",
        "premium": 0,
        "payment_method": "bank transfer",
        "amount": 0,
        "fiat_code": "USD",
        "fiat_amount": 10,
        "created_at": T0,
        "expires_at": T0 + 86_400,
    }
    row.update(values)
    return row


ORDERS = [
    _order(
        O_SUCCESS,
        status="success",
        hash="11" * 32,
        preimage="22" * 32,
        buyer_pubkey="33" * 32,
        master_buyer_pubkey=BOB,
        seller_pubkey="44" * 32,
        master_seller_pubkey=ALICE,
        amount=10_000,
        fee=30,
        dev_fee=18,
        dev_fee_paid=1,
        dev_fee_payment_hash="aa" * 32,
        buyer_invoice="lnbcrt100u1pexample",
        invoice_held_at=T0 + 120,
        taken_at=T0 + 60,
        buyer_sent_rate=1,
        seller_sent_rate=1,
        trade_index_buyer=3,
        trade_index_seller=7,
        payment_attempts=1,
        payout_payment_hash="55" * 32,
        payout_claimed_at=T0 + 300,
        price_from_api=1,
        premium=2,
    ),
    _order(O_RANGE, kind="buy", min_amount=10, max_amount=50, fiat_amount=0, fiat_code="EUR"),
    _order(O_CHILD, status="canceled", range_parent_id=O_RANGE, created_at=T0 + 10, fiat_amount=20),
    _order(
        O_DISPUTE,
        status="dispute",
        seller_dispute=1,
        buyer_pubkey="66" * 32,
        seller_pubkey="77" * 32,
        amount=5_000,
        hash="88" * 32,
    ),
    _order(O_PARTIAL_FEE, status="success", amount=2_000, fee=6, dev_fee=4, dev_fee_payment_hash="bb" * 32),
    _order(O_BAD_STATUS, status="weird"),
    _order(O_ORPHAN, range_parent_id="0f5a1b2c-0000-4000-8000-0000000000ff", created_at=T0 + 20),
]

USERS = [
    {"pubkey": ALICE, "total_reviews": 2, "total_rating": 4.5, "last_rating": 5, "max_rating": 5, "min_rating": 4,
     "last_trade_index": 7, "created_at": T0 - 86_400},
    {"pubkey": BOB, "last_trade_index": 3, "created_at": T0 - 3_600},
    {"pubkey": SOLVER, "is_solver": 1, "category": 1, "created_at": T0},
    {"pubkey": LEGACY_SOLVER, "is_solver": 1, "category": 0, "created_at": T0},
    {"pubkey": BAD_RATING, "last_rating": 7, "created_at": T0},
]  # fmt: skip

DISPUTES = [
    {"id": D_OPEN, "order_id": O_DISPUTE, "status": "in-progress", "order_previous_status": "active",
     "solver_pubkey": SOLVER, "created_at": T0 + 500, "taken_at": T0 + 600},
    {"id": D_NO_ORDER, "order_id": "0f5a1b2c-0000-4000-8000-0000000000ee", "status": "initiated",
     "order_previous_status": "fiat-sent", "created_at": T0 + 700},
]  # fmt: skip


def _insert(conn: sqlite3.Connection, table: str, row: dict) -> None:
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))


def build_mostrod_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA.read_text())
    for row in USERS:
        _insert(conn, "users", row)
    for row in ORDERS:
        _insert(conn, "orders", row)
    for row in DISPUTES:
        _insert(conn, "disputes", row)
    _insert(
        conn,
        "bonds",
        {"id": "b0b0b0b0-0000-4000-8000-000000000001", "order_id": O_SUCCESS, "pubkey": "99" * 32,
         "role": "taker", "amount_sats": 1000, "state": "released", "created_at": T0},
    )  # fmt: skip
    conn.commit()
    conn.close()
    return path
