"""The browser and API edge of the dispute services: Django user → actor, permission gates.

Both the admin console and the REST API call these, so a permission rule cannot differ
between them. A user acts as the node key when it is an operator (or superuser), otherwise
as the pubkey of its `SolverLink`; the audit trail names it `admin:<username>`.
"""

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied

from disputes.models import Dispute, SolverLink
from disputes.services import Resolution, dispute_cancel, dispute_settle, dispute_take, solver_grant, solver_remove
from mostro_site.staff import is_operator
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.payloads import BondResolutionPayload
from nostrbridge.protocol.structs import BondResolution
from orders.bonds.slash import SlashChoice
from orders.models import Trader

TAKE_PERMISSION = "disputes.take_dispute"
RESOLVE_PERMISSION = "disputes.resolve_dispute"
MANAGE_SOLVERS_PERMISSION = "disputes.manage_solvers"


class ConsoleForbidden(PermissionDenied):
    """Authenticated but not allowed; `code` is the machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class WebActor:
    pubkey: str
    label: str  # audit label: admin:<username>
    reply_to: str | None  # the solver's own Nostr key gets the protocol copy; the node key gets none


def web_actor(user) -> WebActor:
    label = f"admin:{user.get_username()}"
    if is_operator(user):
        return WebActor(pubkey=node_pubkey(), label=label, reply_to=None)
    link = SolverLink.objects.filter(user=user).first()
    if link is None:
        raise ConsoleForbidden("no_solver_identity", "this user is not linked to a solver pubkey")
    return WebActor(pubkey=link.pubkey, label=label, reply_to=link.pubkey)


def require(user, permission: str) -> None:
    if not (user.is_active and user.has_perm(permission)):
        raise ConsoleForbidden("not_authorized", f"missing permission {permission}")


def take_as(user, *, dispute_id) -> Dispute:
    require(user, TAKE_PERMISSION)
    actor = web_actor(user)
    return dispute_take(
        dispute_id=dispute_id, actor_pubkey=actor.pubkey, actor_label=actor.label, reply_to=actor.reply_to
    )


def settle_as(user, *, dispute: Dispute, slash: SlashChoice | None = None) -> Resolution:
    require(user, RESOLVE_PERMISSION)
    actor = web_actor(user)
    return dispute_settle(
        order_id=dispute.order_id,
        actor_pubkey=actor.pubkey,
        actor_label=actor.label,
        reply_to=actor.reply_to,
        payload=slash_payload(slash),
    )


def cancel_as(user, *, dispute: Dispute, slash: SlashChoice | None = None) -> Resolution:
    require(user, RESOLVE_PERMISSION)
    actor = web_actor(user)
    return dispute_cancel(
        order_id=dispute.order_id,
        actor_pubkey=actor.pubkey,
        actor_label=actor.label,
        reply_to=actor.reply_to,
        payload=slash_payload(slash),
    )


def slash_payload(slash: SlashChoice | None) -> BondResolutionPayload | None:
    """The solver's slash choice as the Nostr payload (`null` when nobody is slashed, as mostrix)."""
    if slash is None or not slash.sides:
        return None
    return BondResolutionPayload(BondResolution(slash_seller=slash.slash_seller, slash_buyer=slash.slash_buyer))


def grant_as(user, *, pubkey: str, category: int) -> Trader:
    require(user, MANAGE_SOLVERS_PERMISSION)
    return solver_grant(actor_pubkey=_operator_key(user), pubkey=pubkey, category=category)


def remove_as(user, *, pubkey: str) -> bool:
    require(user, MANAGE_SOLVERS_PERMISSION)
    return solver_remove(actor_pubkey=_operator_key(user), pubkey=pubkey)


def _operator_key(user) -> str:
    # Managing solvers is the node identity's privilege (admin-add-solver): operators only.
    if not is_operator(user):
        raise ConsoleForbidden("not_authorized", "only operators manage solvers")
    return node_pubkey()
