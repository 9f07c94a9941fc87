"""Checks between unwrapping and dispatch (01-transport.md §6 steps 5 and 9).

The first-contact PoW gate asks the database directly whether a trade key is active, so a
key becomes "known" the moment its order is stored (mostrod's cache lags up to 60 s).
"""

from django.db import transaction
from django.db.models import Q

from disputes.models import OPEN_DISPUTE_STATUSES, Dispute
from nostrbridge.context import SilentDrop
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.event import leading_zero_bits
from orders.models import Order, Trader
from orders.status import TERMINAL_STATUSES

TRADE_INDEX_ACTIONS = frozenset({Action.NEW_ORDER, Action.TAKE_BUY, Action.TAKE_SELL})


def is_known_trade_key(pubkey: str) -> bool:
    active_order = (
        Order.objects.filter(Q(buyer_pubkey=pubkey) | Q(seller_pubkey=pubkey) | Q(creator_pubkey=pubkey))
        .exclude(status__in=TERMINAL_STATUSES)
        .exists()
    )
    if active_order:
        return True
    return Dispute.objects.filter(solver_pubkey=pubkey, status__in=OPEN_DISPUTE_STATUSES).exists()


def check_first_contact(*, event_id: str, sender: str, pow_bits: int, first_contact_bits: int) -> None:
    if first_contact_bits <= pow_bits:
        return
    if leading_zero_bits(event_id) >= first_contact_bits:
        return
    if not is_known_trade_key(sender):
        raise SilentDrop("first-contact proof of work not met", cause="first-contact-pow")


def check_trade_index(*, action: str, identity: str, sender: str, trade_index: int | None) -> None:
    """Trade-index rules of 01-transport.md §7 for new-order / take-buy / take-sell.

    Deliberate choice: a known identity sending `trade_index: 0` gets `invalid_trade_index`
    (mostrod accepts it and resets the counter, a quirk the spec allows us to refuse).
    """
    if action not in TRADE_INDEX_ACTIONS or identity == sender:
        return
    if trade_index is None:
        raise SilentDrop("reputation mode without trade_index", cause="missing-trade-index")
    trader = Trader.objects.filter(pk=identity).only("last_trade_index").first()
    if trader is None:
        if trade_index == 0:
            raise SilentDrop("unknown identity with trade_index 0", cause="unknown-identity-index-0")
        with transaction.atomic():
            Trader.objects.get_or_create(pubkey=identity, defaults={"last_trade_index": trade_index})
        return
    if trade_index <= trader.last_trade_index or trade_index == 0:
        raise CantDo(CantDoReason.INVALID_TRADE_INDEX)
