"""The composition root: the one place where the layers below are handed what they need from above.

Dependencies run one way (docs/ARCHITECTURE.md, enforced by import-linter): the project shell →
disputes → orders → devfee → the bridge's machinery → lightning → the protocol package. The
bridge must still call the action handlers of orders and disputes, and orders must still tell
disputes when the parties close a trade themselves. Each declares what it needs
(`nostrbridge.wiring.BridgeWiring`, `orders.wiring.OrdersWiring`); settings name the functions
below (`MOSTRO_BRIDGE_WIRING`, `MOSTRO_ORDERS_WIRING`), which build them on first use, importing
the apps lazily so loading settings, the bridge or orders imports nothing above them.
"""

from nostrbridge.wiring import BridgeWiring
from orders.wiring import OrdersWiring


def bridge_wiring() -> BridgeWiring:
    """Protocol action → handler (mostrod `app.rs` dispatch), the known-key gate, the reconciler,
    and the dispute chat's side channel (events for the console's solver keys)."""
    from disputes.chat.bridge import ChatHooks
    from disputes.handlers import HANDLERS as DISPUTE_HANDLERS
    from orders.handlers import HANDLERS as ORDER_HANDLERS
    from orders.handlers.new_order import new_order_stays_in_database
    from orders.jobs import reconcile_order_events

    return BridgeWiring(
        handlers={**ORDER_HANDLERS, **DISPUTE_HANDLERS},
        is_known_trade_key=is_known_trade_key,
        reconcile_order_events=reconcile_order_events,
        side_channels=(ChatHooks,),
        group_commit_actions=GROUP_COMMIT_ACTIONS,
        # A new-order leaves the database only for a Lightning address's check or a maker bond.
        group_commit_when={"new-order": new_order_stays_in_database},
    )


# Handlers that never leave the database (reads, status moves, outbox rows): the bridge batches
# them into one transaction. Not here: take-*, add-invoice, release, cancel, dispute and admin
# actions (LND or LNURL calls), reputation import/export; new-order only case by case (above).
GROUP_COMMIT_ACTIONS = frozenset(
    {"orders", "last-trade-index", "restore-session", "user-info", "trade-pubkey", "fiat-sent", "rate-user"}
)


def is_known_trade_key(pubkey: str) -> bool:
    """A key in an unfinished order, or the solver of an open dispute (first-contact PoW gate)."""
    from disputes.selectors import solver_of_open_dispute
    from orders.selectors import trade_key_in_active_order

    return trade_key_in_active_order(pubkey=pubkey) or solver_of_open_dispute(pubkey=pubkey)


def orders_wiring() -> OrdersWiring:
    """A release or cooperative cancel closes the order's open dispute (disputes' one writer)."""
    from disputes.services.escrow_deadline import escrow_lost_force_dispute
    from disputes.services.resolve import dispute_close_by_parties

    return OrdersWiring(
        trade_closed_by_parties=dispute_close_by_parties, escrow_lost_in_fiat_sent=escrow_lost_force_dispute
    )
