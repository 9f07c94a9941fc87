"""Shared fixtures and builders for the order-intake tests (handlers and services).

Node settings follow the vector scenarios (tests/vectors/): fee 0.006, relays and instance name of the examples.
The VES price 1,260,900 makes 100 VES at premium 1 worth 7851 sats and 15 VES worth 1177,
the amounts of the canonical vectors.
"""

import hashlib
import os
import time
from datetime import timedelta
from decimal import Decimal

import coincurve
import pytest
from django.conf import settings
from django.utils import timezone

from lightning import get_lightning_client
from lightning.bolt11_encode import InvoiceTerms, encode_invoice
from lightning.fake import FakeLightningClient
from mostro_site.config import clear_node_config_cache
from nostrbridge.dispatch import process_inbound
from nostrbridge.event_settings import clear_network_cache, lnd_network_fetch
from nostrbridge.inbox import inbox_claim
from nostrbridge.models import InboundEvent, OutboundMessage
from nostrbridge.protocol.enums import Action, Kind, Status
from nostrbridge.protocol.nip01 import Event
from nostrbridge.protocol.payloads import OrderPayload
from nostrbridge.protocol.structs import SmallOrder
from orders.models import BtcPrice, Order, OrderStatusChange, Trader
from tests.orders.price_server import PriceServer
from tests.vectors import mostro_vectors

VECTORS = mostro_vectors()["canonical_messages"]
PRICE_VES = Decimal("1260900")
RELAYS = ["wss://relay.mostro.network", "wss://nos.lol"]
_PAYEE_KEY = coincurve.PrivateKey(hashlib.sha256(b"buyer-wallet").digest())


@pytest.fixture
def fake_ln() -> FakeLightningClient:
    client = get_lightning_client()
    assert isinstance(client, FakeLightningClient)
    client.reset()
    clear_network_cache()
    lnd_network_fetch()  # what every process does at start (nostrbridge.event_settings)
    client.calls.clear()
    yield client
    client.reset()
    clear_network_cache()


@pytest.fixture
def node(settings, fake_ln):
    """The node of the vector scenarios, with the fake LND and an empty outbox view."""
    configure(
        settings,
        MOSTRO_FEE=0.006,
        MOSTRO_FIAT_CURRENCIES_ACCEPTED=["VES", "USD"],
        MOSTRO_RELAYS=RELAYS,
        MOSTRO_NAME="Example Mostro",
        MOSTRO_DEV_FEE_PERCENTAGE=0.30,
    )
    yield settings
    clear_node_config_cache()


def configure(settings, **values) -> None:
    for name, value in values.items():
        setattr(settings, name, value)
    clear_node_config_cache()


def set_price(fiat_code: str = "VES", price: Decimal = PRICE_VES, *, age_seconds: int = 0) -> None:
    as_of = timezone.now() - timedelta(seconds=age_seconds)
    BtcPrice.objects.update_or_create(fiat_code=fiat_code, defaults={"price": price, "as_of": as_of})


def mint_invoice(
    *,
    amount_sats: int = 0,
    expiry_seconds: int = 7200,
    min_final_cltv: int = 18,
    currency: str = "bcrt",
    age_seconds: int = 0,
) -> str:
    """A real signed BOLT11 from a buyer wallet (regtest by default)."""
    terms = InvoiceTerms(
        payment_hash=os.urandom(32),
        payment_secret=os.urandom(32),
        amount_msat=amount_sats * 1000,
        description="buyer payout",
        expiry_seconds=expiry_seconds,
        min_final_cltv_expiry=min_final_cltv,
        currency=currency,
        timestamp=int(time.time()) - age_seconds,
    )
    return encode_invoice(terms, _PAYEE_KEY)


@pytest.fixture
def lnurl_server():
    """A local LNURL-pay service; `address(user)` gives a Lightning address served by it."""
    with PriceServer() as server:
        server.address = lambda user="bob": f"{user}@{server.url.removeprefix('http://')}"  # type: ignore[attr-defined]
        server.pay_request = lambda user="bob": server.set_json(  # type: ignore[attr-defined]
            f"/.well-known/lnurlp/{user}",
            {
                "tag": "payRequest",
                "callback": f"{server.url}/lnurlp/{user}/callback",
                "minSendable": 1000,
                "maxSendable": 10**11,
                "metadata": '[["text/plain","payout"]]',
            },
        )
        yield server


def order_terms(
    *,
    kind: str = "sell",
    amount: int = 0,
    fiat_code: str = "VES",
    fiat_amount: int = 100,
    min_amount: int | None = None,
    max_amount: int | None = None,
    payment_method: str = "face to face,bank transfer",
    premium: int = 1,
    buyer_invoice: str | None = None,
    expires_at: int | None = None,
) -> OrderPayload:
    return OrderPayload(
        SmallOrder(
            kind=Kind(kind) if kind else None,
            status=Status.PENDING,
            amount=amount,
            fiat_code=fiat_code,
            min_amount=min_amount,
            max_amount=max_amount,
            fiat_amount=fiat_amount,
            payment_method=payment_method,
            premium=premium,
            buyer_invoice=buyer_invoice,
            created_at=0,
            expires_at=expires_at,
        )
    )


def make_order(client, *, index: int = 1, request_id: int | None = None, **terms) -> Order:
    """`new-order` through the pipeline; returns the stored order."""
    replies = client.send(Action.NEW_ORDER, index=index, payload=order_terms(**terms), request_id=request_id)
    assert [r.action for r in replies] == ["new-order"], [r.json for r in replies]
    return Order.objects.get(pk=replies[0].message.id)


def order_events(order_id) -> list[Event]:
    rows = OutboundMessage.objects.filter(kind=38383, order_id=order_id).order_by("pk")
    return [Event.from_json(row.event_json) for row in rows]


def snapshot(order: Order) -> dict:
    """Everything a refusal must leave untouched."""
    order.refresh_from_db()
    values = {f.attname: getattr(order, f.attname) for f in order._meta.concrete_fields if f.attname != "updated_at"}
    values["status_changes"] = OrderStatusChange.objects.filter(order=order).count()
    return values


def outbox_count() -> int:
    return OutboundMessage.objects.count()


def ln_writes(fake: FakeLightningClient) -> list[str]:
    """Calls that change something at the node (get_info and decode only read)."""
    return [name for name, _ in fake.calls if name not in ("get_info", "decode_pay_req", "lookup_invoice")]


def canonical(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


def cant_do_json(reason: str, *, request_id: int, order_id=None) -> str:
    msg_id = "" if order_id is None else f'"id":"{order_id}",'
    return (
        f'{{"cant-do":{{"version":2,"request_id":{request_id},"trade_index":null,{msg_id}'
        f'"action":"cant-do","payload":{{"cant_do":"{reason}"}}}}}}'
    )


def tag(event: Event, name: str) -> list[str]:
    """The values of the first tag called `name`."""
    return next(t[1:] for t in event.tags if t[0] == name)


def published_statuses(order_id) -> list[str]:
    return [tag(event, "s")[0] for event in order_events(order_id)]


def assert_refused(client, action, *, index: int, order_id, reason: str, fake_ln, orders=(), **send) -> None:
    """`client` sends `action` and gets exactly one cant-do `reason`; nothing else changes.

    Checks the reply bytes and recipient, that every order in `orders` is untouched (fields
    and audit rows), that the cant-do is the only new outbox row and that LND saw no write.
    """
    before = [snapshot(order) for order in orders]
    rows, writes = outbox_count(), ln_writes(fake_ln)
    replies = client.send(action, index=index, order_id=order_id, request_id=77, **send)
    assert [(r.recipient, r.message.to_json()) for r in replies] == [
        (client.pubkey(index), cant_do_json(reason, request_id=77, order_id=order_id))
    ]
    assert [snapshot(order) for order in orders] == before
    assert outbox_count() == rows + 1
    assert ln_writes(fake_ln) == writes


def assert_waits_for_price(client, action, *, index: int, order_id, fake_ln, orders, fetcher, **send) -> None:
    """No price stored: `action` waits in the inbox for a price fetch (no reply, nothing changed,
    one tick asked for); once it has waited MOSTRO_PRICE_WAIT_SECONDS it is answered
    `price_too_stale` and still nothing changed (orders, outbox, LND, the taker's trade index)."""
    before = [snapshot(order) for order in orders]
    rows, writes = outbox_count(), ln_writes(fake_ln)
    traders = list(Trader.objects.values_list("pubkey", "last_trade_index").order_by("pubkey"))
    assert client.send(action, index=index, order_id=order_id, request_id=77, **send) == []
    row = InboundEvent.objects.order_by("-pk").first()
    assert (row.status, row.locked_by, fetcher.requests) == ("processing", "deferred", 1)
    InboundEvent.objects.filter(pk=row.pk).update(
        received_at=timezone.now() - timedelta(seconds=settings.MOSTRO_PRICE_WAIT_SECONDS),
        locked_until=timezone.now() - timedelta(seconds=1),
    )
    assert inbox_claim(worker_id="test") == [row.pk]
    process_inbound(row.pk)
    assert [(r.recipient, r.message.to_json()) for r in client.replies()] == [
        (client.pubkey(index), cant_do_json("price_too_stale", request_id=77, order_id=order_id))
    ]
    assert [snapshot(order) for order in orders] == before
    assert (outbox_count(), ln_writes(fake_ln)) == (rows + 1, writes)
    assert list(Trader.objects.values_list("pubkey", "last_trade_index").order_by("pubkey")) == traders
    assert InboundEvent.objects.get(pk=row.pk).status == "done"


def assert_silent(client, action, *, index: int, order_id, fake_ln, orders=(), **send) -> None:
    """Like `assert_refused` for the spec's silent outcomes: no reply at all."""
    before = [snapshot(order) for order in orders]
    rows = outbox_count()
    replies = client.send(action, index=index, order_id=order_id, request_id=77, **send)
    assert replies == []
    assert [snapshot(order) for order in orders] == before
    assert outbox_count() == rows
