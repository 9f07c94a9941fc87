"""Read-only order queries shared by handlers, services, jobs and the invoice watcher."""

from uuid import UUID

from django.db.models import Q

from orders.models import Order
from orders.status import ESCROW_LOCKED_STATUSES, TERMINAL_STATUSES, WAITING_STATUSES, OrderStatus


def order_get(*, order_id: UUID | str | None) -> Order | None:
    if order_id is None:
        return None
    return Order.objects.filter(pk=order_id).first()


def order_get_by_hold_hash(*, payment_hash_hex: str) -> Order | None:
    return Order.objects.filter(hold_invoice_hash=payment_hash_hex.lower()).first()


def buyer_has_pending_order(*, identity: str) -> bool:
    """The identity already owes a payout invoice as buyer (take-sell's `pending_order_exists`)."""
    return Order.objects.filter(master_buyer_pubkey=identity, status=OrderStatus.WAITING_BUYER_INVOICE).exists()


def seller_has_pending_order(*, identity: str) -> bool:
    """The identity already owes an escrow payment as seller (take-buy's `pending_order_exists`)."""
    return Order.objects.filter(master_seller_pubkey=identity, status=OrderStatus.WAITING_PAYMENT).exists()


def watched_invoice_hashes() -> list[str]:
    """Hold invoices whose LND state still matters (docs/PROTOCOL.md §Escrow).

    Waiting orders with a hash (the seller may still pay) and locked escrows (LND may still
    cancel the HTLC, which docs/PROTOCOL.md §Escrow reports to the parties).
    """
    query = Order.objects.filter(
        Q(status__in=WAITING_STATUSES, hold_invoice_hash__isnull=False)
        | Q(status__in=ESCROW_LOCKED_STATUSES, invoice_held_at__isnull=False, hold_invoice_hash__isnull=False)
    )
    return [hash_hex for hash_hex in query.order_by("pk").values_list("hold_invoice_hash", flat=True) if hash_hex]


DEV_FEE_DUE_STATUSES = (OrderStatus.SETTLED_HOLD_INVOICE, OrderStatus.SUCCESS)


def dev_fee_billable_orders(*, limit: int) -> list[tuple[UUID, int]]:
    """(order id, dev fee in sats) of settled or successful orders whose fee has no ledger row yet.

    The fee is owed from the settlement on, even when the buyer payout later fails (docs/PROTOCOL.md §Dev-fee).
    """
    query = Order.objects.filter(
        status__in=DEV_FEE_DUE_STATUSES, dev_fee_sats__gt=0, dev_fee_payment__isnull=True
    ).order_by("updated_at")
    return list(query.values_list("pk", "dev_fee_sats")[:limit])


def trade_key_in_active_order(*, pubkey: str) -> bool:
    """The key trades (as buyer, seller or maker) in an order that is not finished yet."""
    query = Order.objects.filter(Q(buyer_pubkey=pubkey) | Q(seller_pubkey=pubkey) | Q(creator_pubkey=pubkey))
    return query.exclude(status__in=TERMINAL_STATUSES).exists()
