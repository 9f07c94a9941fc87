"""Dispute states for the dispute tests, reached through the real pipeline and services.

The solver is a `TradeClient` with the vectors' solver identity in full-privacy mode (its
identity is also its trade key, as in vector D04 of tests/vectors/); the node admin is a `TradeClient`
whose identity is the node key.
"""

from dataclasses import dataclass

from disputes.models import Dispute
from disputes.services import solver_grant
from nostrbridge.models import OutboundMessage
from nostrbridge.node_identity import encode_npub, node_pubkey
from nostrbridge.outbox import node_keys
from nostrbridge.protocol.enums import Action, MessageType
from nostrbridge.protocol.keys import Keys
from orders.models import SolverCategory
from tests.orders.trade_states import KEYS, Trade, active_sell_trade
from tests.trade.harness import TradeClient, reset_seen

VECTOR_DISPUTE_ID = "efc75871-2568-40b9-a6ee-c382d4d6de01"
READ, READ_WRITE = SolverCategory.READ, SolverCategory.READ_WRITE


def solver_client(name: str = "solver", *, keys: Keys | None = None) -> TradeClient:
    """A solver speaking with its identity key as trade key (index 0)."""
    if keys is None:
        keys = Keys.from_hex(KEYS["solver-identity"]["sk"]) if name == "solver" else Keys.generate()
    return TradeClient(name, full_privacy=True, identity=keys)


def admin_client() -> TradeClient:
    """The node operator: messages carry the node key as identity (fresh trade keys)."""
    return TradeClient("node-admin", identity=node_keys())


def register(client: TradeClient, category: int = READ_WRITE) -> TradeClient:
    solver_grant(actor_pubkey=node_pubkey(), pubkey=client.identity.public_key_hex, category=category)
    return client


def npub(client: TradeClient) -> str:
    return encode_npub(client.identity.public_key_hex)


@dataclass
class DisputedTrade(Trade):
    dispute: Dispute | None = None

    def refresh_dispute(self) -> Dispute:
        self.dispute.refresh_from_db()
        return self.dispute


def disputed_trade(
    fake_ln, *, fiat_sent: bool = True, by: str = "buyer", request_id: int = 31, fresh: bool = False
) -> DisputedTrade:
    """alice sells to bob (or two fresh clients); bob says fiat sent (optional); `by` opens."""
    clients = {"seller": TradeClient("seller"), "buyer": TradeClient("buyer")} if fresh else {}
    trade = active_sell_trade(fake_ln, **clients)
    if fiat_sent:
        trade.buyer.send(Action.FIAT_SENT, index=trade.buyer_index, order_id=trade.order.id, request_id=4)
    opener = trade.buyer if by == "buyer" else trade.seller
    opener.send(Action.DISPUTE, index=1, order_id=trade.order.id, request_id=request_id)
    reset_seen(trade.seller, trade.buyer)
    dispute = Dispute.objects.get(order=trade.order)
    return DisputedTrade(**trade.__dict__, dispute=dispute)


def take(client: TradeClient, dispute: Dispute, *, request_id: int = 41):
    return client.send(
        Action.ADMIN_TAKE_DISPUTE, index=0, order_id=dispute.id, type=MessageType.DISPUTE, request_id=request_id
    )


def dispute_events(dispute: Dispute) -> list:
    from nostrbridge.protocol.nip01 import Event

    rows = OutboundMessage.objects.filter(kind=38386, d_tag=str(dispute.id)).order_by("pk")
    return [Event.from_json(row.event_json) for row in rows]


def dispute_statuses(dispute: Dispute) -> list[str]:
    return [event.tag_value("s") for event in dispute_events(dispute)]
