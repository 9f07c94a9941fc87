"""The fault suite's harness: one trade network per module, faults, recovery and the ledger.

The network is `tests/e2e/trade_clients.py`'s: nostr-sdk's LocalRelay, `manage.py simnet`
(routing fees 0, so balances move by exactly the trades' amounts), a price API, the dev fund's
LNURL server and the node as `manage.py mostrod` on its own SQLite file. A fault is real: the
node SIGKILLed at a named point (`mostro_site/config/faults.py`), the relay process killed,
a simnet node taken offline. After each fault the node is restarted on the same database and
`tests/ledger.py` checks every trade of the module so far, against the balances the network
started with.

Clock play (said where it is used): django-q2 schedules have a one-minute resolution and some
recoveries wait for a grace period on purpose (a payout claim of 30 s, an unseen dev-fee
payment of 300 s). Tests run the same job functions in a separate process with `now` moved
past the grace instead of sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from nostrbridge.protocol.enums import Action, Kind, Status
from nostrbridge.protocol.payloads import OrderPayload, PaymentRequestPayload
from nostrbridge.protocol.structs import SmallOrder
from tests.e2e.trade_clients import (
    BANNER,
    NODE_START_TIMEOUT_S,
    RelayConnection,
    TradeNetwork,
    Trader,
    start_trade_network,
)
from tests.ledger import LedgerReport, TradeRecord, ledger_check, replies_check
from tests.relays.net import REPO_ROOT

FEE_RATE = 0.006
USD_PRICE = 50_000.0
KILL_AT_ENV = "MOSTRO_FAULT_KILL_AT"
DEATH_TIMEOUT_S = 60.0
# A bound, not a wait: after a restart the job cluster starts five processes first, which took
# over 30 s at load 22 (the kill-point payout then failed, and the late payout the module's ledger).
STEP_TIMEOUT_S = 60.0
# A relay or LND outage (default 5 s: the bridge's reconnect backoff starts at 0.1 s and
# doubles; set 60 for the minute).
OUTAGE_S = float(os.environ.get("MOSTRO_CHAOS_OUTAGE_S", "5"))
# Past the payout claim's grace (30 s) and an unseen dev-fee payment's (300 s): clock play.
PAST_GRACE_S = 400
# Every fault module but test_postgres.py: slow, and run on the SQLite pass only (its node runs
# on its own SQLite file either way).
SQLITE_PASS_MARKS = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="same run as the SQLite pass"),
]

_starts = itertools.count(1)


def fee_of(amount: int) -> int:
    return int(FEE_RATE * amount / 2 + 0.5)


# -- the module's network ------------------------------------------------------------------------
def network_fixture(name: str, *, around: Callable[[TradeNetwork], Iterator[None]] | None = None, **env: str) -> Any:
    """The module-scoped `net` fixture every fault module uses: a trade network in a fresh
    directory `name`, USD at `USD_PRICE`, the fee at `FEE_RATE`, `env` the module's own node
    settings. `around(network)`, a generator, wraps the module's tests (extra relays, ...).

        net = network_fixture("chaos-kill", LND_PAYMENT_ATTEMPTS="3")
    """

    @pytest.fixture(scope="module", name="net")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TradeNetwork]:
        network = start_trade_network(
            tmp_path_factory.mktemp(name), prices={"USD": USD_PRICE}, MOSTRO_FEE=str(FEE_RATE), **env
        )
        try:
            if around is None:
                yield network
            else:
                for _ in around(network):
                    yield network
        finally:
            network.stop()

    return fixture


# -- the node's life -------------------------------------------------------------------------------
def start_node(net: TradeNetwork, *, kill_at: str | None = None) -> None:
    """(Re)start mostrod on the same database; `kill_at` arms one kill point for this run."""
    node = net.node
    if kill_at is None:
        node.env.pop(KILL_AT_ENV, None)
    else:
        node.env[KILL_AT_ENV] = kill_at
    # A fresh log per start: the banner is awaited in it.
    node.log_path = net.workdir / f"mostrod-{next(_starts)}.log"
    command = [sys.executable, "manage.py", "mostrod", "--port", str(node.port), "--no-migrate", "--grace", "5"]
    with node.log_path.open("ab") as log:
        # No parent-death signal (DIE_WITH_PARENT): it fires when the *thread* that started the
        # child exits, and the tests start nodes from `asyncio.to_thread`, whose executor thread
        # ends with the test's event loop: the node of one test was SIGTERMed as the next began.
        node.proc = subprocess.Popen(
            command, cwd=REPO_ROOT, env=node.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + NODE_START_TIMEOUT_S
    while BANNER not in node.output:
        if node.proc.poll() is not None or time.monotonic() > deadline:
            node.stop()
            raise RuntimeError(f"mostrod did not start:\n{node.output[-4000:]}")
        time.sleep(0.1)


def restart_node(net: TradeNetwork, *, kill_at: str | None = None) -> None:
    net.node.stop()
    start_node(net, kill_at=kill_at)


def await_kill(net: TradeNetwork, timeout_s: float = DEATH_TIMEOUT_S) -> None:
    """The node reached its kill point: the process is gone with SIGKILL (not a clean exit)."""
    proc = net.node.proc
    try:
        code = proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the node did not reach {net.node.env.get(KILL_AT_ENV)} in {timeout_s:.0f} s") from None
    assert code == -signal.SIGKILL, f"the node exited with {code}:\n{net.node.output[-3000:]}"
    try:  # job-cluster workers of the same group die with it; make sure before the restart
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def node_log_errors(net: TradeNetwork) -> list[str]:
    """Tracebacks in every log of this network's node (each start has its own)."""
    found = []
    for path in sorted(net.workdir.glob("mostrod*.log")):
        text = path.read_text(errors="replace")
        found += [f"{path.name}: {line}" for line in text.splitlines() if "Traceback" in line]
    return found


def run_job(net: TradeNetwork, dotted: str, *, ahead_s: int = 0, kill_at: str | None = None) -> int:
    """One tick of a job in a separate process (its own session), `now` moved `ahead_s` ahead
    (clock play, see the module docstring). Returns the exit code: -9 when it hit `kill_at`."""
    module, func = dotted.rsplit(".", 1)
    code = (
        "from datetime import timedelta; from django.utils import timezone; "
        f"from {module} import {func}; print({func}(now=timezone.now() + timedelta(seconds={ahead_s})))"
    )
    env = dict(net.node.env)
    env.pop(KILL_AT_ENV, None)
    if kill_at:
        env[KILL_AT_ENV] = kill_at
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, start_new_session=True,
    )  # fmt: skip
    if done.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"{dotted} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    return done.returncode


def wait_for(predicate, *, timeout_s: float = STEP_TIMEOUT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def order_status(net: TradeNetwork, order_id: str) -> str:
    [(status,)] = net.node.query("SELECT status FROM orders_order WHERE lower(id) = ?", (order_id.replace("-", ""),))
    return status


class Recovery:
    """Time to recover, from the end of a fault to the trade's end state (docs/RELIABILITY.md).

    Written as one JSON line per fault to `$MOSTRO_CHAOS_FIGURES` when that is set; a figure
    for the docs, never asserted (no timed assertions)."""

    def __init__(self, *, minus_s: float = 0.0) -> None:
        self.started = time.monotonic()
        self.minus_s = minus_s  # a fault that is still going on when the clock starts (LND down)

    def done(self) -> None:
        path = os.environ.get("MOSTRO_CHAOS_FIGURES")
        if path:
            test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
            seconds = round(time.monotonic() - self.started - self.minus_s, 1)
            with open(path, "a") as out:
                out.write(json.dumps({"test": test, "recover_s": seconds}) + "\n")


# -- the ledger of a module ----------------------------------------------------------------------
@dataclass
class Book:
    """Every trade the module's tests made, checked together against the starting balances."""

    net: TradeNetwork
    trades: list[TradeRecord] = field(default_factory=list)
    traders: list[Trader] = field(default_factory=list)

    async def check(self) -> LedgerReport:
        report = await ledger_check(self.net, self.trades, self.net.start_balances)
        report.problems += replies_check(self.traders)
        return report


async def checked(book: Book) -> None:
    """The ledger check of every trade of the module so far: no problem."""
    report = await book.check()
    assert report.problems == [], dump(report)


# -- one sell trade, step by step --------------------------------------------------------------------
@dataclass
class SellTrade:
    seller: Trader
    buyer: Trader
    amount: int
    s: int = 0
    b: int = 0
    order_id: str = ""
    invoice: str = ""
    escrow: asyncio.Task | None = None

    @property
    def fee(self) -> int:
        return fee_of(self.amount)

    def record(self, outcome: str) -> TradeRecord:
        return TradeRecord(self.order_id, self.invoice, self.amount, self.fee, outcome)

    async def publish(self) -> None:
        self.s = self.seller.next_trade_index()
        order = SmallOrder(
            kind=Kind.SELL, status=Status.PENDING, amount=self.amount, fiat_code="USD",
            fiat_amount=max(1, self.amount // 1000), payment_method="bank", premium=0,
        )  # fmt: skip
        await self.seller.send(Action.NEW_ORDER, key=self.s, trade_index=self.s, payload=OrderPayload(order))
        ack = await self.seller.expect("new-order", key=self.s, timeout_s=STEP_TIMEOUT_S)
        self.order_id = ack.body["id"]

    async def send_take(self) -> None:
        self.invoice = await self.buyer.wallet.invoice(self.amount - self.fee)
        self.b = self.buyer.next_trade_index()
        take = PaymentRequestPayload(None, self.invoice, None)
        await self.buyer.send(Action.TAKE_SELL, key=self.b, trade_index=self.b, order_id=self.order_id, payload=take)

    async def expect_taken(self, timeout_s: float = STEP_TIMEOUT_S) -> str:
        """The take's replies; returns the hold invoice the seller is asked to pay."""
        pay = await self.seller.expect("pay-invoice", key=self.s, timeout_s=timeout_s)
        await self.buyer.expect("waiting-seller-to-pay", key=self.b, timeout_s=timeout_s)
        return pay.payload["payment_request"][1]

    def pay(self, hold_invoice: str) -> None:
        """The seller pays the escrow; the payment stays in flight until settled or canceled."""
        self.escrow = asyncio.create_task(self.seller.wallet.pay(hold_invoice))

    async def pay_escrow(self, timeout_s: float = STEP_TIMEOUT_S) -> None:
        self.pay(await self.expect_taken(timeout_s))

    async def expect_active(self, timeout_s: float = STEP_TIMEOUT_S) -> None:
        await self.seller.expect("buyer-took-order", key=self.s, timeout_s=timeout_s)
        await self.buyer.expect("hold-invoice-payment-accepted", key=self.b, timeout_s=timeout_s)

    async def fiat_sent(self) -> None:
        await self.buyer.send(Action.FIAT_SENT, key=self.b, order_id=self.order_id)
        await self.buyer.expect("fiat-sent-ok", key=self.b, timeout_s=STEP_TIMEOUT_S)
        await self.seller.expect("fiat-sent-ok", key=self.s, timeout_s=STEP_TIMEOUT_S)

    async def send_release(self) -> None:
        await self.seller.send(Action.RELEASE, key=self.s, order_id=self.order_id)

    async def expect_released(self, timeout_s: float = STEP_TIMEOUT_S) -> None:
        for action in ("hold-invoice-payment-settled", "rate"):
            await self.seller.expect(action, key=self.s, timeout_s=timeout_s)
        await self.buyer.expect("released", key=self.b, timeout_s=timeout_s)

    async def expect_paid(self, timeout_s: float = STEP_TIMEOUT_S) -> None:
        for action in ("purchase-completed", "rate"):
            await self.buyer.expect(action, key=self.b, timeout_s=timeout_s)
        outcome = await asyncio.wait_for(self.escrow, timeout_s)
        assert outcome.status.value == "SUCCEEDED"

    async def to_active(self) -> None:
        await self.publish()
        await self.send_take()
        await self.pay_escrow()
        await self.expect_active()

    async def complete(self) -> None:
        """From `active`: fiat sent, released, paid."""
        await self.fiat_sent()
        await self.send_release()
        await self.expect_released()
        await self.expect_paid()


async def trading_pair(net: TradeNetwork, book: Book, name: str) -> tuple[Trader, Trader, list[RelayConnection]]:
    """A seller (simnet `alice`) and a buyer (simnet `bob`), fresh identities, a client each.

    Their wallets pay in worker threads (`Wallet(threaded=True)`): a grpc.aio stream open in
    this process while it forks the restarted node crashes gRPC's fork handlers."""
    conns = [await RelayConnection(net.relay_url, net.node_pubkey).connect() for _ in range(2)]
    seller = await Trader(f"{name}-seller", conns[0], net.wallet("alice")).start(keys=8)
    buyer = await Trader(f"{name}-buyer", conns[1], net.wallet("bob")).start(keys=8)
    book.traders += [seller, buyer]
    return seller, buyer, conns


async def close_all(conns: list[RelayConnection]) -> None:
    for conn in conns:
        await conn.close()
        assert conn.errors == []


def dump(report: LedgerReport) -> str:
    return json.dumps({"problems": report.problems, "figures": report.figures}, indent=1, default=str)


def banner_seen(net: TradeNetwork) -> bool:
    return BANNER in net.node.output


# -- the operator's REST API (the calls the console makes) ------------------------------------------
OPERATOR_SETUP = """
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from mostro_site.api.tokens import api_token_create, scopes_for
from mostro_site.staff import OPERATOR_GROUP, ensure_groups
ensure_groups()
user = get_user_model().objects.create_user(username="chaos-operator", password="x" * 24, is_staff=True)
user.groups.add(Group.objects.get(name=OPERATOR_GROUP))
print("KEY", api_token_create(owner=user, name="chaos", scope=scopes_for(user)[-1])[1])
"""


def operator_api_key(net: TradeNetwork) -> str:
    """An operator's API key on this network's node (one per module)."""
    out = net.node.shell(OPERATOR_SETUP)
    return next(line for line in out.splitlines() if line.startswith("KEY ")).removeprefix("KEY ")


def api_post(net: TradeNetwork, key: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{net.node.port}/api{path}", data=json.dumps(body or {}).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
