"""Everything a solver needs to decide, read for the dispute page (selectors; no writes).

The escrow clock asks LND (lookup_invoice + get_info) and must run outside any transaction;
when LND cannot be reached it says so instead of guessing.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Q
from django.utils import timezone

from disputes.models import Dispute, DisputeInitiator, DisputeStatus
from lightning import get_lightning_client
from lightning.errors import LightningError
from lightning.types import InvoiceState
from orders.models import Ban, Order, Trader
from orders.services.escrow import BLOCK_SECONDS
from orders.services.guardian import escrow_guard_margin_blocks
from orders.status import OrderKind, OrderStatus

WARN_BEFORE = timedelta(hours=6)  # the escrow clock turns amber below this, red below DANGER_BEFORE
DANGER_BEFORE = timedelta(hours=2)


@dataclass(frozen=True)
class PartyFacts:
    role: str  # buyer / seller
    side: str  # maker / taker
    trade_pubkey: str | None
    identity: str | None  # None in full-privacy mode
    opened_dispute: bool
    rating: float = 0.0
    reviews: int = 0
    since: datetime | None = None
    trades_completed: int = 0
    disputes_opened: int = 0
    disputes_lost: int = 0
    bans: tuple[str, ...] = ()

    @property
    def full_privacy(self) -> bool:
        return self.identity is None

    @property
    def ban_key(self) -> str | None:
        """What a ban of this party names: its identity, or its trade key in full privacy."""
        return self.identity or self.trade_pubkey


@dataclass(frozen=True)
class EscrowClock:
    state: str  # LND's invoice state, "none" or "unknown"
    tip_height: int | None = None
    expiry_height: int | None = None
    margin_blocks: int = 0

    @property
    def blocks_left(self) -> int | None:
        if self.tip_height is None or self.expiry_height is None:
            return None
        return self.expiry_height - self.tip_height

    @property
    def guardian_blocks_left(self) -> int | None:
        left = self.blocks_left
        return None if left is None else left - self.margin_blocks

    def eta(self, blocks: int | None, now: datetime) -> datetime | None:
        return None if blocks is None else now + timedelta(seconds=blocks * BLOCK_SECONDS)

    @staticmethod
    def level(eta: datetime | None, now: datetime) -> str:
        if eta is None:
            return "unknown"
        if eta - now < DANGER_BEFORE:
            return "danger"
        return "warning" if eta - now < WARN_BEFORE else "ok"


def trader_bans(identity: str | None, trade_pubkey: str | None = None) -> tuple[str, ...]:
    """Active bans of a party (descriptions): the node's bans of its identity or trade key
    (orders.services.bans), and Mostro's legacy `is_banned` flag, shown but never enforced."""
    now = timezone.now()
    keys = [key for key in (identity, trade_pubkey) if key]
    found = [
        f"{ban.reason} (by {ban.banned_by}, {_until(ban)})"
        for ban in Ban.objects.filter(pubkey__in=keys, lifted_at__isnull=True).order_by("pk")
        if ban.is_active_at(now)
    ]
    if identity and Trader.objects.filter(pk=identity, is_banned=True).exists():
        found.append("flagged banned in the imported mostrod database (not enforced)")
    return tuple(found)


def _until(ban: Ban) -> str:
    return "until lifted" if ban.expires_at is None else f"until {ban.expires_at:%Y-%m-%d %H:%M} UTC"


def _identity(order: Order, role: str) -> str | None:
    trade, master = (
        (order.buyer_pubkey, order.master_buyer_pubkey)
        if role == "buyer"
        else (order.seller_pubkey, order.master_seller_pubkey)
    )
    return None if not master or master == trade else master


def party_facts(order: Order, dispute: Dispute, role: str) -> PartyFacts:
    trade = order.buyer_pubkey if role == "buyer" else order.seller_pubkey
    maker_role = "seller" if order.kind == OrderKind.SELL else "buyer"
    identity = _identity(order, role)
    base: dict[str, Any] = {
        "role": role,
        "side": "maker" if role == maker_role else "taker",
        "trade_pubkey": trade,
        "identity": identity,
        "opened_dispute": dispute.initiator == role,
    }
    base["bans"] = trader_bans(identity, trade)
    if identity is None:
        return PartyFacts(**base)
    trader = Trader.objects.filter(pk=identity).first()
    as_buyer, as_seller = Q(order__master_buyer_pubkey=identity), Q(order__master_seller_pubkey=identity)
    disputes = Dispute.objects.all()
    return PartyFacts(
        **base,
        rating=float(trader.total_rating) if trader else 0.0,
        reviews=trader.total_reviews if trader else 0,
        since=trader.created_at if trader else None,
        trades_completed=Order.objects.filter(
            Q(master_buyer_pubkey=identity) | Q(master_seller_pubkey=identity), status=OrderStatus.SUCCESS
        ).count(),
        disputes_opened=disputes.filter(
            (as_buyer & Q(initiator=DisputeInitiator.BUYER)) | (as_seller & Q(initiator=DisputeInitiator.SELLER))
        ).count(),
        disputes_lost=disputes.filter(
            (as_buyer & Q(status=DisputeStatus.SELLER_REFUNDED)) | (as_seller & Q(status=DisputeStatus.SETTLED))
        ).count(),
    )


def escrow_clock(order: Order) -> EscrowClock:
    """The hold invoice as LND sees it now and the chain tip. Call outside transactions."""
    if not order.hold_invoice_hash:
        return EscrowClock(state="none")
    margin = escrow_guard_margin_blocks()  # the guardian's own rule (clamped when ≥ the CLTV delta)
    client = get_lightning_client()
    try:
        update = client.lookup_invoice(payment_hash=bytes.fromhex(order.hold_invoice_hash))
        if update.state is not InvoiceState.ACCEPTED:
            return EscrowClock(state=str(update.state))
        tip = client.get_info().block_height
    except LightningError:
        return EscrowClock(state="unknown")
    return EscrowClock(
        state=str(update.state), tip_height=tip, expiry_height=update.lowest_htlc_expiry_height, margin_blocks=margin
    )


def order_price(order: Order) -> Decimal | None:
    """Fiat per bitcoin the trade was made at."""
    if not order.amount_sats:
        return None
    return (Decimal(order.fiat_amount) * 100_000_000 / Decimal(order.amount_sats)).quantize(Decimal("0.01"))


def waiting(dispute: Dispute, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    end = dispute.resolved_at or now
    return {
        "opened": end - dispute.created_at,
        "since_taken": (end - dispute.taken_at) if dispute.taken_at else None,
        "unassigned": dispute.taken_at is None and dispute.resolved_at is None,
    }
