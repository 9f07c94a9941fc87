"""`user-info` and reputation portability end to end (docs/PROTOCOL.md §User-info, §Reputation), over a
real relay with nostr-sdk clients and two real nodes.

Node A (`manage.py mostrod` on simnet's `mostro`) exports with its dedicated issuer key; node B
(a second `mostrod` process, its own SQLite file, simnet's `mostro2`) imports and trusts A's
issuer key under the name “node-a”. Bob's reputation on A comes from two real trades rated by
Alice; Carol's eligibility on A (10 completed trades, 5 ratings) is written to A's database, since
ten more trades would cost minutes: her export and import then travel over the relay.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import nostr_sdk as sdk
import pytest

from nostrbridge.node_identity import xonly_pubkey_hex
from nostrbridge.protocol.enums import Action, Kind, MessageType, Status
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.payloads import (
    OrderPayload,
    RatingUserPayload,
    ReputationAttestationPayload,
    ReputationExportRequestPayload,
)
from nostrbridge.protocol.reputation import parse_attestation
from nostrbridge.protocol.structs import ReputationExportRequest, SmallOrder
from tests.e2e.bridge_support import fetch_node_events
from tests.e2e.trade_clients import (
    NodeProcess,
    RelayConnection,
    TradeNetwork,
    Trader,
    node_env,
    sell_with_invoice,
    start_trade_network,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="same run as the SQLite pass"),
]

ISSUER = Keys.from_hex("5e" * 32)
DAY = 86_400
FIRST_TRADE = 1_696_244_800  # Carol's first completed trade on node A: 2023-10-02 11:06:40 UTC
FIRST_TRADE_DAY = FIRST_TRADE - FIRST_TRADE % DAY
WEEK = 7 * DAY

SEED_CAROL = """
from datetime import UTC, datetime, timedelta
from orders.models import Order, Trader
identity, first = {identity!r}, datetime.fromtimestamp({first}, tz=UTC)
# Ratings 5, 4, 5, 5, 3 received here: the stored average (first vote halved: 3.9) and the native sum.
Trader.objects.create(pubkey=identity, last_trade_index=0, total_reviews=5, total_rating={average!r},
                      last_rating=3, max_rating=5, min_rating=3, native_rating_sum=22.0)
for i in range(10):
    Order.objects.create(kind="sell", status="success", creator_pubkey="a" * 64, seller_pubkey="a" * 64,
                         master_seller_pubkey=identity, payment_method="bank", amount_sats=10_000,
                         fiat_code="USD", fiat_amount=10, created_at=first - timedelta(hours=1),
                         expires_at=first + timedelta(days=1), taken_at=first + timedelta(days=i))
"""
TRUST_NODE_A = """
from mostro_site.models import ReputationIssuer, ReputationIssuerKey
ReputationIssuerKey.objects.create(pubkey={key!r}, issuer=ReputationIssuer.objects.create(name="node-a"))
"""


class Nodes:
    def __init__(self, net: TradeNetwork, node_b: NodeProcess, node_b_pubkey: str) -> None:
        self.net, self.node_b, self.node_b_pubkey = net, node_b, node_b_pubkey


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("reputation-e2e")
    net = start_trade_network(
        workdir / "a",
        prices={"USD": 50_000.0},
        nodes=("mostro", "mostro2", "alice", "bob", "devfund"),
        MOSTRO_FEE="0.006",
        MOSTRO_REPUTATION_EXPORT_ENABLED="true",
        MOSTRO_REPUTATION_ISSUER_SK=ISSUER.secret_hex,
    )
    node_b = None
    try:
        nsec_b = os.urandom(32).hex()
        var_b = workdir / "b" / "var"
        var_b.mkdir(parents=True)
        env_b = node_env(
            var_dir=var_b,
            nsec_hex=nsec_b,
            relay_url=net.relay_url,
            simnet=net.simnet,
            **net.simnet.lnd_settings("mostro2"),
            MOSTRO_BITCOIN_PRICE_API_URL=net.prices.url,
            MOSTRO_FIAT_CURRENCIES_ACCEPTED="USD",
            MOSTRO_REPUTATION_IMPORT_ENABLED="true",
        )
        node_b = NodeProcess(env_b, workdir / "b")
        node_b.prepare()
        node_b.shell(TRUST_NODE_A.format(key=ISSUER.public_key_hex))
        node_b.start()
        yield Nodes(net, node_b, xonly_pubkey_hex(bytes.fromhex(nsec_b)))
    finally:
        if node_b is not None:
            node_b.stop()
        net.stop()


async def connected(relay_url: str, node_pubkey: str) -> RelayConnection:
    return await RelayConnection(relay_url, node_pubkey).connect(book=True)


async def trade_and_rate(alice: Trader, bob: Trader, vote: int, sats: int = 5_000) -> None:
    """Alice sells `sats` to Bob (his invoice in the take), releases, and rates him `vote`."""
    a = alice.next_trade_index()
    order = SmallOrder(kind=Kind.SELL, status=Status.PENDING, amount=sats, fiat_code="USD", fiat_amount=5,
                       payment_method="bank", premium=0)  # fmt: skip
    await alice.send(Action.NEW_ORDER, key=a, trade_index=a, payload=OrderPayload(order))
    order_id = (await alice.expect("new-order", key=a)).body["id"]
    invoice = await bob.wallet.invoice(sats - int(0.006 * sats / 2 + 0.5))
    _, escrow = await sell_with_invoice(alice, bob, order_id=order_id, seller_key=a, invoice=invoice)
    assert escrow.status.value == "SUCCEEDED"
    await alice.send(Action.RATE_USER, key=a, order_id=order_id, payload=RatingUserPayload(vote))
    await alice.expect("rate-received", key=a)


async def user_info(person: Trader, key: int) -> dict:
    request_id = await person.send(Action.USER_INFO, key=key, type=MessageType.RESTORE)
    reply = await person.expect("user-info", key=key)
    assert reply.message.type == MessageType.RESTORE
    assert (reply.body["request_id"], "id" in reply.body, reply.body["trade_index"]) == (request_id, False, None)
    return reply.payload["user_info"]


def record_day(node: NodeProcess, identity_hex: str) -> int:
    [(created,)] = node.query("SELECT created_at FROM orders_trader WHERE pubkey = ?", (identity_hex,))
    seconds = int(datetime.fromisoformat(created).replace(tzinfo=UTC).timestamp())
    return seconds - seconds % DAY


async def test_user_info_after_two_completed_trades(nodes: Nodes):
    """Bob is rated 5 then 4 by Alice: the corrected average gives 2.5, then 3.25 (the one-step lag
    would give 3.75); `since` is the UTC day of his record on the node."""
    net = nodes.net
    conns = [await connected(net.relay_url, net.node_pubkey) for _ in range(2)]
    try:
        alice = await Trader("alice", conns[0], net.wallet("alice")).start()
        bob = await Trader("bob", conns[1], net.wallet("bob")).start()
        await trade_and_rate(alice, bob, 5)
        await trade_and_rate(alice, bob, 4)
        info = await user_info(bob, key=3)
        assert info == {
            "rating": 3.25,
            "reviews": 2,
            "operating_days": 0,
            "since": record_day(net.node, bob.identity_hex),
        }
        # A stranger with an identity but no record: zeros and no `since`.
        eve = await Trader("eve", conns[0]).start(keys=1)
        assert await user_info(eve, key=1) == {
            "rating": 0.0,
            "reviews": 0,
            "operating_days": 0,
        }
    finally:
        for conn in conns:
            await conn.close()
        for wallet in net.wallets.values():
            await wallet.aclose()


async def test_an_export_from_node_a_is_imported_into_node_b(nodes: Nodes):
    net, node_b = nodes.net, nodes.node_b
    on_a, on_b = await connected(net.relay_url, net.node_pubkey), await connected(net.relay_url, nodes.node_b_pubkey)
    try:
        carol_a = await Trader("carol", on_a).start()
        carol_b = await Trader("carol", on_b, identity=carol_a.identity).start()
        identity = carol_a.identity_hex
        net.node.shell(SEED_CAROL.format(identity=identity, first=FIRST_TRADE, average=3.9))

        # Discovery: A advertises its issuer key, B its trust list (kind 38385, on the relay).
        [info_a] = await fetch_node_events(net.relay_url, net.node_pubkey, 38385)
        [info_b] = await fetch_node_events(net.relay_url, nodes.node_b_pubkey, 38385)
        assert ["reputation_issuer", ISSUER.public_key_hex] in info_a["tags"]
        assert not any(tag[0] == "reputation_import_issuers" for tag in info_a["tags"])
        assert ["reputation_import_issuers", ISSUER.public_key_hex] in info_b["tags"]
        assert not any(tag[0] == "reputation_issuer" for tag in info_b["tags"])

        started = int(time.time())
        request = ReputationExportRequestPayload(ReputationExportRequest(destination=identity))
        export_id = await carol_a.send(Action.EXPORT_REPUTATION, key=1, payload=request)
        exported = await carol_a.expect("reputation-exported", key=1)
        assert (exported.body["request_id"], "id" in exported.body) == (export_id, False)
        text = exported.payload["reputation_attestation"]
        assert sdk.Event.from_json(text).verify() is True  # a plain Nostr event to nostr-sdk too
        attestation = parse_attestation(text, now=int(time.time()), max_lifetime_seconds=WEEK)
        assert (attestation.issuer, attestation.destination, attestation.subject) == (
            ISSUER.public_key_hex,
            identity,
            identity,
        )
        assert (attestation.reviews, attestation.rating_text, attestation.since) == (5, "4.40", FIRST_TRADE_DAY)
        assert started <= attestation.created_at
        assert attestation.expiration == attestation.created_at + WEEK
        assert net.node.query("SELECT reputation_exported_to FROM orders_trader WHERE pubkey = ?", (identity,)) == [
            (identity,)
        ]

        ratings_before = len(on_b.rating_events)
        import_id = await carol_b.send(Action.IMPORT_REPUTATION, key=1, payload=ReputationAttestationPayload(text))
        imported = await carol_b.expect("reputation-imported", key=1)
        assert imported.body == {
            "version": 2, "request_id": import_id, "trade_index": None, "action": "reputation-imported",
            "payload": None,
        }  # fmt: skip
        [event] = (await on_b.wait_ratings(ratings_before + 1))[ratings_before:]
        assert (event.tag_value("d"), event.tag_value("total_reviews"), event.tag_value("total_rating")) == (
            carol_b.pubkey(1),  # the importing trade key
            "5",
            "4.4",
        )
        assert (event.tag_value("since"), event.tag_value("last_rating")) == (str(FIRST_TRADE_DAY), "4")
        days = (int(time.time()) - FIRST_TRADE_DAY) // DAY
        assert await user_info(carol_b, key=2) == {
            "rating": 4.4,
            "reviews": 5,
            "operating_days": days,
            "since": FIRST_TRADE_DAY,
        }
        assert node_b.query(
            "SELECT issuer_name, subject, identity_pubkey, reviews, rating_hundredths FROM mostro_site_reputationimport"
        ) == [("node-a", identity, identity, 5, 440)]

        # The same attestation again: refused, nothing merged twice.
        again = await carol_b.send(Action.IMPORT_REPUTATION, key=3, payload=ReputationAttestationPayload(text))
        refusal = await carol_b.expect("cant-do", key=3)
        assert (refusal.body["request_id"], refusal.payload) == (again, {"cant_do": "reputation_already_imported"})
        assert node_b.query("SELECT total_reviews FROM orders_trader WHERE pubkey = ?", (identity,)) == [(5,)]
    finally:
        for conn in (on_a, on_b):
            await conn.close()


def test_nodes_logs_have_no_errors(nodes: Nodes):
    for log in (nodes.net.node.output, nodes.node_b.output):
        assert "Traceback" not in log, log[-4000:]
        assert " ERROR " not in log, log[-4000:]
