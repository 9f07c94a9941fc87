"""`import_mostrod`: a database built from the documented mostrod schema, imported exactly."""

import datetime as dt
import io
import sqlite3
import subprocess
import sys
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from devfee.models import DevFeePayment
from disputes.models import Dispute
from mostro_site.models import NodeSettings, SettingsAuditEntry
from orders.models import Order, Trader
from tests.operator import mostrod_db as m

pytestmark = pytest.mark.django_db


def _at(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


@pytest.fixture
def source(tmp_path):
    return m.build_mostrod_db(tmp_path / "mostro.db")


def run(*args) -> str:
    out = io.StringIO()
    call_command("import_mostrod", *args, stdout=out)
    return out.getvalue()


def test_dry_run_reports_and_writes_nothing(source):
    out = run("--db", str(source), "--dry-run")
    assert "DRY RUN: nothing is written." in out
    assert "users (traders and solvers): 4 new, 0 updated, 0 unchanged, 1 skipped" in out
    assert "    skipped 1: rating outside 0–5" in out
    assert "orders: 6 new, 0 updated, 0 unchanged, 1 skipped" in out
    assert "    skipped 1: unknown status 'weird'" in out
    assert "disputes: 1 new, 0 updated, 0 unchanged, 1 skipped" in out
    assert "dev-fee payments: 2 new, 0 updated, 0 unchanged, 0 skipped" in out
    assert "    skipped 1: mostrod bond rows are not imported (import before trading, with no bond open)" in out
    assert (Order.objects.count(), Trader.objects.count(), Dispute.objects.count(), DevFeePayment.objects.count()) == (
        0,
        0,
        0,
        0,
    )


def test_imports_exact_rows(source):
    run("--db", str(source))
    order = Order.objects.get(pk=m.O_SUCCESS)
    assert {
        "kind": order.kind,
        "status": order.status,
        "amount_sats": order.amount_sats,
        "fee_sats": order.fee_sats,
        "dev_fee_sats": order.dev_fee_sats,
        "hold_invoice_hash": order.hold_invoice_hash,
        "hold_invoice_preimage": order.hold_invoice_preimage,
        "buyer_invoice": order.buyer_invoice,
        "master_buyer_pubkey": order.master_buyer_pubkey,
        "master_seller_pubkey": order.master_seller_pubkey,
        "trade_index_buyer": order.trade_index_buyer,
        "trade_index_seller": order.trade_index_seller,
        "buyer_sent_rate": order.buyer_sent_rate,
        "price_from_api": order.price_from_api,
        "premium": order.premium,
        "payout_payment_hash": order.payout_payment_hash,
        "created_at": order.created_at,
        "taken_at": order.taken_at,
        "invoice_held_at": order.invoice_held_at,
        "payout_claimed_at": order.payout_claimed_at,
        "expires_at": order.expires_at,
    } == {
        "kind": "sell",
        "status": "success",
        "amount_sats": 10_000,
        "fee_sats": 30,
        "dev_fee_sats": 18,
        "hold_invoice_hash": "11" * 32,
        "hold_invoice_preimage": "22" * 32,
        "buyer_invoice": "lnbcrt100u1pexample",
        "master_buyer_pubkey": m.BOB,
        "master_seller_pubkey": m.ALICE,
        "trade_index_buyer": 3,
        "trade_index_seller": 7,
        "buyer_sent_rate": True,
        "price_from_api": True,
        "premium": 2,
        "payout_payment_hash": "55" * 32,
        "created_at": _at(m.T0),
        "taken_at": _at(m.T0 + 60),
        "invoice_held_at": _at(m.T0 + 120),
        "payout_claimed_at": _at(m.T0 + 300),
        "expires_at": _at(m.T0 + 86_400),
    }
    parent, child = Order.objects.get(pk=m.O_RANGE), Order.objects.get(pk=m.O_CHILD)
    assert (parent.min_fiat_amount, parent.max_fiat_amount, parent.is_range) == (10, 50, True)
    assert child.range_parent_id == uuid.UUID(m.O_RANGE)
    assert Order.objects.get(pk=m.O_ORPHAN).range_parent_id is None
    assert not Order.objects.filter(pk=m.O_BAD_STATUS).exists()

    alice = Trader.objects.get(pk=m.ALICE)
    assert (alice.total_reviews, alice.total_rating, alice.last_rating, alice.max_rating, alice.min_rating) == (
        2,
        4.5,
        5,
        5,
        4,
    )
    assert (alice.last_trade_index, alice.created_at) == (7, _at(m.T0 - 86_400))
    solvers = dict(Trader.objects.filter(is_solver=True).values_list("pubkey", "solver_category"))
    assert solvers == {m.SOLVER: 1, m.LEGACY_SOLVER: 2}

    dispute = Dispute.objects.get()
    assert (
        str(dispute.id),
        str(dispute.order_id),
        dispute.status,
        dispute.initiator,
        dispute.initiator_pubkey,
        dispute.order_previous_status,
        dispute.solver_pubkey,
        dispute.created_at,
        dispute.taken_at,
    ) == (
        m.D_OPEN,
        m.O_DISPUTE,
        "in-progress",
        "seller",
        "77" * 32,
        "active",
        m.SOLVER,
        _at(m.T0 + 500),
        _at(m.T0 + 600),
    )

    fees = {str(p.order_id): (p.status, p.amount_sats, p.payment_hash) for p in DevFeePayment.objects.all()}
    assert fees == {m.O_SUCCESS: ("paid", 18, "aa" * 32), m.O_PARTIAL_FEE: ("in-flight", 4, "bb" * 32)}


def test_reputation_columns_are_imported_or_backfilled(source):
    """A 0.18.5 database has no native figures: every review is native (mostrod's own backfill);
    a later one carries them, with its export binding (docs/PROTOCOL.md §Reputation)."""
    run("--db", str(source))
    alice = Trader.objects.get(pk=m.ALICE)
    assert (alice.native_rating_sum, alice.seeded_reviews, alice.reputation_exported_to) == (9.0, 0, None)

    conn = sqlite3.connect(source)
    for column in (
        "seeded_reviews integer not null default 0",
        "seeded_rating_sum real not null default 0",
        "native_rating_sum real not null default 0",
        "native_created_at integer",
        "reputation_exported_to char(64)",
        "reputation_exported_at integer",
    ):
        conn.execute(f"ALTER TABLE users ADD COLUMN {column}")
    conn.execute(
        "UPDATE users SET total_reviews = 7, seeded_reviews = 5, seeded_rating_sum = 22.5, native_rating_sum = 9.5,"
        " reputation_exported_to = ?, reputation_exported_at = ? WHERE pubkey = ?",
        ("cd" * 32, m.T0 - m.T0 % 86_400, m.ALICE),
    )
    conn.commit()
    conn.close()
    run("--db", str(source))
    alice = Trader.objects.get(pk=m.ALICE)
    assert (alice.total_reviews, alice.seeded_reviews, alice.seeded_rating_sum, alice.native_rating_sum) == (
        7,
        5,
        22.5,
        9.5,
    )
    assert (alice.reputation_exported_to, alice.reputation_exported_at) == ("cd" * 32, _at(m.T0 - m.T0 % 86_400))


def test_rerun_changes_nothing_and_picks_up_edits(source):
    run("--db", str(source))
    out = run("--db", str(source))
    assert "orders: 0 new, 0 updated, 6 unchanged, 1 skipped" in out
    assert "users (traders and solvers): 0 new, 0 updated, 4 unchanged, 1 skipped" in out
    assert "disputes: 0 new, 0 updated, 1 unchanged, 1 skipped" in out
    assert "dev-fee payments: 0 new, 0 updated, 2 unchanged, 0 skipped" in out

    conn = sqlite3.connect(source)
    conn.execute("UPDATE users SET total_reviews = 3, total_rating = 4.6 WHERE pubkey = ?", (m.ALICE,))
    conn.execute("UPDATE orders SET status = 'expired' WHERE id = ?", (m.O_RANGE,))
    conn.commit()
    conn.close()
    out = run("--db", str(source))
    assert "orders: 0 new, 1 updated, 5 unchanged, 1 skipped" in out
    assert "users (traders and solvers): 0 new, 1 updated, 3 unchanged, 1 skipped" in out
    assert Order.objects.get(pk=m.O_RANGE).status == "expired"
    assert Trader.objects.get(pk=m.ALICE).total_reviews == 3


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("ALTER TABLE orders ADD COLUMN success_at integer", "has columns this importer does not know: success_at"),
        ("ALTER TABLE disputes DROP COLUMN order_previous_status", "lacks columns: order_previous_status"),
        ("DROP TABLE users", "table `users` is missing"),
    ],
)
def test_unknown_schema_is_refused(source, sql, message):
    conn = sqlite3.connect(source)
    conn.execute(sql)
    conn.commit()
    conn.close()
    with pytest.raises(CommandError) as info:
        run("--db", str(source))
    assert "this is not a mostrod database schema the importer knows" in str(info.value)
    assert message in str(info.value)
    assert Order.objects.count() == 0


def test_not_a_database_is_refused(tmp_path):
    junk = tmp_path / "mostro.db"
    junk.write_text("not sqlite")
    with pytest.raises(CommandError, match="not a SQLite database"):
        run("--db", str(junk))


SETTINGS_TOML = """
[database]
url = "sqlite://mostro.db"

[nostr]
nsec_privkey = "nsec1secretsecretsecretsecretsecretsecret"
relays = ["wss://relay.mostro.network", "wss://nos.lol"]

[mostro]
fee = 0.006
max_routing_fee = 0.002
max_order_amount = 500000
min_payment_amount = 200
expiration_hours = 12
max_expiration_days = 15
expiration_seconds = 600
pow = 4
dev_fee_percentage = 0.3
fiat_currencies_accepted = ["usd", "VES"]
name = "My Mostro"
picture = "not a url"

[lightning]
lnd_cert_file = "/home/mostro/.lnd/tls.cert"
lnd_macaroon_file = "/home/mostro/.lnd/admin.macaroon"
lnd_grpc_host = "https://127.0.0.1:10009"
invoice_expiration_window = 3600
hold_invoice_cltv_delta = 144
hold_invoice_expiration_window = 300
payment_attempts = 3
payment_retries_interval = 60

[rpc]
enabled = true
"""


def test_settings_toml_becomes_node_settings_and_env_lines(tmp_path):
    toml = tmp_path / "settings.toml"
    toml.write_text(SETTINGS_TOML)
    out = run("--toml", str(toml))
    row = NodeSettings.objects.get()
    assert (
        row.fee,
        row.max_order_amount_sats,
        row.min_payment_amount_sats,
        row.expiration_hours,
        row.expiration_seconds,
        row.pow_bits,
        row.dev_fee_percentage,
        row.fiat_currencies_accepted,
        row.relays,
        row.name,
        row.picture,
    ) == (
        0.006,
        500_000,
        200,
        12,
        600,
        4,
        0.3,
        "USD,VES",
        "wss://relay.mostro.network,wss://nos.lol",
        "My Mostro",
        None,
    )
    audited = set(SettingsAuditEntry.objects.filter(user=None).values_list("field", flat=True))
    assert {"fee", "relays", "fiat_currencies_accepted", "dev_fee_percentage"} <= audited
    assert "LND_GRPC_HOST=127.0.0.1:10009" in out
    assert "LND_CERT_FILE=/home/mostro/.lnd/tls.cert" in out
    assert "MOSTRO_MAX_EXPIRATION_DAYS=15" in out
    assert "MOSTRO_NSEC_PRIVKEY: found in" in out
    assert "nsec1secret" not in out
    assert "rpc.enabled: the admin gRPC is not provided" in out
    assert "mostro.picture 'not a url' is not an http(s) URL and was skipped" in out
    assert "node settings: 0 field(s) to change" in run("--toml", str(toml))

    env = tmp_path / ".env"
    out = run("--toml", str(toml), "--write-env", str(env))
    assert env.read_text() == "MOSTRO_NSEC_PRIVKEY=nsec1secretsecretsecretsecretsecretsecret\n"
    assert oct(env.stat().st_mode & 0o777) == "0o600"
    assert "nsec1secret" not in out


def test_invalid_settings_refuse_before_anything_is_written(tmp_path, source):
    toml = tmp_path / "settings.toml"
    toml.write_text(SETTINGS_TOML.replace("dev_fee_percentage = 0.3", "dev_fee_percentage = 0.05"))
    with pytest.raises(CommandError, match=r"dev_fee_percent: 5 % is outside 10–100 %"):
        run("--toml", str(toml), "--db", str(source))
    assert (NodeSettings.objects.count(), Order.objects.count()) == (0, 0)


def test_manage_py_passes_settings_option_to_the_importer():
    # Django would read `--settings` as its settings module; manage.py hands it over as --toml.
    result = subprocess.run(
        [sys.executable, "manage.py", "import_mostrod", "--settings", "x/settings.toml", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"DJANGO_SETTINGS_MODULE": "mostro_site.settings.test", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "--dry-run" in result.stdout
