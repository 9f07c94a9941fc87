"""Interoperability with nostr-sdk 0.45.1 (rust-nostr, what Mostro clients use) and its LocalRelay."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid

import nostr_sdk as sdk
import pytest
import websockets

from nostrbridge.protocol import nip44
from nostrbridge.protocol.enums import Action, DisputeStatus, Status
from nostrbridge.protocol.giftwrap import reply_v1, unwrap_v1, wrap_v1
from nostrbridge.protocol.inbound import open_inbound
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.nip01 import Event, sign_event
from nostrbridge.protocol.published_events import (
    MakerReputation,
    OrderSnapshot,
    PublisherSettings,
    build_dispute_event,
    build_order_event,
    build_rating_event,
    build_relay_list_event,
)
from nostrbridge.protocol.transport import reply_v2, wrap_v2
from tests.nostrbridge.protocol.conftest import MOSTRO_VECTORS

NEW_ORDER = Message.from_json(MOSTRO_VECTORS["canonical_messages"]["A01_new_order_req"])
ORDER_ACK = Message.from_json(MOSTRO_VECTORS["canonical_messages"]["A02_new_order_ack"])
TRICKY_CONTENT = 'quote " backslash \\ newline \n tab \t nul \x00 unit \x1f del \x7f emoji 😀 accents é /slash'


def sdk_keys(keys: Keys) -> sdk.Keys:
    return sdk.Keys(sdk.SecretKey.parse(keys.secret_hex))


def sdk_pk(hex_key: str) -> sdk.PublicKey:
    return sdk.PublicKey.parse(hex_key)


# --- NIP-44 and NIP-01 --------------------------------------------------------------


def test_our_v2_content_decrypts_with_nostr_sdk(keys: dict[str, Keys]) -> None:
    trade, node = keys["alice-trade-1"], keys["mostro-node"]
    event = wrap_v2(NEW_ORDER, trade, node.public_key_hex, identity_keys=keys["alice-identity"])
    plaintext = sdk.nip44_decrypt(sdk_keys(node).secret_key(), sdk_pk(trade.public_key_hex), event.content)
    message, trade_sig, proof = json.loads(plaintext)
    assert json.dumps(message, separators=(",", ":")) == NEW_ORDER.to_json()
    assert len(trade_sig) == 128
    assert proof[0] == keys["alice-identity"].public_key_hex


# nostr-sdk 0.45 refuses to *encrypt* more than 65408 bytes ("message too long").
@pytest.mark.parametrize("plaintext", ["a", "x" * 65408, TRICKY_CONTENT, '[{"order":{}},null,null]'])
def test_nostr_sdk_nip44_decrypts_with_ours(keys: dict[str, Keys], plaintext: str) -> None:
    alice, bob = keys["alice-trade-1"], keys["bob-trade-1"]
    payload = sdk.nip44_encrypt(
        sdk_keys(alice).secret_key(), sdk_pk(bob.public_key_hex), plaintext, sdk.Nip44Version.V2
    )
    assert nip44.decrypt(payload, nip44.get_conversation_key(bob.secret, alice.public_key)) == plaintext
    ours = nip44.encrypt(plaintext, nip44.get_conversation_key(alice.secret, bob.public_key))
    assert sdk.nip44_decrypt(sdk_keys(bob).secret_key(), sdk_pk(alice.public_key_hex), ours) == plaintext


def test_nostr_sdk_decrypts_our_largest_payload(keys: dict[str, Keys]) -> None:
    alice, bob = keys["alice-trade-1"], keys["bob-trade-1"]
    ours = nip44.encrypt("y" * 65535, nip44.get_conversation_key(alice.secret, bob.public_key))
    assert sdk.nip44_decrypt(sdk_keys(bob).secret_key(), sdk_pk(alice.public_key_hex), ours) == "y" * 65535


@pytest.mark.parametrize("content", ["", "plain", TRICKY_CONTENT, "x" * 3000])
def test_our_events_verify_in_nostr_sdk(keys: dict[str, Keys], content: str) -> None:
    tags = [["p", keys["mostro-node"].public_key_hex], ["t", 'é\n"q"'], ["expiration", "1"]]
    ours = sign_event(keys["bob-trade-2"], kind=14, content=content, tags=tags, created_at=1700000000)
    theirs = sdk.Event.from_json(ours.to_json())
    assert theirs.verify()
    assert theirs.id().to_hex() == ours.id
    assert theirs.content() == content


@pytest.mark.parametrize("content", ["", TRICKY_CONTENT])
def test_nostr_sdk_events_parse_and_verify_here(keys: dict[str, Keys], content: str) -> None:
    tags = [sdk.Tag.parse(["p", keys["mostro-node"].public_key_hex]), sdk.Tag.parse(["t", "é\n"])]
    theirs = sdk.EventBuilder(sdk.Kind(14), content).tags(tags).finalize(sdk_keys(keys["bob-trade-3"]))
    ours = Event.from_json(theirs.as_json())
    assert ours.verify()
    assert ours.id == theirs.id().to_hex()


def test_our_reply_v2_event_verifies_in_nostr_sdk_and_decrypts(keys: dict[str, Keys]) -> None:
    node, trade = keys["mostro-node"], keys["alice-trade-2"]
    event = reply_v2(ORDER_ACK, node, trade.public_key_hex, now=1700000000)
    theirs = sdk.Event.from_json(event.to_json())
    assert theirs.verify()
    assert theirs.kind().as_u16() == 14
    plaintext = sdk.nip44_decrypt(sdk_keys(trade).secret_key(), theirs.author(), theirs.content())
    assert plaintext == "[" + ORDER_ACK.to_json() + ",null,null]"


# --- NIP-59 gift wraps ------------------------------------------------------------------


def test_nostr_sdk_gift_wrap_unwraps_here(keys: dict[str, Keys]) -> None:
    trade, node = keys["alice-trade-3"], keys["mostro-node"]
    message = NEW_ORDER.with_version(1)
    content = "[" + message.to_json() + ",null]"
    rumor = sdk.EventBuilder(sdk.Kind(1), content).finalize_unsigned(sdk_pk(trade.public_key_hex)).ensure_id()
    gift_wrap = sdk.nip59_make_gift_wrap(sdk_keys(trade), sdk_pk(node.public_key_hex), rumor)
    unwrapped = unwrap_v1(Event.from_json(gift_wrap.as_json()), node)
    assert unwrapped.sender == unwrapped.identity == trade.public_key_hex
    assert unwrapped.message == message
    assert unwrapped.rumor_id == rumor.id().to_hex()


def test_our_gift_wrap_unwraps_in_nostr_sdk(keys: dict[str, Keys]) -> None:
    node, trade = keys["mostro-node"], keys["bob-trade-1"]
    wrap = reply_v1(ORDER_ACK, node, trade.public_key_hex, now=1700000000)
    gift = sdk.UnwrappedGift.from_gift_wrap(sdk_keys(trade), sdk.Event.from_json(wrap.to_json()))
    assert gift.sender().to_hex() == node.public_key_hex
    rumor = gift.rumor()
    assert rumor.kind().as_u16() == 1
    assert rumor.created_at().as_secs() == 1700000000
    assert rumor.content() == "[" + ORDER_ACK.with_version(1).to_json() + ",null]"


def test_reputation_mode_gift_wrap_refused_by_nostr_sdk_but_accepted_here(keys: dict[str, Keys]) -> None:
    node, trade, identity = keys["mostro-node"], keys["alice-trade-4"], keys["alice-identity"]
    wrap = wrap_v1(NEW_ORDER, trade, node.public_key_hex, identity_keys=identity)
    with pytest.raises(sdk.NostrSdkError):
        sdk.UnwrappedGift.from_gift_wrap(sdk_keys(node), sdk.Event.from_json(wrap.to_json()))
    unwrapped = unwrap_v1(wrap, node)
    assert (unwrapped.sender, unwrapped.identity) == (trade.public_key_hex, identity.public_key_hex)


# --- a real relay ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def relay_url():
    relay = (
        sdk.LocalRelayBuilder()
        .addr("127.0.0.1")
        .port(_free_port())
        .rate_limit(sdk.RateLimit(max_reqs=1000, notes_per_minute=10_000_000))
        .build()
    )
    await relay.run()
    yield str(await relay.url())
    relay.shutdown()


async def _publish(url: str, events: list[Event]) -> list[list[object]]:
    answers = []
    async with websockets.connect(url) as ws:
        for event in events:
            await ws.send(json.dumps(["EVENT", event.to_dict()]))
            answers.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    return answers


async def _fetch(url: str, filter_: dict) -> list[dict]:
    found = []
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps(["REQ", "q", filter_]))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if frame[0] == "EOSE":
                return found
            found.append(frame[2])


async def test_relay_accepts_our_events(relay_url: str, keys: dict[str, Keys]) -> None:
    node, trade, identity = keys["mostro-node"], keys["alice-trade-1"], keys["alice-identity"]
    now = int(time.time())
    settings = PublisherSettings(node_pubkey=node.public_key_hex, instance_name="Test", relays=(relay_url,))
    order = OrderSnapshot(
        id=uuid.uuid4(),
        kind="sell",
        status=Status.PENDING,
        fiat_code="VES",
        amount_sats=0,
        fiat_amount=100,
        payment_method="face to face",
        premium=1,
        expires_at=now + 86400,
    )
    events = [
        build_order_event(order, node, settings=settings, now=now, network="regtest", reputation=MakerReputation()),
        build_rating_event(
            node,
            d_pubkey=trade.public_key_hex,
            total_reviews=1,
            total_rating=2.5,
            last_rating=5,
            max_rate=5,
            min_rate=5,
            days=0,
            settings=settings,
            now=now,
        ),
        build_dispute_event(
            node,
            dispute_id=uuid.uuid4(),
            status=DisputeStatus.INITIATED,
            initiator="buyer",
            dispute_created_at=now,
            settings=settings,
            now=now,
        ),
        build_relay_list_event(node, relays=[relay_url], now=now),
        wrap_v2(NEW_ORDER, trade, node.public_key_hex, identity_keys=identity, expiration_ts=now + 3600),
        reply_v2(ORDER_ACK, node, trade.public_key_hex, now=now),
        wrap_v1(NEW_ORDER, trade, node.public_key_hex, identity_keys=identity),
        reply_v1(ORDER_ACK, node, trade.public_key_hex),
    ]
    answers = await _publish(relay_url, events)
    assert answers == [["OK", event.id, True, ""] for event in events]
    # What the daemon would read back from its inbox subscription opens cleanly.
    inbox = await _fetch(relay_url, {"kinds": [14], "#p": [node.public_key_hex]})
    assert [open_inbound(raw, node, transport_version=2, now=now).message.action for raw in inbox] == [Action.NEW_ORDER]
    book = await _fetch(relay_url, {"kinds": [38383], "authors": [node.public_key_hex], "#s": ["pending"]})
    assert [Event.from_dict(raw) for raw in book] == [events[0]]


async def test_relay_rejects_a_tampered_event(relay_url: str, keys: dict[str, Keys]) -> None:
    event = sign_event(keys["bob-trade-1"], kind=1, content="x", tags=[], created_at=1700000000)
    event.content = "y"
    (answer,) = await _publish(relay_url, [event])
    assert answer[:3] == ["OK", event.id, False]
