"""`admin-add-solver` (docs/PROTOCOL.md §Admin-add-solver) and solver removal (API/admin only).

Deliberate fix: a key that already has a Trader row is promoted; mostrod's plain INSERT
fails on it and the admin is left without a reply (docs/PROTOCOL.md §Differences).
"""

from django.db import transaction

from disputes.services.authz import is_node
from disputes.services.errors import InvalidSolverKey, NotNodeAdmin
from nostrbridge.context import Atomic
from nostrbridge.node_identity import decode_npub
from nostrbridge.outbox import enqueue_message
from nostrbridge.protocol.enums import Action, CantDoReason, MessageType
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import Payload, TextMessagePayload
from orders.models import SolverCategory, Trader

PERMISSION_SUFFIXES = {
    "read": SolverCategory.READ,
    "write": SolverCategory.READ_WRITE,
    "read-write": SolverCategory.READ_WRITE,
}


def parse_solver_text(payload: Payload | None) -> tuple[str, int]:
    """`npub1…[:read|:write|:read-write]` → (hex pubkey, category); read-write by default."""
    if not isinstance(payload, TextMessagePayload) or not payload.text.strip():
        raise CantDo(CantDoReason.INVALID_TEXT_MESSAGE)
    parts = payload.text.strip().split(":")
    if len(parts) > 2 or (len(parts) == 2 and parts[1] not in PERMISSION_SUFFIXES):
        raise CantDo(CantDoReason.INVALID_PARAMETERS)
    category = PERMISSION_SUFFIXES[parts[1]] if len(parts) == 2 else SolverCategory.READ_WRITE
    try:
        return decode_npub(parts[0]), category
    except ValueError as exc:
        raise InvalidSolverKey(f"bad npub in admin-add-solver: {exc}") from exc


def solver_add(
    *,
    actor_pubkey: str,
    payload: Payload | None,
    request_id: int | None = None,
    reply_to: str | None = None,
    atomic: Atomic = transaction.atomic,
) -> Trader:
    """The Nostr form: only the node identity may send it (anyone else: silence)."""
    if not is_node(actor_pubkey):
        raise NotNodeAdmin("admin-add-solver from a key that is not the node's")
    pubkey, category = parse_solver_text(payload)
    return solver_grant(
        actor_pubkey=actor_pubkey,
        pubkey=pubkey,
        category=category,
        request_id=request_id,
        reply_to=reply_to,
        atomic=atomic,
    )


def solver_grant(
    *,
    actor_pubkey: str,
    pubkey: str,
    category: int,
    request_id: int | None = None,
    reply_to: str | None = None,
    atomic: Atomic = transaction.atomic,
) -> Trader:
    """Make `pubkey` a solver of `category` (creating or promoting its row); ack to `reply_to`."""
    if not is_node(actor_pubkey):
        raise NotNodeAdmin("only the node identity manages solvers")
    with atomic():
        trader, created = Trader.objects.get_or_create(
            pubkey=pubkey, defaults={"is_solver": True, "solver_category": category}
        )
        if not created:
            Trader.objects.filter(pk=pubkey).update(is_solver=True, solver_category=category)
            trader.refresh_from_db()
        if reply_to:
            ack = Message.new(Action.ADMIN_ADD_SOLVER, type=MessageType.DISPUTE, request_id=request_id)
            enqueue_message(recipient_pubkey=reply_to, message=ack)
    return trader


def solver_remove(*, actor_pubkey: str, pubkey: str, atomic: Atomic = transaction.atomic) -> bool:
    """Withdraw the solver role (the row and its reputation stay). True when it was a solver.

    Disputes it holds stay assigned: it can no longer settle or cancel them, and the node key
    (an operator) can take them over.
    """
    if not is_node(actor_pubkey):
        raise NotNodeAdmin("only the node identity manages solvers")
    with atomic():
        changed = Trader.objects.filter(pk=pubkey, is_solver=True).update(
            is_solver=False, solver_category=SolverCategory.NONE
        )
    return changed == 1
