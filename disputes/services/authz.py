"""Who may take, settle and cancel a dispute (docs/PROTOCOL.md §Admin-take-dispute, §Admin-settle, §Admin-add-solver).

Every rule is on the actor's *identity* pubkey: a solver's registered key, or the node's
own key, which is the super-admin (RPC/operator actions run as it).
"""

from disputes.models import OPEN_DISPUTE_STATUSES, Dispute, DisputeStatus
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.errors import CantDo
from orders.models import Order, SolverCategory, Trader


def solver_category(pubkey: str | None) -> int | None:
    """The solver's category, or None when the key is not a registered solver."""
    if not pubkey:
        return None
    trader = Trader.objects.filter(pk=pubkey, is_solver=True).only("solver_category").first()
    if trader is None:
        return None
    # Legacy category 0 counts as read-write (mostrod's solver_category backfill).
    return trader.solver_category or SolverCategory.READ_WRITE


def is_node(pubkey: str | None) -> bool:
    return pubkey == node_pubkey()


def may_take(dispute: Dispute, actor_pubkey: str) -> bool:
    if is_node(actor_pubkey):
        return dispute.status in OPEN_DISPUTE_STATUSES
    category = solver_category(actor_pubkey)
    if category is None:
        return False
    if dispute.status == DisputeStatus.INITIATED:
        return True
    if dispute.status != DisputeStatus.IN_PROGRESS:
        return False
    if dispute.solver_pubkey == actor_pubkey:
        return True
    # A read-write solver may take over from a read-only one (who cannot finish it).
    return category == SolverCategory.READ_WRITE and solver_category(dispute.solver_pubkey) == SolverCategory.READ


def ensure_may_finalize(dispute: Dispute | None, actor_pubkey: str) -> Dispute:
    """Settle/cancel gate: the assigned solver, read-write unless it is the node key. Returns the dispute."""
    if dispute is None or dispute.solver_pubkey != actor_pubkey:
        if dispute is not None and is_node(dispute.solver_pubkey):
            raise CantDo(CantDoReason.DISPUTE_TAKEN_BY_ADMIN)
        raise CantDo(CantDoReason.IS_NOT_YOUR_DISPUTE)
    if not is_node(actor_pubkey) and solver_category(actor_pubkey) != SolverCategory.READ_WRITE:
        raise CantDo(CantDoReason.NOT_AUTHORIZED)
    return dispute


def ensure_not_a_party(order: Order, *actor_keys: str | None) -> None:
    """A solver never decides a trade they are in (docs/SECURITY.md §Solvers): refused when the
    actor's identity or trade key is the buyer's or the seller's (trade or identity key).

    Only keys the node knows can be compared: a solver who trades under an unrelated identity
    is not detectable here."""
    party_keys = {
        order.buyer_pubkey,
        order.seller_pubkey,
        order.master_buyer_pubkey,
        order.master_seller_pubkey,
    } - {None, ""}
    if any(key and key in party_keys for key in actor_keys):
        raise CantDo(CantDoReason.NOT_AUTHORIZED)
