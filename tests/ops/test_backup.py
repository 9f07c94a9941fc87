"""`manage.py backup` / `restore`: a node with trades in flight is backed up, lost, restored, and
every trade finishes from the restored state with exactly one payout each.

LND here is the in-memory fake node: like a real LND it is not part of the database, so it
keeps the escrows (and their HTLCs) across the restore, as a production LND would.
"""

import io
import os
import stat
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from lightning.types import InvoiceState
from mostro_site.ops import backup
from mostro_site.ops.models import ProcessHeartbeat
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from orders.models import Order
from orders.services.escrow import escrow_on_accepted
from tests.orders.services.support import make_order, mint_invoice
from tests.orders.trade_states import active_sell_trade
from tests.trade.harness import TradeClient

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def take_and_pay(fake_ln, seller: TradeClient, buyer: TradeClient) -> Order:
    order = make_order(seller, index=1, kind="sell")
    take = PaymentRequestPayload(None, mint_invoice(), None)
    buyer.send(Action.TAKE_SELL, index=1, order_id=order.id, payload=take, request_id=3)
    order.refresh_from_db()
    assert order.status == "waiting-payment"
    return order


def release(seller: TradeClient, buyer: TradeClient, order: Order) -> None:
    buyer.send(Action.FIAT_SENT, index=1, order_id=order.id)
    seller.send(Action.RELEASE, index=1, order_id=order.id)


def test_a_restored_node_finishes_the_trades_it_had_in_flight(node, fake_ln, tmp_path):
    # given: four trades in flight — active (escrow held), fiat sent, waiting for the seller's
    # payment, and a pending order
    active = active_sell_trade(fake_ln, seller=TradeClient("s1"), buyer=TradeClient("b1"))
    fiat = active_sell_trade(fake_ln, seller=TradeClient("s2"), buyer=TradeClient("b2"))
    fiat.buyer.send(Action.FIAT_SENT, index=1, order_id=fiat.order.id)
    unpaid_seller, unpaid_buyer = TradeClient("s3"), TradeClient("b3")
    unpaid = take_and_pay(fake_ln, unpaid_seller, unpaid_buyer)
    pending_seller = TradeClient("s4")
    pending = make_order(pending_seller, index=1, kind="sell")
    before = dict(Order.objects.values_list("id", "status"))

    # when: backed up while running, then the database is lost and restored
    out = run("backup", str(tmp_path))
    [path] = tmp_path.iterdir()
    call_command("flush", interactive=False)
    assert Order.objects.count() == 0
    restored = run("restore", str(path), "--yes")

    # then: the same trades, and each one finishes
    assert dict(Order.objects.values_list("id", "status")) == before
    fake_ln.mark_accepted(unpaid.hold_invoice_hash)
    assert escrow_on_accepted(payment_hash_hex=unpaid.hold_invoice_hash)
    release(active.seller, active.buyer, active.order)
    fiat.seller.send(Action.RELEASE, index=1, order_id=fiat.order.id)
    release(unpaid_seller, unpaid_buyer, unpaid)
    taker = TradeClient("b4")
    taker.send(
        Action.TAKE_SELL, index=1, order_id=pending.id, payload=PaymentRequestPayload(None, mint_invoice(), None)
    )
    pending.refresh_from_db()
    fake_ln.mark_accepted(pending.hold_invoice_hash)
    assert escrow_on_accepted(payment_hash_hex=pending.hold_invoice_hash)
    release(pending_seller, taker, pending)

    finished = Order.objects.filter(pk__in=before)
    assert sorted(finished.values_list("status", flat=True)) == ["success"] * 4
    for order in finished:
        assert fake_ln.invoice_state(order.hold_invoice_hash) is InvoiceState.SETTLED
    payouts = [args["payment_request"] for name, args in fake_ln.calls if name == "send_payment"]
    assert sorted(payouts) == sorted(finished.values_list("buyer_invoice", flat=True))  # one payout each
    engine = "sqlite" if connection.vendor == "sqlite" else "postgresql"
    assert f"{engine} backup written: {path}" in out
    assert f"{engine} database restored from {path}." in restored
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_backup_never_overwrites_and_restore_needs_yes(node, tmp_path):
    path = tmp_path / "node.backup"
    run("backup", str(path))
    with pytest.raises(CommandError, match="exists; choose a new file name"):
        run("backup", str(path))
    with pytest.raises(CommandError, match="run it again with --yes"):
        run("restore", str(path))
    with pytest.raises(CommandError, match="is not a file"):
        run("restore", str(tmp_path / "missing"), "--yes")


def test_restore_refuses_while_node_processes_report(node, tmp_path):
    path = tmp_path / "node.backup"
    run("backup", str(path))
    now = timezone.now()
    ProcessHeartbeat.objects.create(instance="h:1", role="bridge", started_at=now, seen_at=now - timedelta(seconds=5))

    with pytest.raises(CommandError, match=r"node processes reported in the last minute \(bridge h:1\)"):
        run("restore", str(path), "--yes")
    assert "restored" in run("restore", str(path), "--yes", "--force")


@pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="SQLite file check")
def test_sqlite_restore_refuses_a_file_that_is_no_backup(node, tmp_path):
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"")
    with pytest.raises(CommandError, match="is not a usable node backup"):
        run("restore", str(junk), "--yes")


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="PostgreSQL only")
def test_pg_dump_of_another_major_version_is_refused(node, tmp_path, monkeypatch):
    monkeypatch.setattr(backup, "pg_versions", lambda tool: (14, 15))
    with pytest.raises(CommandError, match="pg_dump is PostgreSQL 14 but the server is PostgreSQL 15"):
        run("backup", str(tmp_path / "x.dump"))
    assert list(tmp_path.iterdir()) == []


def test_the_client_version_is_read_from_the_tool():
    assert backup._major("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)") == 15
    assert backup._major("pg_restore (PostgreSQL) 17.2") == 17
