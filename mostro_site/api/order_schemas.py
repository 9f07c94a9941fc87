"""Ninja schemas of the order, node and ledger read endpoints (mostro_site/api/orders.py)."""

from datetime import datetime
from uuid import UUID

from ninja import Schema


class OrderOut(Schema):
    id: UUID
    kind: str
    status: str
    fiat_code: str
    fiat_amount: int
    min_amount: int | None
    max_amount: int | None
    amount_sats: int
    fee_sats: int
    dev_fee_sats: int
    premium: int
    price_from_api: bool
    payment_method: str
    buyer_pubkey: str | None
    seller_pubkey: str | None
    hold_invoice_hash: str | None
    dispute_id: UUID | None
    created_at: datetime
    expires_at: datetime
    taken_at: datetime | None


class OrderListOut(Schema):
    count: int
    items: list[OrderOut]


class LightningOut(Schema):
    alias: str
    network: str
    block_height: int
    version: str


class NodeOut(Schema):
    pubkey: str
    npub: str
    name: str
    protocol_version: int
    fee: float
    lightning: LightningOut | None
    lightning_status: str  # "ok" or "unknown" (LND unreachable)


class StatsOut(Schema):
    orders_by_status: dict[str, int]
    disputes_by_status: dict[str, int]
    completed_volume_sats: int
    completed_volume_fiat: dict[str, int]
    fees_earned_sats: int


class DevFeeOut(Schema):
    id: int
    order_id: UUID
    amount_sats: int
    status: str
    payment_hash: str | None
    routing_fee_sats: int
    attempts: int
    paid_at: datetime | None
    created_at: datetime


class DevFeeListOut(Schema):
    count: int
    paid_sats: int
    unpaid_sats: int
    items: list[DevFeeOut]
