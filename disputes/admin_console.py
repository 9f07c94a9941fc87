"""The solver console's money actions: a confirmation page that states exactly what will move,
then the shared `disputes.console` call (the same as the REST API and the Nostr actions).

Nothing here runs inside a transaction: the services call LND and open their own.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.template.response import TemplateResponse

from disputes.console import (
    RESOLVE_PERMISSION,
    TAKE_PERMISSION,
    ConsoleForbidden,
    WebActor,
    cancel_as,
    settle_as,
    take_as,
    web_actor,
)
from disputes.models import Dispute
from disputes.selectors import dispute_amounts
from lightning.errors import LightningError
from mostro_site.config import node_config
from nostrbridge.context import SilentDrop
from nostrbridge.node_identity import encode_npub, node_pubkey
from nostrbridge.protocol.errors import CantDo
from orders.bonds.amounts import bond_node_share_sats
from orders.bonds.ranges import slice_slash_sats
from orders.bonds.slash import SIDES, BondSlashRefused, SlashChoice, side_bond
from orders.services.escrow import EscrowError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsoleAction:
    name: str
    title: str
    verb: str
    permission: str
    run: Callable


def _take(user, dispute: Dispute, slash: SlashChoice):
    return take_as(user, dispute_id=dispute.pk)


def _settle(user, dispute: Dispute, slash: SlashChoice):
    return settle_as(user, dispute=dispute, slash=slash)


def _refund(user, dispute: Dispute, slash: SlashChoice):
    return cancel_as(user, dispute=dispute, slash=slash)


ACTIONS = {
    "take": ConsoleAction("take", "Take dispute", "taken", TAKE_PERMISSION, _take),
    "settle": ConsoleAction("settle", "Settle to buyer", "settled to the buyer", RESOLVE_PERMISSION, _settle),
    "refund": ConsoleAction("refund", "Refund seller", "refunded to the seller", RESOLVE_PERMISSION, _refund),
}


def _who(pubkey: str | None) -> str:
    return f"{encode_npub(pubkey)} ({pubkey[:12]}…)" if pubkey else "nobody"


def movements(action: str, dispute: Dispute, actor: WebActor | None) -> list[str]:
    """Plain sentences: every amount in sats and who receives it."""
    order, money = dispute.order, dispute_amounts(dispute.order)
    if action == "take":
        me = "the node key" if actor and actor.pubkey == node_pubkey() else _who(actor.pubkey if actor else None)
        return [
            f"Dispute {dispute.pk} is assigned to you ({me}); no funds move.",
            "The buyer and the seller are told your pubkey so they can write to you.",
        ]
    if action == "settle":
        return [
            f"The seller's hold invoice of {money['escrow_sats']} sats is settled (escrow released).",
            f"The buyer {_who(order.buyer_pubkey)} is paid {money['buyer_payout_sats']} sats "
            "on the invoice they gave (the routing fee is the node's cost).",
            f"The node keeps {money['node_fee_sats']} sats of fees; the seller gets nothing back.",
            f"The order moves dispute → settled-hold-invoice → success ({money['fiat']} was the fiat side).",
        ]
    return [
        f"The seller's hold invoice of {money['escrow_sats']} sats is canceled: "
        f"the seller {_who(order.seller_pubkey)} gets all {money['seller_refund_sats']} sats back.",
        "The buyer receives nothing and no fee is charged.",
        "The order moves dispute → canceled-by-admin.",
    ]


def bond_lines(dispute: Dispute) -> list[str]:
    """Each party's bond, and exactly what each slash choice moves (docs/PROTOCOL.md §Bonds)."""
    order = dispute.order
    lines, share_pct = [], node_config().bond_slash_node_share_pct
    for side in SIDES:
        bond = side_bond(order, side)
        if bond is None:
            lines.append(f"The {side} posted no bond.")
            continue
        lines.append(f"The {side}'s bond: {bond.amount_sats} sats, {bond.state}.")
        if bond.state == "locked":
            lines.append(_slash_line(order, bond, side, share_pct))
    if any(side_bond(order, side) is not None for side in SIDES):
        lines.append("Without a slash every locked bond is released (its HTLC canceled): nobody loses anything.")
    return lines


def _slash_line(order, bond, side: str, share_pct: float) -> str:
    other = "seller" if side == "buyer" else "buyer"
    if bond.order_id == order.pk and not order.is_range:
        node_share = bond_node_share_sats(bond_sats=bond.amount_sats, share_pct=share_pct)
        return (
            f"Slash the {side}: their {bond.amount_sats}-sat bond is settled; the node keeps {node_share} sats "
            f"and the {other} is offered {bond.amount_sats - node_share} sats (add-bond-invoice)."
        )
    taken, rest = slice_slash_sats(order=order, bond=bond)  # a range maker's bond covers every slice
    node_share = bond_node_share_sats(bond_sats=taken, share_pct=share_pct)
    return (
        f"Slash the {side}: their {bond.amount_sats}-sat range bond gives up this slice's share, {taken} sats; "
        f"the node keeps {node_share} sats and the {other} is offered {taken - node_share} sats "
        f"(add-bond-invoice); the range ends and the {side} is offered back the rest, {rest} sats."
    )


def slash_options(dispute: Dispute) -> list[tuple[str, str]]:
    """(value, label) of the slash radio: none, plus each side whose bond is locked."""
    options = [("none", "Slash nobody")]
    for side in SIDES:
        bond = side_bond(dispute.order, side)
        if bond is not None and bond.state == "locked":
            options.append((side, f"Slash the {side} ({bond.amount_sats} sats)"))
    return options


def slash_from_post(request) -> SlashChoice:
    value = request.POST.get("slash", "none")
    return SlashChoice(slash_buyer=value == "buyer", slash_seller=value == "seller")


def confirmation(request, model_admin, action: str, disputes: list[Dispute], *, selected: bool) -> TemplateResponse:
    try:
        actor = web_actor(request.user)
    except ConsoleForbidden:
        actor = None
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": f"{ACTIONS[action].title}: are you sure?",
        "action": ACTIONS[action],
        "items": [
            {
                "dispute": d,
                "movements": movements(action, d, actor),
                "bonds": bond_lines(d) if action != "take" else [],
                "slash_options": slash_options(d) if action != "take" and len(disputes) == 1 else [],
            }
            for d in disputes
        ],
        "selected": selected,
        "action_name": f"{action}_selected",
    }
    return TemplateResponse(request, "admin/disputes/dispute/confirm_action.html", context)


def run(request, model_admin, action: str, disputes: list[Dispute]) -> int:
    """Run `action` on each dispute; report each outcome with message_user. Returns successes."""
    done = 0
    for dispute in disputes:
        outcome = _run_one(request, action, dispute, slash_from_post(request))
        if outcome is None:
            done += 1
            model_admin.log_change(request, dispute, ACTIONS[action].title)
            model_admin.message_user(request, f"Dispute {dispute.pk} {ACTIONS[action].verb}.", messages.SUCCESS)
        else:
            model_admin.message_user(
                request, f"Dispute {dispute.pk} not {ACTIONS[action].verb}: {outcome}", messages.ERROR
            )
    return done


def _run_one(request, action: str, dispute: Dispute, slash: SlashChoice) -> str | None:
    """None on success, otherwise the reason shown to the solver."""
    try:
        result = ACTIONS[action].run(request.user, dispute, slash)
    except BondSlashRefused as exc:
        return f"refused: {exc.message}; nothing moved"
    except CantDo as exc:
        return f"refused ({exc.reason})"
    except ConsoleForbidden as exc:
        return f"not allowed ({exc.code})"
    except SilentDrop as exc:
        return f"it changed meanwhile ({exc})"
    except (EscrowError, LightningError) as exc:
        logger.warning("console %s of dispute %s failed at LND: %s", action, dispute.pk, exc)
        return "the Lightning node could not be reached; nothing moved"
    if result == "cooperatively-canceled":
        return "the parties already canceled cooperatively; nothing moved"
    return None
