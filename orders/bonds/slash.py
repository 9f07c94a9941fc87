"""Slashing a bond (docs/PROTOCOL.md §Bonds, Slash): by a solver's directive or on a waiting timeout.

The decision (`locked → pending-payout`, the split frozen: node share = floor(bond × share
pct), the counterparty the rest) is written in the caller's transaction, before the order's
own transition releases whatever bond is still open; the HTLC is settled after the commit
(`bonds_finish_htlcs`). A side to slash without a locked bond is refused before anything moves.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from mostro_site.config import node_config
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.payloads import OrderPayload
from orders.bonds.amounts import bond_node_share_sats
from orders.bonds.models import Bond, BondPart, BondRole, BondState
from orders.bonds.ranges import RangeSlashRefused, range_maker_bond, range_slice_slash, slice_slash_sats
from orders.bonds.release import bonds_finish_htlcs
from orders.bonds.transitions import bond_transition
from orders.bonds.wire import bond_order_view
from orders.models import Order
from orders.status import OrderKind
from orders.wire import send

SIDES = ("buyer", "seller")


class BondSlashRefused(CantDo):
    """`invalid_payload` on the wire; `message` says why to a solver in the console or the API."""

    def __init__(self, message: str) -> None:
        super().__init__(CantDoReason.INVALID_PAYLOAD)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class SlashChoice:
    slash_buyer: bool = False
    slash_seller: bool = False

    @property
    def sides(self) -> list[str]:
        return [side for side, on in zip(SIDES, (self.slash_buyer, self.slash_seller), strict=True) if on]


def side_role(order: Order, side: str) -> str:
    """The seller of a sell order is its maker; the buyer of a buy order too."""
    maker_side = "seller" if order.kind == OrderKind.SELL else "buyer"
    return BondRole.MAKER if side == maker_side else BondRole.TAKER


def side_pubkey(order: Order, side: str) -> str | None:
    return order.buyer_pubkey if side == "buyer" else order.seller_pubkey


def role_side(order: Order, role: str) -> str:
    return next(side for side in SIDES if side_role(order, side) == role)


def side_bond(order: Order, side: str) -> Bond | None:
    """The side's bond on this order: its locked one, else its latest (for the console). A range
    maker's is the bond on the range's first order, which covers every slice."""
    role = side_role(order, side)
    if role == BondRole.MAKER:
        range_bond = range_maker_bond(order)
        if range_bond is not None:
            return range_bond
    bonds = Bond.objects.filter(order_id=order.pk, role=role, pubkey=side_pubkey(order, side), part=BondPart.WHOLE)
    return bonds.filter(state=BondState.LOCKED).first() or bonds.order_by("-pk").first()


def bond_slash_check(*, order: Order, choice: SlashChoice) -> list[Bond]:
    """The locked bonds to slash; raises `BondSlashRefused` (nothing moved) otherwise."""
    targets = []
    for side in choice.sides:
        bond = side_bond(order, side)
        if bond is None:
            raise BondSlashRefused(f"the {side} posted no bond on this order: nothing to slash")
        if bond.state == BondState.LND_CANCELED:
            raise BondSlashRefused(
                f"the {side}'s bond HTLC was canceled at LND on {bond.lnd_canceled_at:%Y-%m-%d %H:%M} UTC "
                "(not by this node): there is nothing left to slash"
            )
        if bond.state != BondState.LOCKED:
            raise BondSlashRefused(f"the {side}'s bond is {bond.state}, not locked: nothing to slash")
        if bond.order_id != order.pk or order.is_range:  # a range maker's bond: this slice's share
            _check_slice_share(order, bond, side)
        targets.append(bond)
    return targets


def _check_slice_share(order: Order, bond: Bond, side: str) -> None:
    if Bond.objects.filter(parent_bond=bond, part=BondPart.SLICE, order_id=order.pk).exists():
        raise BondSlashRefused(f"the {side} was already slashed on this slice of the range")
    if slice_slash_sats(order=order, bond=bond)[0] <= 0:
        raise BondSlashRefused(f"nothing is left of the {side}'s range bond for this slice")


def bonds_slash(*, order: Order, bonds: list[Bond], actor: str, reason: str) -> list[int]:
    """Inside the caller's transaction: decide each slash and tell the slashed party."""
    share_pct = node_config().bond_slash_node_share_pct
    now = timezone.now()
    slashed = []
    range_bond = range_maker_bond(order)
    for bond in bonds:
        side = role_side(order, bond.role)
        if range_bond is not None and bond.pk == range_bond.pk:
            try:  # one slice's share of the range bond; its HTLC is settled when the range ends
                slashed.append(range_slice_slash(order=order, bond=bond, actor=actor, reason=reason).pk)
            except RangeSlashRefused as exc:
                raise BondSlashRefused(f"the {side}'s range bond: {exc}; nothing was slashed") from exc
            continue
        node_share = bond_node_share_sats(bond_sats=bond.amount_sats, share_pct=share_pct)
        winner = side_pubkey(order, "seller" if side == "buyer" else "buyer")
        won = bond_transition(
            bond_id=bond.pk,
            from_states=[BondState.LOCKED],
            to_state=BondState.PENDING_PAYOUT,
            actor=actor,
            reason=f"slashed: {reason}",
            set_fields={
                "decided_at": now,
                "slashed_at": now,
                "slashed_reason": reason,
                "node_share_sats": node_share,
                "payout_sats": bond.amount_sats - node_share,
                "payout_recipient": winner,
            },
        )
        if not won:
            raise BondSlashRefused(f"the {side}'s bond changed meanwhile; nothing was slashed")
        slashed.append(bond.pk)
        view = OrderPayload(bond_order_view(order, amount_sats=bond.amount_sats))
        send(bond.pubkey, Action.BOND_SLASHED, order, payload=view)
    if slashed:
        transaction.on_commit(lambda: bonds_finish_htlcs(bond_ids=slashed))
    return slashed
