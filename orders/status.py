"""Order vocabulary: the exact wire strings of mostro-core (kebab-case), stored as-is.

The database stores the same strings as the Rust daemon so an imported mostrod database and
the protocol messages never need translating.
"""

from django.db import models


class OrderKind(models.TextChoices):
    BUY = "buy"  # made by a buyer; the taker sells
    SELL = "sell"  # made by a seller; the taker buys


class OrderStatus(models.TextChoices):
    PENDING = "pending"  # on the book, takeable
    WAITING_TAKER_BOND = "waiting-taker-bond"  # takers paying bonds; published as pending
    WAITING_MAKER_BOND = "waiting-maker-bond"  # maker paying a bond; not published
    WAITING_BUYER_INVOICE = "waiting-buyer-invoice"  # taken; the buyer owes a payout invoice
    WAITING_PAYMENT = "waiting-payment"  # taken; the seller owes the hold-invoice payment
    ACTIVE = "active"  # escrow locked and buyer invoice known; fiat leg running
    FIAT_SENT = "fiat-sent"  # buyer says the fiat left
    DISPUTE = "dispute"  # a dispute is open
    SETTLED_HOLD_INVOICE = "settled-hold-invoice"  # escrow settled; paying the buyer
    SUCCESS = "success"  # buyer paid
    CANCELED = "canceled"
    COOPERATIVELY_CANCELED = "cooperatively-canceled"
    CANCELED_BY_ADMIN = "canceled-by-admin"
    EXPIRED = "expired"
    SETTLED_BY_ADMIN = "settled-by-admin"  # legacy, never written
    COMPLETED_BY_ADMIN = "completed-by-admin"  # legacy, never written
    IN_PROGRESS = "in-progress"  # published bucket only, never stored


S = OrderStatus

TERMINAL_STATUSES = frozenset({S.SUCCESS, S.CANCELED, S.COOPERATIVELY_CANCELED, S.CANCELED_BY_ADMIN, S.EXPIRED})
ALREADY_CANCELED_STATUSES = frozenset({S.CANCELED, S.COOPERATIVELY_CANCELED, S.CANCELED_BY_ADMIN})
PRE_TRADE_STATUSES = frozenset({S.PENDING, S.WAITING_TAKER_BOND})
WAITING_STATUSES = frozenset({S.WAITING_BUYER_INVOICE, S.WAITING_PAYMENT})
ESCROW_LOCKED_STATUSES = frozenset({S.ACTIVE, S.FIAT_SENT, S.DISPUTE})

# Every move the engine may make (docs/PROTOCOL.md §State-machine). transition_order refuses others,
# so a coding slip cannot invent a path the protocol does not have.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    S.WAITING_MAKER_BOND: frozenset({S.PENDING, S.EXPIRED, S.CANCELED}),  # canceled: the maker, #996
    # `canceled-by-admin` from the two pre-trade statuses: the operator's cancel of an order nobody
    # took yet (mostrod 0.18.7, `pretrade_only`; docs/PROTOCOL.md §Admin-cancel).
    S.PENDING: frozenset(
        {S.WAITING_TAKER_BOND, S.WAITING_BUYER_INVOICE, S.WAITING_PAYMENT, S.CANCELED, S.EXPIRED, S.CANCELED_BY_ADMIN}
    ),
    S.WAITING_TAKER_BOND: frozenset(
        {S.PENDING, S.WAITING_BUYER_INVOICE, S.WAITING_PAYMENT, S.CANCELED, S.EXPIRED, S.CANCELED_BY_ADMIN}
    ),
    S.WAITING_BUYER_INVOICE: frozenset({S.WAITING_PAYMENT, S.ACTIVE, S.PENDING, S.CANCELED}),
    S.WAITING_PAYMENT: frozenset({S.ACTIVE, S.WAITING_BUYER_INVOICE, S.PENDING, S.CANCELED}),
    S.ACTIVE: frozenset({S.FIAT_SENT, S.DISPUTE, S.CANCELED, S.COOPERATIVELY_CANCELED}),
    S.FIAT_SENT: frozenset({S.DISPUTE, S.COOPERATIVELY_CANCELED, S.SETTLED_HOLD_INVOICE}),
    S.DISPUTE: frozenset({S.COOPERATIVELY_CANCELED, S.SETTLED_HOLD_INVOICE, S.CANCELED_BY_ADMIN}),
    S.SETTLED_HOLD_INVOICE: frozenset({S.SUCCESS}),
}


def is_allowed_transition(from_status: str, to_status: str) -> bool:
    return to_status in ALLOWED_TRANSITIONS.get(from_status, frozenset())
