"""Dispute-chat test states: a solver whose key the console holds, a dispute it has taken,
and the parties' ends of the two conversations (their own trade keys)."""

from dataclasses import dataclass

from disputes.chat.envelope import ChatKeys, chat_keys, wrap
from disputes.chat.keys import solver_key_create
from disputes.console import take_as
from nostrbridge.protocol.keys import Keys
from tests.disputes.support import DisputedTrade, disputed_trade
from tests.disputes.web import make_user
from tests.orders.trade_states import KEYS


@dataclass
class ChatTrade:
    trade: DisputedTrade
    user: object
    solver_pubkey: str

    @property
    def dispute(self):
        return self.trade.refresh_dispute()

    def party_keys(self, party: str) -> Keys:
        trade_key = self.trade.order.buyer_pubkey if party == "buyer" else self.trade.order.seller_pubkey
        return next(Keys.from_hex(k["sk"]) for k in KEYS.values() if k["pk"] == trade_key)

    def party_side(self, party: str) -> ChatKeys:
        return chat_keys(self.party_keys(party), self.solver_pubkey)

    def party_writes(self, party: str, text: str, **kwargs):
        """The relay event a party's client publishes (outer, inner)."""
        return wrap(self.party_keys(party), self.party_side(party), text, **kwargs)


def console_solver(username: str = "sol"):
    user = make_user(username, "rw")
    return user, solver_key_create(user=user).pubkey


def chat_trade(fake_ln, username: str = "sol") -> ChatTrade:
    trade = disputed_trade(fake_ln)
    user, pubkey = console_solver(username)
    take_as(user, dispute_id=trade.dispute.id)
    return ChatTrade(trade, user, pubkey)
