"""Trade states for the completion-side tests (fiat-sent, release, payout, cancel, rating).

States are reached through the real pipeline and services (new-order, take, the seller's
HTLC accepted through the escrow service), never by writing statuses. Clients use the
vector keys of mostro.vectors.json, so replies compare byte for byte with the canonical
messages once the order id and timestamps are substituted.
"""

from dataclasses import dataclass

from lightning.fake import FakeLightningClient
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.payloads import AmountPayload, PaymentRequestPayload
from orders.models import Order
from orders.services.escrow import escrow_on_accepted
from tests.orders.services.support import VECTORS, make_order, mint_invoice, set_price  # noqa: F401 - VECTORS re-exported
from tests.trade.harness import TradeClient, reset_seen
from tests.vectors import mostro_vectors

KEYS = mostro_vectors()["keys"]
VECTOR_ORDER_ID = "c7dba9db-f13f-4c3f-a77f-3b82e43c2b1a"
VECTOR_RANGE_ID = "4fd93fc9-e909-4fc9-acef-9976122b5dfa"


def vector_client(name: str) -> TradeClient:
    """alice / bob with the identity and trade keys of the vectors."""
    identity = Keys.from_hex(KEYS[f"{name}-identity"]["sk"])
    trades = {
        int(label.rsplit("-", 1)[1]): Keys.from_hex(pair["sk"])
        for label, pair in KEYS.items()
        if label.startswith(f"{name}-trade-")
    }
    return TradeClient(name, identity=identity, trade_keys=trades)


@dataclass
class Trade:
    order: Order
    seller: TradeClient
    buyer: TradeClient
    seller_index: int
    buyer_index: int
    buyer_invoice: str

    def refresh(self) -> Order:
        self.order.refresh_from_db()
        return self.order

    @property
    def seller_key(self) -> str:
        return self.seller.pubkey(self.seller_index)

    @property
    def buyer_key(self) -> str:
        return self.buyer.pubkey(self.buyer_index)


def active_sell_trade(
    fake_ln: FakeLightningClient,
    *,
    seller: TradeClient | None = None,
    buyer: TradeClient | None = None,
    buyer_invoice: str | None = None,
    range_take: int | None = None,
    **terms,
) -> Trade:
    """alice sells 100 VES (7851 sats, fee 24); bob takes with an amountless invoice; the
    seller's HTLC is accepted → `active`. With `range_take`, a 10–50 range taken for that."""
    seller = seller or vector_client("alice")
    buyer = buyer or vector_client("bob")
    set_price()
    if range_take is not None:
        terms = {"fiat_amount": 0, "min_amount": 10, "max_amount": 50, "payment_method": "face to face"} | terms
    order = make_order(seller, index=1, kind="sell", **terms)
    invoice = buyer_invoice or mint_invoice(amount_sats=0)
    replies = buyer.send(
        Action.TAKE_SELL,
        index=1,
        order_id=order.id,
        payload=PaymentRequestPayload(None, invoice, range_take),
        request_id=3,
    )
    assert [r.action for r in replies] == ["waiting-seller-to-pay"], [r.json for r in replies]
    order.refresh_from_db()
    fake_ln.mark_accepted(order.hold_invoice_hash)
    assert escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash)
    order.refresh_from_db()
    assert order.status == "active"
    reset_seen(seller, buyer)
    return Trade(order, seller, buyer, 1, 1, invoice)


def active_buy_range_trade(fake_ln: FakeLightningClient) -> Trade:
    """bob (buyer, maker) asks 10–50 VES; alice sells 15 VES and pays the escrow; bob had a
    amountless invoice in the order → `active` right after the HTLC."""
    buyer, seller = vector_client("bob"), vector_client("alice")
    set_price()
    invoice = mint_invoice(amount_sats=0)
    order = make_order(
        buyer,
        index=1,
        kind="buy",
        fiat_amount=0,
        min_amount=10,
        max_amount=50,
        payment_method="face to face",
        buyer_invoice=invoice,
    )
    replies = seller.send(Action.TAKE_BUY, index=1, order_id=order.id, payload=AmountPayload(15), request_id=3)
    assert "pay-invoice" in [r.action for r in replies], [r.json for r in replies]
    order.refresh_from_db()
    fake_ln.mark_accepted(order.hold_invoice_hash)
    assert escrow_on_accepted(payment_hash_hex=order.hold_invoice_hash)
    order.refresh_from_db()
    assert order.status == "active", order.status
    reset_seen(seller, buyer)
    return Trade(order, seller, buyer, 1, 1, invoice)


def vector(name: str, order: Order, *, vector_id: str = VECTOR_ORDER_ID, **replacements: str) -> str:
    """The canonical message with this test's order id and timestamps substituted."""
    text = VECTORS[name].replace(vector_id, str(order.id))
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


def unix(value) -> str:
    return str(int(value.timestamp()))


def cant_do(reason: str, request_id: int | None, order_id) -> dict:
    """The parsed `cant-do` reply (docs/PROTOCOL.md §Cant-do)."""
    body = {"version": 2, "request_id": request_id, "trade_index": None}
    if order_id is not None:
        body["id"] = str(order_id)
    return {"cant-do": body | {"action": "cant-do", "payload": {"cant_do": reason}}}


def taken_sell_trade(fake_ln: FakeLightningClient, *, with_invoice: bool = True) -> Trade:
    """alice's 100 VES sell order taken by bob: `waiting-payment` (invoice sent with the take,
    hold invoice issued and unpaid) or `waiting-buyer-invoice` (no invoice yet)."""
    seller, buyer = vector_client("alice"), vector_client("bob")
    set_price()
    order = make_order(seller, index=1, kind="sell")
    invoice = mint_invoice(amount_sats=0) if with_invoice else ""
    payload = PaymentRequestPayload(None, invoice, None) if with_invoice else None
    buyer.send(Action.TAKE_SELL, index=1, order_id=order.id, payload=payload, request_id=3)
    order.refresh_from_db()
    assert order.status == ("waiting-payment" if with_invoice else "waiting-buyer-invoice"), order.status
    reset_seen(seller, buyer)
    return Trade(order, seller, buyer, 1, 1, invoice)
