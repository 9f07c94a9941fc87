"""The benchmark harness's own logic (issue 20, part 4): the split node's command lines, the
replies-per-request check, the py-spy table's categories. Figures are never asserted."""

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

from tests.e2e.node_processes import ready_text, split_commands
from tests.ledger import requests_check

ROOT = Path(__file__).resolve().parents[2]


def _spy_table():
    spec = importlib.util.spec_from_file_location("spy_table", ROOT / "benchmarks" / "spy_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_split_node_runs_compose_services_as_commands():
    commands = split_commands(port=8123, bridges=2, grace_s=5.0)
    manage = [sys.executable, "manage.py"]
    assert commands == {
        "web": [
            *manage, "mostrod", "--port", "8123", "--no-migrate", "--no-cluster", "--no-bridge", "--no-watcher",
            "--grace", "5.0",
        ],
        "bridge-1": [*manage, "nostr_bridge", "--worker-id", "bridge-1", "--grace", "5.0"],
        "bridge-2": [*manage, "nostr_bridge", "--worker-id", "bridge-2", "--grace", "5.0"],
        "watcher": [*manage, "invoice_watcher"],
        "jobs": [*manage, "run_jobs"],
    }  # fmt: skip
    assert [ready_text(name) for name in commands] == ["Mostro node is running", "READY", "READY", None, None]


def _trader(name, sent, answers):
    history = [SimpleNamespace(action=action, body={"request_id": request_id}) for request_id, action in answers]
    return SimpleNamespace(name=name, sent=sent, history=history)


def test_every_request_answered_once_passes():
    seller = _trader("seller", [1, 3], [(1, "new-order"), (2, "pay-invoice"), (None, "rate"), (3, "released")])
    buyer = _trader("buyer", [2], [(2, "waiting-seller-to-pay"), (2, "hold-invoice-payment-accepted")])
    assert requests_check([seller, buyer]) == []


def test_unanswered_duplicated_and_unknown_requests_are_discrepancies():
    seller = _trader("seller", [1, 3], [(1, "new-order"), (1, "new-order"), (9, "rate")])
    buyer = _trader("buyer", [2], [(None, "rate")])
    assert requests_check([seller, buyer]) == [
        "seller: request 3 not answered",
        "buyer: request 2 not answered",
        "seller: new-order for request 1 came 2 times",
        "seller: 1 × rate for request 9, which nobody sent",
    ]


def test_a_driver_call_inside_the_orm_counts_as_the_driver():
    spy = _spy_table()
    orm = "SQLCompiler.execute_sql (django/db/models/sql/compiler.py:1623)"
    driver = "Cursor.execute (psycopg/cursor.py:113)"
    ours = "order_get (orders/services/orders.py:40)"
    loop = "BaseEventLoop._run_once (asyncio/base_events.py:1922)"
    assert spy.categorize([loop, ours, orm, driver]) == "PostgreSQL driver (psycopg: send, wait, parse)"
    assert spy.categorize([loop, ours, orm]) == "Django ORM and transactions"
    assert spy.categorize([loop, ours]) == spy.OTHER
    assert spy.categorize([loop]) == "event loop and threads"
    assert spy.categorize(["wrap_v2 (nostrbridge/protocol/transport.py:80)", driver]).startswith("PostgreSQL")


def test_table_merges_the_cluster_processes_and_gives_shares(tmp_path):
    spy = _spy_table()
    thread = "thread (1): MainThread"
    (tmp_path / "bridge-1.txt").write_text(
        f"{thread};run (orders/x.py:1);execute (psycopg/cursor.py:1) 3\n{thread};run (orders/x.py:1) 1\n"
    )
    (tmp_path / "cluster-10.txt").write_text(f"{thread};poll (django_q/brokers/orm.py:1) 1\n")
    (tmp_path / "cluster-11.txt").write_text(f"{thread};pay (lightning/lnd.py:1) 1\n")
    assert spy.table(tmp_path).splitlines() == [
        "| where | bridge-1 | job cluster (forked) |",
        "|---|---:|---:|",
        "| PostgreSQL driver (psycopg: send, wait, parse) | 75.0 % | 0.0 % |",
        "| LND gRPC client | 0.0 % | 50.0 % |",
        "| django-q2 machinery (broker, pusher, monitor, sentinel) | 0.0 % | 50.0 % |",
        f"| {spy.OTHER} | 25.0 % | 0.0 % |",
        "| samples | 4 | 2 |",
    ]
