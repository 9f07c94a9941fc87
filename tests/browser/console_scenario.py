"""The console tour: a real node, a trade that ends in a dispute, the dispute chat, every page.

Shared by `tests/browser/test_console_tour.py` (which asserts on what happened) and
`scripts/screenshots.py` (`make screenshots`, which keeps the pictures in docs/screens/).

* The node is `manage.py mostrod` with nostr-sdk's LocalRelay and the simulated Lightning
  network (`tests.e2e.trade_clients.start_trade_network`); Alice sells to Bob with nostr-sdk
  clients, Bob says the fiat is sent and opens a dispute.
* A solver with a console-held key and an operator are created in the node's database.
* Chromium (`console_tour.mjs`, Playwright) logs in as the solver, takes the dispute, writes to
  both parties, settles; then as the operator visits every page. When it needs the world to
  move (a party to answer, an order to change while a page is open) it prints a step line and
  waits; this module performs the step (nostr-sdk traders and chat parties) and answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from nostrbridge.protocol.enums import Action, Kind, Status
from nostrbridge.protocol.payloads import OrderPayload, PaymentRequestPayload
from nostrbridge.protocol.structs import SmallOrder
from tests.browser.chat_party import BlobServer, ChatParty, image_message, tiny_png
from tests.e2e.trade_clients import RelayConnection, TradeNetwork, Trader, start_trade_network

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"
USD_PRICE = 50_000.0
BUYER_HELLO = "Hello buyer, I am the solver of this dispute. Which bank did you pay from?"
BUYER_REPLY = "Hi! From my Banco Demo account, on Monday. I have the receipt."
SELLER_TEXT = "Nothing arrived on my side, here is my statement."
SELLER_THANKS = "Thank you, I can see it. I am checking with the buyer's receipt."

MAKE_USERS = """
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from disputes.chat.keys import solver_key_create
User = get_user_model()
solver = User.objects.create_user("solver", password={password!r}, is_staff=True)
solver.groups.add(Group.objects.get(name="solver read-write"))
key = solver_key_create(user=solver)
operator = User.objects.create_user("operator", password={password!r}, is_staff=True)
operator.groups.add(Group.objects.get(name="operator"))
print("SOLVER", key.pubkey)
"""


@dataclass
class Tour:
    net: TradeNetwork
    alice: Trader
    bob: Trader
    order_id: str
    dispute_id: str
    solver_pubkey: str
    blobs: BlobServer
    connections: list[RelayConnection] = field(default_factory=list)
    parties: dict[str, ChatParty] = field(default_factory=dict)
    side_order: str | None = None
    log: list[str] = field(default_factory=list)


async def _sell_to_dispute(alice: Trader, bob: Trader) -> str:
    """Alice sells 100 USD at market price to Bob; Bob pays, says fiat sent, opens a dispute."""
    a = alice.next_trade_index()
    order = SmallOrder(
        kind=Kind.SELL, status=Status.PENDING, amount=0, fiat_code="USD", fiat_amount=100,
        payment_method="bank transfer", premium=1,
    )  # fmt: skip
    await alice.send(Action.NEW_ORDER, key=a, trade_index=a, payload=OrderPayload(order))
    order_id = (await alice.expect("new-order", key=a)).body["id"]
    b = bob.next_trade_index()
    await bob.send(Action.TAKE_SELL, key=b, trade_index=b, order_id=order_id)
    ask = await bob.expect("add-invoice", key=b)
    invoice = await bob.wallet.invoice(ask.order["amount"], "payout")
    await bob.send(Action.ADD_INVOICE, key=b, order_id=order_id, payload=PaymentRequestPayload(None, invoice, None))
    await alice.expect("pay-invoice", key=a, where=lambda r: "peer" in (r.payload or {}))
    hold = (await alice.expect("pay-invoice", key=a)).payload["payment_request"][1]
    alice.escrow = asyncio.create_task(alice.wallet.pay(hold))
    await bob.expect("hold-invoice-payment-accepted", key=b)
    await bob.send(Action.FIAT_SENT, key=b, order_id=order_id)
    await bob.expect("fiat-sent-ok", key=b)
    await bob.send(Action.DISPUTE, key=b, order_id=order_id)
    await bob.expect("dispute-initiated-by-you", key=b)
    await alice.expect("dispute-initiated-by-peer", key=a)
    alice.trade_key, bob.trade_key = a, b
    return order_id


async def start_tour(workdir: Path) -> Tour:
    net = start_trade_network(workdir, prices={"USD": USD_PRICE}, MOSTRO_FEE="0.006", MOSTRO_NAME="Demo Mostro")
    try:
        out = net.node.shell(MAKE_USERS.format(password=PASSWORD))
        solver = next(line.split()[1] for line in out.splitlines() if line.startswith("SOLVER "))
        connections = [await RelayConnection(net.relay_url, net.node_pubkey).connect() for _ in range(2)]
        alice = await Trader("alice", connections[0], net.wallet("alice")).start()
        bob = await Trader("bob", connections[1], net.wallet("bob")).start()
        order_id = await _sell_to_dispute(alice, bob)
        dispute_id = net.node.query("SELECT id FROM disputes_dispute")[0][0]
    except BaseException:
        net.stop()
        raise
    dispute_id = str(uuid.UUID(dispute_id))
    return Tour(net, alice, bob, order_id, dispute_id, solver, BlobServer(), connections)


async def stop_tour(tour: Tour) -> None:
    for party in tour.parties.values():
        await party.stop()
    if not tour.alice.escrow.done():
        tour.alice.escrow.cancel()
    for connection in tour.connections:
        await connection.close()
    for wallet in tour.net.wallets.values():
        await wallet.aclose()
    tour.blobs.stop()
    tour.net.stop()


# -- the steps the browser asks for ---------------------------------------------------------
async def step_taken(tour: Tour, _: dict) -> dict:
    """The parties learn the solver's key from admin-took-dispute and open their chats."""
    for name, trader in (("buyer", tour.bob), ("seller", tour.alice)):
        took = await trader.expect("admin-took-dispute", key=trader.trade_key)
        announced = took.payload["peer"]["pubkey"]
        party = ChatParty(tour.net.relay_url, trader.key(trader.trade_key), announced)
        tour.parties[name] = await party.start()
        tour.log.append(f"{name} told solver {announced}")
    return {"announced": [p.solver_pubkey for p in tour.parties.values()]}


async def step_buyer_answers(tour: Tour, _: dict) -> dict:
    buyer = tour.parties["buyer"]
    await buyer.wait_for(BUYER_HELLO)
    await buyer.send(BUYER_REPLY)
    return {}


async def step_seller_writes(tour: Tour, _: dict) -> dict:
    seller = tour.parties["seller"]
    await seller.send(SELLER_TEXT)
    png = tiny_png()
    blob = seller.encrypt_file(png)
    url = tour.blobs.put("statement-blob", blob)
    await seller.send(image_message(url, filename="statement.png", png=png, encrypted_size=len(blob)))
    return {"image_bytes": len(png)}


async def step_seller_thanked(tour: Tour, _: dict) -> dict:
    await tour.parties["seller"].wait_for(SELLER_THANKS)
    return {}


async def step_new_order(tour: Tour, _: dict) -> dict:
    """A second order appears on the book while the orders list is open."""
    a = tour.alice.next_trade_index()
    order = SmallOrder(
        kind=Kind.SELL, status=Status.PENDING, amount=0, fiat_code="USD", fiat_amount=25,
        payment_method="cash", premium=0,
    )  # fmt: skip
    await tour.alice.send(Action.NEW_ORDER, key=a, trade_index=a, payload=OrderPayload(order))
    tour.side_order = (await tour.alice.expect("new-order", key=a)).body["id"]
    tour.alice.side_key = a
    return {"order_id": tour.side_order}


async def step_take_side_order(tour: Tour, _: dict) -> dict:
    b = tour.bob.next_trade_index()
    await tour.bob.send(Action.TAKE_SELL, key=b, trade_index=b, order_id=tour.side_order)
    await tour.bob.expect("add-invoice", key=b)
    tour.bob.side_key = b
    return {}


async def step_cancel_side_order(tour: Tour, _: dict) -> dict:
    await tour.alice.send(Action.CANCEL, key=tour.alice.side_key, order_id=tour.side_order)
    await tour.alice.expect("canceled", key=tour.alice.side_key)
    return {}


STEPS = {
    "taken": step_taken,
    "buyer-answers": step_buyer_answers,
    "seller-writes": step_seller_writes,
    "seller-thanked": step_seller_thanked,
    "new-order": step_new_order,
    "take-side-order": step_take_side_order,
    "cancel-side-order": step_cancel_side_order,
}


async def run_browser(tour: Tour, shots: Path, *, timeout_s: float = 240.0) -> dict:
    """Run console_tour.mjs, answering its steps; returns what it observed (its last line)."""
    await asyncio.to_thread(shutil.rmtree, shots, ignore_errors=True)
    await asyncio.to_thread(shots.mkdir, parents=True)
    env = os.environ | {
        "BASE_URL": f"http://127.0.0.1:{tour.net.node.port}",
        "PASSWORD": PASSWORD,
        "DISPUTE_ID": tour.dispute_id,
        "ORDER_ID": tour.order_id,
        "SHOTS": str(shots),
        "CHROMIUM": CHROMIUM,
        "TEXTS": json.dumps({"buyer_hello": BUYER_HELLO, "buyer_reply": BUYER_REPLY, "seller_text": SELLER_TEXT,
                             "seller_thanks": SELLER_THANKS}),
    }  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        "node", "console_tour.mjs", cwd=HERE, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    last, failure = {}, None
    try:
        async with asyncio.timeout(timeout_s):
            while line := await proc.stdout.readline():
                message = json.loads(line)
                if "step" in message:
                    tour.log.append(f"step {message['step']}")
                    answer = await STEPS[message["step"]](tour, message)
                    proc.stdin.write((json.dumps(answer) + "\n").encode())
                    await proc.stdin.drain()
                else:
                    last = message
            await proc.wait()
    except TimeoutError as exc:
        failure = exc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await proc.stderr.read()).decode(errors="replace")
    if failure is not None or proc.returncode != 0:
        raise RuntimeError(
            f"console_tour.mjs failed ({proc.returncode}, {failure!r}); steps {tour.log}:\n{stderr[-4000:]}\n"
            f"--- node log ---\n{tour.net.node.output[-3000:]}"
        )
    return last
