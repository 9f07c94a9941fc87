"""A simulated Mostro client: an identity key, a trade key, a relay connection and a wallet.

Messages are built exactly as mostro-core clients build them (trade signature plus identity
proof, protocol v2 kind 14, or v1 gift wrap), so the node cannot tell the demo from a phone.
"""

import asyncio
import itertools
import time

from mostro_site.runtime.demo.relay import RelayClient
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.errors import ProtocolError
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.transport import unwrap_v2, wrap_v2

_request_ids = itertools.count(1)
_STARTS_TRADE = frozenset({Action.NEW_ORDER, Action.TAKE_SELL, Action.TAKE_BUY})
# Gift wraps are dated up to two days in the past (NIP-59), so v1 replies need a wide `since`.
V1_SINCE_SECONDS = 3 * 86_400


class DemoFailed(RuntimeError):
    pass


class DemoTrader:
    def __init__(self, name: str, *, relay_url: str, node_pubkey: str, protocol_version: int, wallet) -> None:
        self.name = name
        self.node_pubkey = node_pubkey
        self.protocol_version = protocol_version
        self.wallet = wallet
        self.identity = Keys.generate()
        self.trade = Keys.generate()
        self.trade_index = 1  # a fresh identity's first trade
        self.relay = RelayClient(relay_url)

    async def start(self) -> None:
        await self.relay.connect()
        kind = 14 if self.protocol_version == 2 else 1059
        since = int(time.time()) - (60 if self.protocol_version == 2 else V1_SINCE_SECONDS)
        await self.relay.subscribe({"kinds": [kind], "#p": [self.trade.public_key_hex], "since": since})

    async def stop(self) -> None:
        await self.relay.close()

    async def send(self, action: Action, *, order_id=None, payload=None) -> None:
        # Clients announce the trade index only when a trade key starts a trade (docs/PROTOCOL.md §Trade-index).
        trade_index = self.trade_index if action in _STARTS_TRADE else None
        message = Message.new(
            action, request_id=next(_request_ids), trade_index=trade_index, id=order_id, payload=payload
        )
        await self.relay.publish(self._wrap(message))

    async def expect(self, action: Action, *, payload: type | None = None, within: float = 30.0) -> Message:
        """The next message with `action` (and a payload of type `payload`, when given). Other
        messages go to `on_other`; a cant-do ends the demo with the node's reason."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise DemoFailed(f"{self.name} waited {within:.0f} s for {action.value}")
            try:
                event = await asyncio.wait_for(self.relay.events.get(), remaining)
            except TimeoutError:
                continue
            message = self._unwrap(event)
            if message is None:
                continue
            if message.action is Action.CANT_DO:
                raise DemoFailed(f"the node refused {self.name}: {message.to_json()}")
            if message.action is action and (payload is None or isinstance(message.payload, payload)):
                return message
            self.on_other(message)

    def on_other(self, message: Message) -> None:
        """Hook for messages a step did not wait for (the script prints them)."""

    def _wrap(self, message: Message):
        if self.protocol_version == 1:
            from nostrbridge.protocol.giftwrap import wrap_v1

            return wrap_v1(message, self.trade, self.node_pubkey, identity_keys=self.identity)
        return wrap_v2(message, self.trade, self.node_pubkey, identity_keys=self.identity)

    def _unwrap(self, event) -> Message | None:
        try:
            if self.protocol_version == 1:
                from nostrbridge.protocol.giftwrap import unwrap_v1

                unwrapped = unwrap_v1(event, self.trade)
            else:
                unwrapped = unwrap_v2(event, self.trade)
        except ProtocolError:
            return None  # not a message from the node for this key
        return unwrapped.message if unwrapped.sender == self.node_pubkey else None
