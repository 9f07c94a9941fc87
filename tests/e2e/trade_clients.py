"""Trade end-to-end support: a real node, a real relay, simnet wallets and nostr-sdk traders.

Used by `tests/e2e/test_trade*.py` and `benchmarks/bench_trades.py`.

* `TradeNetwork`: everything a trade needs, started as real processes — nostr-sdk's LocalRelay
  (`tests.relays.local_relay.LocalRelayProcess`), the simulated Lightning network
  (`manage.py simnet`), a price API and two LNURL-pay servers on 127.0.0.1, and the node itself
  (`manage.py mostrod`: web, relay bridge, invoice watcher and the django-q2 cluster) on its own
  SQLite file, with its environment pointing at all of them.
* `Trader`: one simulated Mostro user: an identity key, a trade key per trade index, a simnet
  wallet. Requests are built the way a mostro-core client builds them: the message JSON, the
  trade signature and the identity proof by our protocol package's canonical serializer; the
  NIP-44 v2 encryption by nostr-sdk (`nip44_encrypt`), the kind-14 event signed by nostr-sdk's
  `EventBuilder(...).finalize(keys)` and sent by nostr-sdk's `Client`. Replies arrive on a
  nostr-sdk relay subscription and are decrypted with `nip44_decrypt`.
* `RelayConnection`: one nostr-sdk `Client` that several traders may share (the benchmark puts
  hundreds of traders on a few connections); it routes node replies by their `p` tag and keeps
  every revision of the node's order (38383) and rating (38384) events as they arrive.
  `WsRelayConnection` is the same with a plain websocket for the relay I/O (the benchmark's
  default: nostr-sdk still encrypts, signs and decrypts).
* `Wallet`: a simnet node driven by the production `LndClient` (`send_payment`, `add_invoice`),
  or, for the benchmark, by the same RPCs over its grpc.aio channel (a hold-invoice payment stays
  in flight until the release: a thread per payment would not scale to hundreds of escrows).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import nostr_sdk as sdk

from lightning import lnd_convert
from lightning.grpc import lightning_pb2 as ln
from lightning.grpc import router_pb2
from lightning.lnd import LndClient
from lightning.types import PaymentOutcome
from nostrbridge.node_identity import xonly_pubkey_hex
from nostrbridge.protocol.enums import Action, MessageType
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import PaymentRequestPayload
from nostrbridge.protocol.transport import encode_content, sign_identity_proof, sign_message
from tests.lightning.simnet_fixture import SimnetHandle, start_simnet
from tests.orders.price_server import PriceServer
from tests.relays.local_relay import LocalRelayProcess
from tests.relays.net import REPO_ROOT, free_port

logger = logging.getLogger(__name__)

ORDER_KIND, RATING_KIND, DM_KIND = 38383, 38384, 14
BANNER = "Mostro node is running"
NODE_START_TIMEOUT_S = 90.0
DEFAULT_TIMEOUT_S = 20.0
# Simnet nodes of a trade network: the node, the two traders' wallets and the development fund.
TRADE_NODES = ("mostro", "alice", "bob", "devfund")


# -- the node as a child process ---------------------------------------------------------------
def node_env(*, var_dir: Path, nsec_hex: str, relay_url: str, simnet: SimnetHandle, **extra: str) -> dict[str, str]:
    """The environment of a `manage.py mostrod` pointing at this relay and simnet's mostro node."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("MOSTRO_", "LND_", "DJANGO_"))}
    for name in ("DATABASE_URL", "REDIS_URL", "LIGHTNING_BACKEND"):
        keep.pop(name, None)
    env = {
        **keep,
        **{name: str(value) for name, value in simnet.lnd_settings("mostro").items()},
        "DJANGO_SETTINGS_MODULE": "mostro_site.settings.local",
        "DJANGO_DEBUG": "0",  # DEBUG keeps every SQL query in memory
        "MOSTRO_VAR_DIR": str(var_dir),
        "MOSTRO_ENV_FILE": str(var_dir / "no.env"),  # never the project's .env
        "MOSTRO_NSEC_PRIVKEY": nsec_hex,
        "MOSTRO_RELAYS": relay_url,
        "MOSTRO_LOG_LEVEL": "WARNING",
        "MOSTRO_LNURL_ALLOW_LOOPBACK": "true",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


# `python -c` sets the parent-death signal (SIGTERM when the test run dies, so an aborted run
# leaves no node behind) in the child itself, then execs the command in the same process. Not a
# `preexec_fn`: with one, subprocess forks (instead of vfork) and gRPC's fork handlers run in the
# child; forking while a wallet's gRPC poller waits (an escrow in flight) hung or crashed the child
# before exec ("epoll_wait error: Bad file descriptor", seen in the e2e tests under load). As with
# the preexec_fn it replaces, the signal follows the *thread* that started the child: start a node
# this way only from a thread that outlives it (not from `asyncio.to_thread` in a test).
DIE_WITH_PARENT = [
    sys.executable,
    "-c",
    "import ctypes, os, signal, sys; ctypes.CDLL('libc.so.6').prctl(1, signal.SIGTERM); "
    "os.execv(sys.argv[1], sys.argv[1:])",
]


class NodeProcess:
    """`manage.py mostrod` (web + bridge + watcher + job cluster) on its own SQLite file.

    `command_prefix` runs it under another program (benchmarks/bench_instr.py: valgrind), which
    may need longer than NODE_START_TIMEOUT_S to print the banner: `start_timeout_s`."""

    def __init__(
        self,
        env: dict[str, str],
        workdir: Path,
        *,
        port: int | None = None,
        command_prefix: Sequence[str] = (),
        start_timeout_s: float = NODE_START_TIMEOUT_S,
    ) -> None:
        self.env = env
        self.workdir = workdir
        self.port = port or free_port()
        self.command_prefix = tuple(command_prefix)
        self.start_timeout_s = start_timeout_s
        self.log_path = workdir / "mostrod.log"
        self.proc: subprocess.Popen | None = None

    @property
    def db_path(self) -> Path:
        return Path(self.env["MOSTRO_VAR_DIR"]) / "mostro.sqlite3"

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def shell(self, code: str, *, timeout_s: float = 60.0) -> str:
        """Run Python in a `manage.py shell` with the node's settings (its database, its LND)."""
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py shell failed:\n{done.stdout}\n{done.stderr[-3000:]}")
        return done.stdout

    def prepare(self) -> None:
        """Migrate and load the first prices (the node's own refresh job only runs every few minutes)."""
        self.shell(
            "from django.core.management import call_command; call_command('migrate', verbosity=0); "
            "from orders.pricing.refresh import refresh_prices; print(refresh_prices())"
        )

    def start(self, *args: str) -> None:
        command = [sys.executable, "manage.py", "mostrod", "--port", str(self.port), "--no-migrate", "--grace", "5"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*DIE_WITH_PARENT, *self.command_prefix, *command, *args], cwd=REPO_ROOT, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + self.start_timeout_s
        while BANNER not in self.output:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mostrod did not start:\n{self.output[-4000:]}")
            time.sleep(0.1)

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (the node stops its cluster and bridge in order), SIGKILL to the group if stuck."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        try:  # forked job-cluster children left behind by a crash
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.proc.returncode

    def run_job(self, dotted: str) -> Any:
        """One tick of a scheduled job, run in a separate process as the job cluster would.

        django-q2 schedules have a one-minute resolution (checked every 30 s); tests use this to
        play the scheduler's clock instead of waiting for it. Jobs are sweeps guarded per order,
        so a tick that coincides with the cluster's own does each change once.
        """
        module, func = dotted.rsplit(".", 1)
        out = self.shell(f"import json; from {module} import {func}; print('RESULT', json.dumps({func}()))")
        line = next(line for line in out.splitlines() if line.startswith("RESULT "))
        return json.loads(line.removeprefix("RESULT "))

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with sqlite3.connect(self.db_path, timeout=30) as db:
            return db.execute(sql, params).fetchall()


# -- HTTP servers on 127.0.0.1 -------------------------------------------------------------------
class _LnurlHandler(BaseHTTPRequestHandler):
    server: _LnurlHttpServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        parts = urlsplit(self.path)
        service = self.server.service
        if parts.path == f"/.well-known/lnurlp/{service.user}":
            body = service.pay_request()
        elif parts.path == f"/lnurlp/{service.user}/callback":
            query = parse_qs(parts.query)
            body = service.callback(int(query["amount"][0]), query.get("comment", [None])[0])
        else:
            body = {"status": "ERROR", "reason": "not found"}
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class _LnurlHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    service: LnurlPayServer


class LnurlPayServer:
    """A Lightning address `user@127.0.0.1:PORT` (LUD-16 → LUD-06 payRequest) whose callback
    mints a real invoice of a simnet node for the requested amount; every callback is recorded."""

    def __init__(self, user: str, mint: Callable[[int], str]) -> None:
        self.user = user
        self.mint = mint
        self.callbacks: list[tuple[int, str | None, str]] = []  # (amount_msat, comment, invoice)
        self._lock = threading.Lock()
        self._httpd = _LnurlHttpServer(("127.0.0.1", 0), _LnurlHandler)
        self._httpd.service = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def address(self) -> str:
        return f"{self.user}@{self.url.removeprefix('http://')}"

    def pay_request(self) -> dict:
        return {
            "tag": "payRequest",
            "callback": f"{self.url}/lnurlp/{self.user}/callback",
            "minSendable": 1_000,
            "maxSendable": 10**11,
            "metadata": json.dumps([["text/plain", f"pay {self.user}"]]),
            "commentAllowed": 255,
        }

    def callback(self, amount_msat: int, comment: str | None) -> dict:
        invoice = self.mint(amount_msat // 1000)
        with self._lock:
            self.callbacks.append((amount_msat, comment, invoice))
        return {"pr": invoice, "routes": []}

    def start(self) -> LnurlPayServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# -- wallets ---------------------------------------------------------------------------------
class Wallet:
    """A simnet node driven by the production `LndClient`; balances from the control endpoint (msat).

    `threaded` (the end-to-end tests): invoices and payments are `LndClient.add_invoice` /
    `LndClient.send_payment`, each in a worker thread, exactly as the node's own code calls LND.
    Otherwise (the benchmark) the same RPCs go over the client's grpc.aio channel, so hundreds of
    escrow payments can wait for their release without a thread each.
    """

    def __init__(self, simnet: SimnetHandle, name: str, *, threaded: bool = True) -> None:
        self.name = name
        self.simnet = simnet
        self.threaded = threaded
        self.client: LndClient = simnet.client(name)

    def balance_msat(self) -> int:
        return self.simnet.control.balance_msat(self.name)

    def _aio(self):
        return self.client._aio_stubs(), self.client._target.metadata  # noqa: SLF001 - test harness

    async def invoice(self, amount_sats: int, memo: str = "") -> str:
        if self.threaded:
            created = await asyncio.to_thread(self.client.add_invoice, amount_sats=amount_sats, memo=memo)
            return created.payment_request
        stubs, metadata = self._aio()
        response = await stubs.lightning.AddInvoice(ln.Invoice(value=amount_sats, memo=memo), metadata=metadata)
        return response.payment_request

    async def pay(self, payment_request: str, *, timeout_s: int = 600, max_fee_sats: int = 1_000) -> PaymentOutcome:
        """SendPaymentV2 until a final state (a hold invoice: until settled or canceled)."""
        if self.threaded:
            return await asyncio.to_thread(
                self.client.send_payment,
                payment_request=payment_request,
                max_fee_sats=max_fee_sats,
                timeout_seconds=timeout_s,
            )
        stubs, metadata = self._aio()
        request = router_pb2.SendPaymentRequest(
            payment_request=payment_request, fee_limit_sat=max_fee_sats, timeout_seconds=timeout_s
        )
        call = stubs.router.SendPaymentV2(request, metadata=metadata)
        outcome = None
        async for payment in call:
            outcome = lnd_convert.payment_outcome(payment)
            if outcome.status.is_final:
                break
        call.cancel()
        return outcome

    async def payments(self) -> list[ln.Payment]:
        """Every payment this node made (ListPayments, incomplete ones included)."""
        stubs, metadata = self._aio()
        found: list[ln.Payment] = []
        offset = 0
        while True:
            page = await stubs.lightning.ListPayments(
                ln.ListPaymentsRequest(include_incomplete=True, index_offset=offset, max_payments=10_000),
                metadata=metadata,
            )
            found.extend(page.payments)
            if len(page.payments) < 10_000:
                return found
            offset = page.last_index_offset

    async def invoices(self) -> list[ln.Invoice]:
        stubs, metadata = self._aio()
        found: list[ln.Invoice] = []
        offset = 0
        while True:
            page = await stubs.lightning.ListInvoices(
                ln.ListInvoiceRequest(index_offset=offset, num_max_invoices=10_000), metadata=metadata
            )
            found.extend(page.invoices)
            if len(page.invoices) < 10_000:
                return found
            offset = page.last_index_offset

    async def aclose(self) -> None:
        await self.client.aclose()


# -- the whole network -------------------------------------------------------------------------
@dataclass
class TradeNetwork:
    workdir: Path
    relay: LocalRelayProcess
    simnet: SimnetHandle
    prices: PriceServer
    devfund: LnurlPayServer
    buyer_address: LnurlPayServer
    node: NodeProcess
    nsec_hex: str
    node_pubkey: str
    wallets: dict[str, Wallet] = field(default_factory=dict)
    start_balances: dict[str, int] = field(default_factory=dict)  # msat per simnet node, when ready

    @property
    def relay_url(self) -> str:
        return self.relay.url

    def wallet(self, name: str, *, threaded: bool = True) -> Wallet:
        key = f"{name}:{'threads' if threaded else 'aio'}"
        if key not in self.wallets:
            self.wallets[key] = Wallet(self.simnet, name, threaded=threaded)
        return self.wallets[key]

    def balances_msat(self) -> dict[str, int]:
        return {name: node["balance_msat"] for name, node in self.simnet.control.state()["nodes"].items()}

    def set_relays(self, urls: list[str]) -> None:
        """The operator's settings page: the relay list (the bridge follows it within seconds)."""
        self.node.shell(
            "from mostro_site.operator.services import node_settings_update; "
            f"node_settings_update(user=None, values={{'relays': {','.join(urls)!r}}})"
        )

    def relay_connected(self, url: str) -> bool:
        """The node's bridge reports `url` connected (its relay-health row)."""
        rows = self.node.query("SELECT connected FROM nostrbridge_relayhealth WHERE relay_url LIKE ?", (url + "%",))
        return rows == [(1,)]

    def stop(self) -> None:
        for step in (self.node.stop, self.relay.kill, self.prices.stop, self.devfund.stop, self.buyer_address.stop):
            try:
                step()
            except Exception:  # noqa: BLE001 - best effort: stop everything else
                pass
        self.simnet.stop()


def start_trade_network(
    workdir: Path,
    *,
    prices: dict[str, float],
    nodes: tuple[str, ...] = TRADE_NODES,
    simnet_args: tuple[str, ...] = ("--fee-base-msat", "0", "--fee-ppm", "0"),
    node_args: tuple[str, ...] = (),
    buyer_wallet: str = "bob",
    node_factory: Callable[[dict[str, str], Path], NodeProcess] = NodeProcess,
    **env: str,
) -> TradeNetwork:
    """Start relay, simnet, price API, LNURL servers and the node; returns when the node serves.

    `env` overrides node settings (e.g. MOSTRO_FEE="0.006"). The development fund's Lightning
    address pays into simnet's `devfund` node and `buyer_address` (user `buyer`) into
    `buyer_wallet`, so every satoshi the node sends lands on a node whose balance we read.
    `node_factory(env, workdir)` makes the node (default: one `manage.py mostrod`; the benchmark's
    `--postgres` passes `tests.e2e.node_processes.SplitNode`).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    started: list[Callable[[], Any]] = []
    try:
        relay = LocalRelayProcess()
        relay.start()
        started.append(relay.kill)
        simnet = start_simnet(workdir / "simnet", nodes, *simnet_args)
        started.append(simnet.stop)
        price_server = PriceServer().start()
        started.append(price_server.stop)
        price_server.set_json("/exrates/BTC", {"BTC": prices, "base": "BTC", "timestamp": int(time.time())})
        fund_client, buyer_client = simnet.client("devfund"), simnet.client(buyer_wallet)
        devfund = LnurlPayServer(
            "devfund", lambda sats: fund_client.add_invoice(amount_sats=sats, memo="dev fund").payment_request
        ).start()
        started.append(devfund.stop)
        buyer_address = LnurlPayServer(
            "buyer", lambda sats: buyer_client.add_invoice(amount_sats=sats, memo="payout").payment_request
        ).start()
        started.append(buyer_address.stop)
        nsec_hex = os.urandom(32).hex()
        var_dir = workdir / "var"
        var_dir.mkdir(parents=True, exist_ok=True)
        settings = {
            "MOSTRO_BITCOIN_PRICE_API_URL": price_server.url,
            "MOSTRO_DEV_FEE_LIGHTNING_ADDRESS": devfund.address,
            "MOSTRO_FIAT_CURRENCIES_ACCEPTED": ",".join(prices),
            **env,
        }
        node = node_factory(
            node_env(var_dir=var_dir, nsec_hex=nsec_hex, relay_url=relay.url, simnet=simnet, **settings), workdir
        )
        node.prepare()
        node.start(*node_args)
    except BaseException:
        for stop in reversed(started):
            stop()
        raise
    network = TradeNetwork(
        workdir=workdir,
        relay=relay,
        simnet=simnet,
        prices=price_server,
        devfund=devfund,
        buyer_address=buyer_address,
        node=node,
        nsec_hex=nsec_hex,
        node_pubkey=xonly_pubkey_hex(bytes.fromhex(nsec_hex)),
    )
    network.start_balances = network.balances_msat()
    return network


# -- nostr-sdk traders -------------------------------------------------------------------------
@dataclass
class Received:
    """One node reply as a trader's client decrypted it."""

    recipient: str  # trade pubkey hex
    key_index: int
    body: dict  # the message's inner object: version, request_id, trade_index, id, action, payload
    message: Message  # the same, parsed by our protocol package (typed payloads)
    event: dict  # the kind-14 event
    at: float  # time.monotonic() of arrival

    @property
    def action(self) -> str:
        return self.body["action"]

    @property
    def payload(self) -> Any:
        return self.body.get("payload")

    @property
    def order(self) -> dict:
        return self.body["payload"]["order"]


@dataclass
class PublishedEvent:
    kind: int
    created_at: int
    tags: list[list[str]]
    content: str
    event_id: str
    at: float

    def tag(self, name: str) -> list[str] | None:
        return next((t[1:] for t in self.tags if t and t[0] == name), None)

    def tag_value(self, name: str) -> str | None:
        values = self.tag(name)
        return values[0] if values else None


class RelayConnection:
    """One nostr-sdk client on the relay; routes node DMs to traders by `p` tag and records every
    order (38383) and rating (38384) revision the node publishes, in arrival order."""

    SUBSCRIBE_CHUNK = 250  # pubkeys per REQ filter

    def __init__(self, relay_url: str, node_pubkey: str) -> None:
        self.relay_url = relay_url
        self.node_pubkey = node_pubkey
        self.node = sdk.PublicKey.parse(node_pubkey)
        self.routes: dict[str, tuple[Trader, int]] = {}
        self.order_events: dict[str, list[PublishedEvent]] = defaultdict(list)
        self.rating_events: list[PublishedEvent] = []
        self._seen: set[str] = set()
        self.errors: list[str] = []
        self._changed = asyncio.Event()
        self.client: sdk.Client | None = None
        self._reader: asyncio.Task | None = None

    async def connect(self, *, book: bool = False) -> RelayConnection:
        self.client = sdk.ClientBuilder().notification_channel_size(200_000).build()
        await self.client.add_relay(sdk.RelayUrl.parse(self.relay_url))
        await self.client.connect()
        deadline = time.monotonic() + 10
        while True:
            relays = await self.client.relays()
            if relays and all(r.status() == sdk.RelayStatus.CONNECTED for r in relays.values()):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"nostr-sdk client could not connect to {self.relay_url}")
            await asyncio.sleep(0.02)
        self._reader = asyncio.create_task(self._read(self.client.notifications()))
        if book:
            # Live revisions only: the relay keeps just the latest revision of each order anyway.
            live = sdk.Timestamp.from_secs(int(time.time()))
            book_filter = sdk.Filter().kinds([sdk.Kind(ORDER_KIND), sdk.Kind(RATING_KIND)]).author(self.node)
            await self.client.subscribe(sdk.ReqTarget.auto([book_filter.since(live)]))
        return self

    async def watch(self, keys: list[tuple[Trader, int, sdk.Keys]]) -> None:
        """Subscribe to the node's DMs for these trade keys (as `{"kinds":[14],"authors":[node],"#p":[…]}`)."""
        fresh = []
        for trader, index, keys_ in keys:
            hex_key = keys_.public_key().to_hex()
            if hex_key not in self.routes:
                self.routes[hex_key] = (trader, index)
                fresh.append(keys_.public_key())
        for start in range(0, len(fresh), self.SUBSCRIBE_CHUNK):
            chunk = fresh[start : start + self.SUBSCRIBE_CHUNK]
            dm_filter = sdk.Filter().kind(sdk.Kind(DM_KIND)).author(self.node).pubkeys(chunk)
            await self.client.subscribe(sdk.ReqTarget.auto([dm_filter]))

    async def send(self, event: sdk.Event) -> None:
        output = await self.client.send_event(event)
        if not output.success:
            raise RuntimeError(f"relay refused {event.id().to_hex()[:12]}: {output.failed}")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.client is not None:
            await self.client.shutdown()

    async def _read(self, stream: sdk.ClientNotificationStream) -> None:
        while (note := await stream.next()) is not None:
            if note.is_new_event():
                try:
                    self._on_event(note.event)
                except Exception as exc:  # noqa: BLE001 - a reader that dies would hide every later reply
                    self.errors.append(repr(exc))
                    logger.exception("trade client: cannot read event")

    def _on_event(self, event: sdk.Event) -> None:
        self.route(json.loads(event.as_json()), time.monotonic())

    def route(self, event: dict, arrived: float) -> None:
        """A node event: a DM goes to the trader owning its `p` key, 38383/38384 to the book."""
        event_id = event["id"]
        if event_id in self._seen or event["pubkey"] != self.node_pubkey:
            return
        self._seen.add(event_id)
        kind = event["kind"]
        if kind == DM_KIND:
            recipient = next((t[1] for t in event["tags"] if t and t[0] == "p"), "")
            route = self.routes.get(recipient)
            if route is not None:
                route[0].deliver(event, recipient, route[1], arrived)
            return
        published = PublishedEvent(
            kind=kind,
            created_at=event["created_at"],
            tags=event["tags"],
            content=event["content"],
            event_id=event_id,
            at=arrived,
        )
        if kind == ORDER_KIND:
            self.order_events[published.tag_value("d")].append(published)
        elif kind == RATING_KIND:
            self.rating_events.append(published)
        self._changed.set()

    # -- the published book --------------------------------------------------------------------
    def statuses(self, order_id: str) -> list[str]:
        """The `s` tag of every revision of the order seen so far, oldest first."""
        revisions = sorted(self.order_events.get(str(order_id), []), key=lambda e: e.created_at)
        return [e.tag_value("s") for e in revisions]

    def revisions(self, order_id: str) -> list[PublishedEvent]:
        return sorted(self.order_events.get(str(order_id), []), key=lambda e: e.created_at)

    async def wait_statuses(self, order_id: str, count: int, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[str]:
        """The order's `s` sequence once `count` revisions arrived (or what came by the timeout)."""
        async with asyncio.timeout(timeout_s):
            while len(self.statuses(order_id)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.statuses(order_id)

    async def wait_ratings(self, count: int, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[PublishedEvent]:
        async with asyncio.timeout(timeout_s):
            while len(self.rating_events) < count:
                self._changed.clear()
                await self._changed.wait()
        return list(self.rating_events)


class WsRelayConnection(RelayConnection):
    """The same client side with a plain websocket as transport (the benchmark's default).

    nostr-sdk still builds, encrypts, signs and decrypts every message; only the relay I/O is
    `websockets`: nostr-sdk's async Client costs ~1.8 ms of CPU per round trip through its Python
    bindings' future polling (docs/PERFORMANCE.md, relay bridge), CPU the benchmark would take
    from the node under test on two cores. Incoming events are checked by the relay only.
    """

    ROTATE_AFTER_EVENTS = 5_000  # nostr-sdk 0.45's LocalRelay drops a connection after 6,000 EVENTs

    async def connect(self, *, book: bool = False) -> WsRelayConnection:
        from websockets.asyncio.client import connect as ws_connect

        self._connect = lambda: ws_connect(self.relay_url, max_size=None, max_queue=None)
        self._rx = await self._connect()
        self._tx = await self._connect()
        self._tx_sent = 0
        self._retired: list[asyncio.Task] = []
        self._subs = itertools.count(1)
        self._oks: dict[str, asyncio.Future] = {}
        self._tx_reader = asyncio.create_task(self._read_oks(self._tx))
        self._reader = asyncio.create_task(self._read_rx())
        if book:
            await self._req(
                {"kinds": [ORDER_KIND, RATING_KIND], "authors": [self.node_pubkey], "since": int(time.time())}
            )
        return self

    async def _req(self, query: dict) -> None:
        await self._rx.send(json.dumps(["REQ", f"s{next(self._subs)}", query]))

    async def watch(self, keys: list[tuple[Trader, int, sdk.Keys]]) -> None:
        fresh = []
        for trader, index, keys_ in keys:
            hex_key = keys_.public_key().to_hex()
            if hex_key not in self.routes:
                self.routes[hex_key] = (trader, index)
                fresh.append(hex_key)
        for start in range(0, len(fresh), self.SUBSCRIBE_CHUNK):
            chunk = fresh[start : start + self.SUBSCRIBE_CHUNK]
            await self._req({"kinds": [DM_KIND], "authors": [self.node_pubkey], "#p": chunk})

    async def send(self, event: sdk.Event) -> None:
        if self._tx_sent >= self.ROTATE_AFTER_EVENTS:
            old, old_reader = self._tx, self._tx_reader
            self._tx = await self._connect()
            self._tx_reader = asyncio.create_task(self._read_oks(self._tx))
            self._tx_sent = 0
            self._retired.append(asyncio.create_task(self._retire(old, old_reader)))
        self._tx_sent += 1
        ok = asyncio.get_running_loop().create_future()
        event_id = event.id().to_hex()
        self._oks[event_id] = ok
        await self._tx.send(f'["EVENT",{event.as_json()}]')
        accepted, message = await asyncio.wait_for(ok, 30)
        if not accepted:
            raise RuntimeError(f"relay refused {event_id[:12]}: {message}")

    @staticmethod
    async def _retire(socket, reader: asyncio.Task) -> None:
        await asyncio.sleep(5)  # OKs of the last events sent on it
        reader.cancel()
        await socket.close()

    async def _read_oks(self, socket) -> None:
        async for raw in socket:
            frame = json.loads(raw)
            if frame[0] == "OK":
                ok = self._oks.pop(frame[1], None)
                if ok is not None and not ok.done():
                    ok.set_result((bool(frame[2]), frame[3] if len(frame) > 3 else ""))

    async def _read_rx(self) -> None:
        async for raw in self._rx:
            arrived = time.monotonic()
            frame = json.loads(raw)
            if frame[0] == "EVENT":
                try:
                    self.route(frame[2], arrived)
                except Exception as exc:  # noqa: BLE001 - see RelayConnection._read
                    self.errors.append(repr(exc))
                    logger.exception("trade client: cannot read event")

    async def close(self) -> None:
        for task in (self._reader, self._tx_reader, *self._retired):
            task.cancel()
        await self._rx.close()
        await self._tx.close()


class UnexpectedReply(AssertionError):
    pass


_request_ids = itertools.count(1)


class Trader:
    """A Mostro user in reputation mode: identity key + one trade key per trade index."""

    def __init__(
        self, name: str, conn: RelayConnection, wallet: Wallet | None = None, *, identity: sdk.Keys | None = None
    ) -> None:
        """`identity`: the same user on another node (one identity key for every node)."""
        self.name = name
        self.conn = conn
        self.wallet = wallet
        self.identity = identity or sdk.Keys.generate()
        self._identity_ours = Keys(bytes.fromhex(self.identity.secret_key().to_hex()))
        self.identity_hex = self._identity_ours.public_key_hex
        self.last_trade_index = 0
        self.keys: dict[int, sdk.Keys] = {}
        self._ours: dict[int, Keys] = {}
        self.inbox: list[Received] = []
        self.history: list[Received] = []
        self.sent: list[int] = []  # the request_id of every request sent, in order
        self._arrived = asyncio.Event()

    # -- keys ---------------------------------------------------------------------------------
    def key(self, index: int) -> sdk.Keys:
        if index not in self.keys:
            keys = sdk.Keys.generate()
            self.keys[index] = keys
            self._ours[index] = Keys(bytes.fromhex(keys.secret_key().to_hex()))
        return self.keys[index]

    def pubkey(self, index: int) -> str:
        return self.key(index).public_key().to_hex()

    def pending_keys(self, upto: int) -> list[tuple[Trader, int, sdk.Keys]]:
        return [(self, index, self.key(index)) for index in range(1, upto + 1)]

    async def start(self, keys: int = 4) -> Trader:
        """Subscribe to the replies of trade keys 1..keys (more on demand with `watch_key`)."""
        await self.conn.watch(self.pending_keys(keys))
        return self

    async def watch_key(self, index: int) -> None:
        await self.conn.watch([(self, index, self.key(index))])

    def next_trade_index(self) -> int:
        """The index of the next trade key: strictly above the last one the node stored."""
        self.last_trade_index += 1
        return self.last_trade_index

    # -- requests -----------------------------------------------------------------------------
    def build(
        self,
        action: Action,
        *,
        key: int,
        order_id: Any = None,
        payload: Any = None,
        trade_index: int | None = None,
        request_id: int | None = None,
        type: MessageType = MessageType.ORDER,
    ) -> tuple[int, sdk.Event]:
        request_id = next(_request_ids) if request_id is None else request_id
        message = Message.new(
            action, type=type, request_id=request_id, trade_index=trade_index, id=order_id, payload=payload
        )
        message_json = message.to_json()
        self.key(key)
        trade = self._ours[key]
        trade_sig = sign_message(message_json, trade)
        proof = (self.identity_hex, sign_identity_proof(message_json, trade.public_key_hex, self._identity_ours))
        plaintext = encode_content(message_json, trade_sig, proof, arity=3)
        sdk_keys = self.keys[key]
        content = sdk.nip44_encrypt(sdk_keys.secret_key(), self.conn.node, plaintext, sdk.Nip44Version.V2)
        tags = [
            sdk.Tag.parse(["p", self.conn.node_pubkey]),
            sdk.Tag.parse(["expiration", str(int(time.time()) + 3_600)]),
        ]
        return request_id, sdk.EventBuilder(sdk.Kind(DM_KIND), content).tags(tags).finalize(sdk_keys)

    async def send(self, action: Action, *, key: int, **fields: Any) -> int:
        """Send one request from trade key `key`; returns its request_id."""
        request_id, event = self.build(action, key=key, **fields)
        self.sent.append(request_id)
        await self.conn.send(event)
        return request_id

    # -- replies ------------------------------------------------------------------------------
    def deliver(self, event: dict, recipient: str, index: int, arrived: float) -> None:
        plaintext = sdk.nip44_decrypt(self.keys[index].secret_key(), self.conn.node, event["content"])
        content = json.loads(plaintext)
        body = next(iter(content[0].values()))
        received = Received(
            recipient=recipient,
            key_index=index,
            body=body,
            message=Message.from_value(content[0]),
            event=event,
            at=arrived,
        )
        self.inbox.append(received)
        self.history.append(received)
        self._arrived.set()

    def _take(self, match: Callable[[Received], bool]) -> Received | None:
        for position, received in enumerate(self.inbox):
            if match(received):
                return self.inbox.pop(position)
        return None

    async def expect(
        self,
        action: str | Action,
        *,
        key: int | None = None,
        order_id: Any = None,
        where: Callable[[Received], bool] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> Received:
        """The oldest unread reply with `action` (to trade key `key`, about `order_id`, matching
        `where`). A `cant-do` on the same key fails at once with the node's reason."""
        action = action.value if isinstance(action, Action) else action

        def match(r: Received) -> bool:
            return (
                r.action == action
                and (key is None or r.key_index == key)
                and (order_id is None or r.body.get("id") == str(order_id))
                and (where is None or where(r))
            )

        def refused(r: Received) -> bool:
            return action != "cant-do" and r.action == "cant-do" and (key is None or r.key_index == key)

        deadline = time.monotonic() + timeout_s
        while True:
            found = self._take(match)
            if found is not None:
                return found
            refusal = self._take(refused)
            if refusal is not None:
                raise UnexpectedReply(f"{self.name} expected {action}, the node refused: {refusal.body}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                unread = [(r.action, r.key_index) for r in self.inbox]
                raise TimeoutError(f"{self.name} waited {timeout_s:.0f} s for {action} (key {key}); unread: {unread}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue

    async def quiet(self, seconds: float = 0.5) -> list[Received]:
        """Wait a moment and return what arrived unasked (an exact scenario expects nothing)."""
        await asyncio.sleep(seconds)
        return list(self.inbox)


async def sell_with_invoice(
    seller: Trader, buyer: Trader, *, order_id: str, seller_key: int, invoice: str
) -> tuple[int, PaymentOutcome]:
    """The short path of a sell order: `buyer` takes it with its payout invoice, `seller` pays the
    escrow, fiat sent, released, both asked to rate. Returns the buyer's trade key and the escrow
    payment's outcome (settled)."""
    b = buyer.next_trade_index()
    await buyer.send(
        Action.TAKE_SELL, key=b, trade_index=b, order_id=order_id, payload=PaymentRequestPayload(None, invoice, None)
    )
    pay = await seller.expect("pay-invoice", key=seller_key)
    await buyer.expect("waiting-seller-to-pay", key=b)
    escrow = asyncio.create_task(seller.wallet.pay(pay.payload["payment_request"][1]))
    await seller.expect("buyer-took-order", key=seller_key)
    await buyer.expect("hold-invoice-payment-accepted", key=b)
    await buyer.send(Action.FIAT_SENT, key=b, order_id=order_id)
    await buyer.expect("fiat-sent-ok", key=b)
    await seller.expect("fiat-sent-ok", key=seller_key)
    await seller.send(Action.RELEASE, key=seller_key, order_id=order_id)
    for step in ("hold-invoice-payment-settled", "rate"):
        await seller.expect(step, key=seller_key)
    for step in ("released", "purchase-completed", "rate"):
        await buyer.expect(step, key=b)
    return b, await escrow
