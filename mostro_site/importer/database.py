"""Import a mostrod SQLite database: users, orders, disputes and the dev-fee ledger.

Order matters: users first (solvers and reputation), then orders (parents before range
children), then disputes and dev fees, which point at orders. Every table is reported even
in a dry run, where nothing is written and the rows an earlier table would import count as
present.
"""

import sqlite3
from collections.abc import Iterator

from devfee.models import DevFeePayment
from disputes.models import Dispute
from mostro_site.config import node_config
from mostro_site.importer import mapping
from mostro_site.importer.mapping import Skip
from mostro_site.importer.upsert import TableReport, Target, upsert
from orders.models import Order, Trader


def import_database(conn: sqlite3.Connection, *, dry_run: bool) -> list[TableReport]:
    users = TableReport("users (traders and solvers)")
    upsert(Target(Trader, keep_on_insert=("created_at",)), _users(conn, users), users, dry_run=dry_run)
    solvers = conn.execute("SELECT COUNT(*) FROM users WHERE is_solver = 1").fetchone()[0]
    users.notes.append(f"{solvers} solver(s) among them (is_solver with their category)")

    orders = TableReport("orders")
    order_rows = list(_orders(conn, orders))
    upsert(Target(Order), order_rows, orders, dry_run=dry_run)
    known_orders = {key for key, _ in order_rows} | set(Order.objects.values_list("pk", flat=True))

    disputes = TableReport("disputes")
    target = Target(Dispute, keep_on_insert=("created_at",))
    upsert(target, _disputes(conn, disputes, known_orders), disputes, dry_run=dry_run)

    dev_fees = TableReport("dev-fee payments")
    target = Target(DevFeePayment, key="order_id", keep_on_insert=(), never_update=True)
    upsert(target, _dev_fees(conn, dev_fees, known_orders), dev_fees, dry_run=dry_run)
    return [users, orders, disputes, dev_fees, *_ignored(conn)]


def _users(conn, report: TableReport) -> Iterator[tuple]:
    for row in conn.execute("SELECT * FROM users ORDER BY pubkey"):
        try:
            yield mapping.map_user(row)
        except Skip as exc:
            report.skipped[str(exc)] += 1


def _orders(conn, report: TableReport) -> Iterator[tuple]:
    rows = []
    for row in conn.execute("SELECT * FROM orders ORDER BY created_at, id"):
        try:
            rows.append(mapping.map_order(row))
        except Skip as exc:
            report.skipped[str(exc)] += 1
    ids = {key for key, _ in rows} | set(Order.objects.values_list("pk", flat=True))
    seen_hashes: dict[str, set] = {"hold_invoice_hash": set(), "payout_payment_hash": set()}
    orphans = 0
    for key, fields in rows:
        if fields["range_parent_id"] is not None and fields["range_parent_id"] not in ids:
            fields["range_parent_id"] = None  # the parent is gone; keep the child as a plain order
            orphans += 1
        if _duplicate_hash(key, fields, seen_hashes):
            report.skipped["hold-invoice or payout hash already used by another order"] += 1
            continue
        yield key, fields
    if orphans:
        report.notes.append(f"{orphans} range child order(s) lost their missing parent link")


def _duplicate_hash(key, fields: dict, seen: dict[str, set]) -> bool:
    """The schema makes these hashes unique; a clash would abort the whole batch."""
    for name, values in seen.items():
        value = fields[name]
        if value is None:
            continue
        taken_here = Order.objects.filter(**{name: value}).exclude(pk=key).exists()
        if value in values or taken_here:
            return True
    for name, values in seen.items():
        if fields[name] is not None:
            values.add(fields[name])
    return False


def _disputes(conn, report: TableReport, known_orders: set) -> Iterator[tuple]:
    orders = {row["id"]: row for row in conn.execute("SELECT * FROM orders")}
    for row in conn.execute("SELECT * FROM disputes ORDER BY created_at, id"):
        order = orders.get(row["order_id"])
        try:
            dispute_id, fields = mapping.map_dispute(row, order)
            if fields["order_id"] not in known_orders:
                raise Skip("its order was not imported")
        except Skip as exc:
            report.skipped[str(exc)] += 1
            continue
        yield dispute_id, fields


def _dev_fees(conn, report: TableReport, known_orders: set) -> Iterator[tuple]:
    destination = node_config().dev_fee_lightning_address
    unpaid = 0
    for row in conn.execute("SELECT * FROM orders ORDER BY created_at, id"):
        try:
            mapped = mapping.map_dev_fee(row, destination=destination)
        except Skip as exc:
            report.skipped[str(exc)] += 1
            continue
        if mapped is None:
            unpaid += _dev_fee_owed(row)
            continue
        order_id, fields = mapped
        if order_id not in known_orders:
            report.skipped["its order was not imported"] += 1
            continue
        yield order_id, fields
    if unpaid:
        report.notes.append(f"{unpaid} order(s) carry a dev fee mostrod had not paid; the dev-fee job handles them")


def _dev_fee_owed(row: sqlite3.Row) -> int:
    dev_fee = int((row["dev_fee"] if "dev_fee" in row.keys() else 0) or 0)
    return int(dev_fee > 0 and row["status"] in ("success", "settled-hold-invoice"))


def _ignored(conn) -> list[TableReport]:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "bonds" not in tables:
        return []
    count = conn.execute("SELECT COUNT(*) FROM bonds").fetchone()[0]
    report = TableReport("bonds")
    if count:
        report.skipped["mostrod bond rows are not imported (import before trading, with no bond open)"] = count
    return [report]
