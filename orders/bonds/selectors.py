"""Bond figures and the bond ledger (reads only; docs/PROTOCOL.md §Bonds)."""

from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.db.models.functions import Coalesce

from orders.bonds.models import Bond, BondPart, BondState

B = BondState


@dataclass(frozen=True)
class BondFigures:
    locked_count: int
    locked_sats: int
    slashed_count: int
    node_kept_sats: int  # node shares of slashed bonds, plus whole forfeited ones
    paid_out_sats: int  # counterparty shares paid
    owed_sats: int  # counterparty shares not paid yet (pending-payout, failed)
    forfeited_sats: int
    lnd_canceled_count: int


def _sum(field: str, condition: Q):
    return Coalesce(Sum(field, filter=condition), 0)


def bond_figures() -> BondFigures:
    # A settled range bond is counted through its parts (slices and refund), not twice.
    split = Exists(Bond.objects.filter(parent_bond=OuterRef("pk")))
    slashed = Q(state__in=[B.PENDING_PAYOUT, B.SLASHED, B.FAILED, B.FORFEITED]) & ~Q(split)
    owed = Q(state__in=[B.PENDING_PAYOUT, B.FAILED])
    row = Bond.objects.aggregate(
        locked_count=Count("pk", filter=Q(state=B.LOCKED)),
        locked_sats=_sum("amount_sats", Q(state=B.LOCKED)),
        slashed_count=Count("pk", filter=slashed & ~Q(part=BondPart.REFUND)),  # a refund is no slash
        node_shares=_sum("node_share_sats", slashed & ~Q(state=B.FORFEITED)),
        paid_out_sats=_sum("payout_sats", Q(state=B.SLASHED)),
        owed_sats=_sum("payout_sats", owed),
        forfeited_sats=_sum("amount_sats", Q(state=B.FORFEITED)),
        lnd_canceled_count=Count("pk", filter=Q(state=B.LND_CANCELED)),
    )
    return BondFigures(
        locked_count=row["locked_count"],
        locked_sats=row["locked_sats"],
        slashed_count=row["slashed_count"],
        node_kept_sats=row["node_shares"] + row["forfeited_sats"],
        paid_out_sats=row["paid_out_sats"],
        owed_sats=row["owed_sats"],
        forfeited_sats=row["forfeited_sats"],
        lnd_canceled_count=row["lnd_canceled_count"],
    )


_OPEN_ACCOUNTS: dict[str, str] = {
    B.REQUESTED: "unpaid",
    B.LOCKED: "held",
    B.RELEASED: "returned",
    B.LND_CANCELED: "lost_at_lnd",
}


def bond_ledger() -> dict[str, int]:
    """Where every bonded sat is, by account; the accounts add up to the sum of all bonds.

    unpaid (requested), held (locked), returned (released: the HTLC canceled, the party keeps
    it), lost_at_lnd (lnd-canceled), node (node shares and forfeited bonds), paid (shares paid),
    owed (shares not paid yet). A range maker's settled bond is accounted through its parts
    (slices and the maker's refund), which must add up to it; while it is held its parts are
    only earmarks. `problems` lists bonds whose split does not add up.
    """
    ledger = dict.fromkeys(("unpaid", "held", "returned", "lost_at_lnd", "node", "paid", "owed", "total"), 0)
    problems = 0
    parts: dict[int, list[Bond]] = {}
    for part in Bond.objects.exclude(part=BondPart.WHOLE):
        parts.setdefault(part.parent_bond_id or 0, []).append(part)
    for bond in Bond.objects.filter(part=BondPart.WHOLE):
        ledger["total"] += bond.amount_sats
        if bond.state in (B.REQUESTED, B.LOCKED, B.RELEASED, B.LND_CANCELED):
            ledger[_OPEN_ACCOUNTS[bond.state]] += bond.amount_sats
        elif bond.pk in parts:
            problems += sum(part.amount_sats for part in parts[bond.pk]) != bond.amount_sats
            problems += sum(_settled_into(ledger, part) for part in parts[bond.pk])
        else:
            problems += _settled_into(ledger, bond)
    ledger["problems"] = problems
    return ledger


def _settled_into(ledger: dict[str, int], bond: Bond) -> int:
    """A settled bond's sats into node / paid / owed; 1 when its split does not add up."""
    node_share, payout = bond.node_share_sats or 0, bond.payout_sats or 0
    if bond.state == B.FORFEITED:
        ledger["node"] += bond.amount_sats
    else:
        ledger["node"] += node_share
        ledger["paid" if bond.state == B.SLASHED else "owed"] += payout
    return int(node_share + payout != bond.amount_sats)
