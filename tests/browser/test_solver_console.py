"""Browser test: a solver logs in, takes a dispute and settles it (Daphne + Debian chromium).

Daphne runs in a forked process (channels' DaphneProcess) against the test database, with
static files served; the fork inherits the fake Lightning node, so the escrow the test set
up is there and the buyer payout runs inline (django-q sync). Screenshots:
artifacts/browser/solver-sqlite/ (solver-postgresql/ on the PostgreSQL pass).
"""

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from asgiref.sync import SyncToAsync
from channels.layers import channel_layers
from channels.routing import get_default_application
from daphne.testing import DaphneProcess
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.db import connections

from disputes.models import DisputeLog
from orders.models import OrderStatusChange
from tests.disputes.support import disputed_trade
from tests.disputes.web import PASSWORD, make_user

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# A directory per pass (scripts/run_tests.sh runs the SQLite and PostgreSQL passes at once): the
# test empties its own before writing, beside the tour's (artifacts/browser/tour/).
PASS = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
ARTIFACTS = ROOT / "artifacts" / "browser" / f"solver-{PASS}"
CHROMIUM = "/usr/bin/chromium"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _ensure_browser() -> None:
    """Install what is missing (scripts/setup_browser.sh); skip only if chromium cannot be had."""
    if not (HERE / "node_modules" / "playwright-core").is_dir() or not Path(CHROMIUM).exists():
        subprocess.run(["bash", str(ROOT / "scripts" / "setup_browser.sh")], check=False, timeout=600)
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed and could not be installed (needs root + apt-get)")
    if shutil.which("node") is None:
        pytest.skip("node is not available")
    assert (HERE / "node_modules" / "playwright-core").is_dir(), "npm install of playwright-core failed"


def _application(static_wrapper):
    return static_wrapper(get_default_application())


def _after_fork() -> None:
    """The fork copied executor and channel-layer objects without their threads and loops;
    earlier async tests in this process leave them behind, and the child would hang on them."""
    SyncToAsync.single_thread_executor = ThreadPoolExecutor(max_workers=1)
    channel_layers.backends.clear()


@pytest.fixture
def daphne_url():
    connections.close_all()  # the fork must not share the parent's database sockets
    server = DaphneProcess("127.0.0.1", partial(_application, ASGIStaticFilesHandler), setup=_after_fork)
    server.start()
    try:
        assert server.ready.wait(timeout=20), "daphne did not start"
        yield f"http://127.0.0.1:{server.port.value}"
    finally:
        server.terminate()
        server.join(timeout=10)


@pytest.fixture
def dispute_ready(node, fake_ln):
    _ensure_browser()
    trade = disputed_trade(fake_ln)
    make_user("solver", "rw")
    return trade


def test_solver_takes_and_settles_in_the_browser(dispute_ready, daphne_url):
    trade = dispute_ready
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    env = os.environ | {
        "BASE_URL": daphne_url,
        "SOLVER_USER": "solver",
        "SOLVER_PASSWORD": PASSWORD,
        "DISPUTE_ID": str(trade.dispute.id),
        "ARTIFACTS": str(ARTIFACTS),
        "CHROMIUM": CHROMIUM,
    }
    result = subprocess.run(
        ["node", "solver_console.mjs"], cwd=HERE, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    assert seen["stylesheet"]
    assert seen["live_connected"]
    assert seen["invoice_state"] == "ACCEPTED"
    assert "no funds move" in seen["take_confirmation"]
    assert f"Dispute {trade.dispute.id} taken." in seen["after_take"]
    assert seen["queue_live_status"] == "in-progress"
    assert "hold invoice of 7875 sats is settled" in seen["settle_confirmation"]
    assert "is paid 7827 sats" in seen["settle_confirmation"]
    assert f"Dispute {trade.dispute.id} settled to the buyer." in seen["after_settle"]
    assert (seen["order_status"], seen["invoice_state_after"]) == ("success", "SETTLED")

    order, dispute = trade.refresh(), trade.refresh_dispute()
    assert (order.status, dispute.status) == ("success", "settled")
    assert list(OrderStatusChange.objects.filter(order=order).values_list("to_status", "actor"))[-2:] == [
        ("settled-hold-invoice", "admin:solver"),
        ("success", "lightning"),
    ]
    assert list(DisputeLog.objects.filter(dispute=dispute).values_list("action", "actor"))[1:] == [
        ("taken", "admin:solver"),
        ("settled", "admin:solver"),
    ]
    assert sorted(p.name for p in ARTIFACTS.glob("*.png")) == [
        "01-queue.png",
        "02-dispute.png",
        "03-confirm-take.png",
        "04-queue-live-update.png",
        "05-confirm-settle.png",
        "06-settled.png",
    ]
