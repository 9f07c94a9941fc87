"""A range maker's bond and its per-slice slashes (docs/PROTOCOL.md §Bonds, Range makers; mostrod
`record_maker_slice_slash` and `resolve_range_maker_bond_at_close`).

The maker of a range order locks one bond, sized on the range's maximum, on the range's first
order. It covers every slice: a released slice's child order carries the range on and the bond
stays locked. A hold invoice is all or nothing, so a slash of the maker on one slice is a `slice`
part, round(bond × slice fiat / range maximum fiat) clamped to what is left of the bond, split
like any slash (node share floored, the slice's taker the rest). When the range ends (a slice ends
with no child order) the bond is released whole if no slice was slashed; otherwise it is settled
once and what no slice took is a `refund` part owed back to the maker through `add-bond-invoice`
(mostrod's option (a)). Every decision is written in the caller's transaction; the HTLC moves
after the commit (`bonds_finish_htlcs`), and no part is paid before LND confirmed the settle.
"""

from django.db.models import Sum
from django.utils import timezone

from mostro_site.config import node_config
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import OrderPayload
from orders.bonds.amounts import bond_node_share_sats
from orders.bonds.models import Bond, BondPart, BondRole, BondState, BondStateChange
from orders.bonds.transitions import bond_transition
from orders.bonds.wire import bond_order_view
from orders.live import order_changed_on_commit
from orders.models import Order
from orders.wire import send


class RangeSlashRefused(Exception):
    """The slice cannot be slashed (already slashed, or nothing left of the bond)."""


def range_root(order: Order) -> Order:
    """The range's first order (the one a child order's `range_parent` chain starts from)."""
    root = order
    while root.range_parent_id is not None:
        root = Order.objects.get(pk=root.range_parent_id)
    return root


def range_maker_bond(order: Order) -> Bond | None:
    """The maker's bond covering every slice of `order`'s range; None outside a bonded range."""
    root = range_root(order)
    if not root.is_range:
        return None
    return Bond.objects.filter(order_id=root.pk, role=BondRole.MAKER, part=BondPart.WHOLE).first()


def range_continues(order_id) -> bool:
    """A released slice put the rest of the range back on the book as a child order."""
    return Order.objects.filter(range_parent_id=order_id).exists()


def slice_share_sats(*, bond_sats: int, slice_fiat: int, max_fiat: int, already_sats: int) -> int:
    """round(bond × slice / max), half away from zero as mostrod's f64 `round`, clamped so the
    slices never take more than the bond. The fiat ratio is the sats ratio at any one price."""
    if max_fiat <= 0 or slice_fiat <= 0:
        return 0
    share = (2 * bond_sats * slice_fiat + max_fiat) // (2 * max_fiat)
    return max(0, min(share, bond_sats - already_sats))


def _parts_sats(bond: Bond, part: str) -> int:
    return Bond.objects.filter(parent_bond=bond, part=part).aggregate(total=Sum("amount_sats"))["total"] or 0


def slice_slash_sats(*, order: Order, bond: Bond) -> tuple[int, int]:
    """(what a slash of the range maker on slice `order` would take of `bond` now, what the
    maker would get back when the range ends then)."""
    max_fiat = range_root(order).max_fiat_amount or 0
    already = _parts_sats(bond, BondPart.SLICE)
    taken = slice_share_sats(
        bond_sats=bond.amount_sats, slice_fiat=order.fiat_amount, max_fiat=max_fiat, already_sats=already
    )
    return taken, bond.amount_sats - already - taken


def range_slice_slash(*, order: Order, bond: Bond, actor: str, reason: str) -> Bond:
    """Inside the caller's transaction: the maker's slash on slice `order`; the HTLC stays held.

    The slashed maker (this slice's trade key) gets `bond-slashed` with the slice's share.
    """
    locked = Bond.objects.select_for_update().filter(pk=bond.pk, state=BondState.LOCKED).first()
    if locked is None:
        raise RangeSlashRefused("the maker's range bond is no longer locked")
    if Bond.objects.filter(parent_bond=locked, part=BondPart.SLICE, order_id=order.pk).exists():
        raise RangeSlashRefused("the maker was already slashed on this slice")
    root = range_root(order)
    assert root.max_fiat_amount is not None
    amount = slice_share_sats(
        bond_sats=locked.amount_sats,
        slice_fiat=order.fiat_amount,
        max_fiat=root.max_fiat_amount,
        already_sats=_parts_sats(locked, BondPart.SLICE),
    )
    if amount <= 0:
        raise RangeSlashRefused("nothing is left of the maker's range bond for this slice")
    node_share = bond_node_share_sats(bond_sats=amount, share_pct=node_config().bond_slash_node_share_pct)
    now = timezone.now()
    part = _part_create(
        parent=locked,
        order_id=order.pk,
        kind=BondPart.SLICE,
        pubkey=order.maker_pubkey or locked.pubkey,
        amount_sats=amount,
        node_share_sats=node_share,
        recipient=order.taker_pubkey,
        reason=reason,
        now=now,
    )
    BondStateChange.objects.create(
        bond=part, from_state="", to_state=BondState.PENDING_PAYOUT, actor=actor[:80], reason=f"slice slashed: {reason}"
    )
    send(part.pubkey, Action.BOND_SLASHED, order, payload=OrderPayload(bond_order_view(order, amount_sats=amount)))
    order_changed_on_commit(order.pk)
    return part


def range_bond_close(*, bond: Bond, actor: str) -> bool:
    """Inside the caller's transaction, when the range ended: True when the bond is to be settled
    (some slice was slashed), False when it is released whole (or was no longer open)."""
    from orders.bonds.release import bonds_release  # release sits above this module

    slices = list(Bond.objects.filter(parent_bond=bond, part=BondPart.SLICE).order_by("pk"))
    if not slices:
        bonds_release(bonds=[bond], actor=actor, reason="range ended with no slice slashed")
        return False
    now = timezone.now()
    taken_sats = sum(part.amount_sats for part in slices)
    first_reason = slices[0].slashed_reason
    if not bond_transition(
        bond_id=bond.pk,
        from_states=[BondState.LOCKED],
        to_state=BondState.PENDING_PAYOUT,
        actor=actor,
        reason=f"range ended with {len(slices)} slice(s) slashed ({taken_sats} sats)",
        set_fields={"decided_at": now, "slashed_at": now, "slashed_reason": first_reason},
    ):
        return False
    # The parent is only the HTLC: its sats are owed through its parts, so it is done at once.
    bond_transition(
        bond_id=bond.pk,
        from_states=[BondState.PENDING_PAYOUT],
        to_state=BondState.SLASHED,
        actor=actor,
        reason="split into its slice parts and the maker's refund",
    )
    # The claim window runs from the settle, not from the slice's slash (mostrod re-anchors it).
    Bond.objects.filter(parent_bond=bond, part=BondPart.SLICE, state=BondState.PENDING_PAYOUT).update(slashed_at=now)
    refund_sats = bond.amount_sats - taken_sats
    if refund_sats > 0:
        refund = _part_create(
            parent=bond,
            order_id=bond.order_id,
            kind=BondPart.REFUND,
            pubkey=bond.pubkey,
            amount_sats=refund_sats,
            node_share_sats=0,
            recipient=bond.pubkey,
            reason=first_reason,
            now=now,
        )
        BondStateChange.objects.create(
            bond=refund, from_state="", to_state=BondState.PENDING_PAYOUT, actor=actor[:80], reason="range refund owed"
        )
    return True


def _part_create(
    *,
    parent: Bond,
    order_id,
    kind: str,
    pubkey: str,
    amount_sats: int,
    node_share_sats: int,
    recipient: str | None,
    reason: str,
    now,
) -> Bond:
    return Bond.objects.create(
        order_id=order_id,
        role=BondRole.MAKER,
        pubkey=pubkey,
        identity=parent.identity,
        state=BondState.PENDING_PAYOUT,
        amount_sats=amount_sats,
        hash=None,
        parent_bond=parent,
        part=kind,
        invoice_expires_at=parent.invoice_expires_at,
        locked_at=parent.locked_at,
        decided_at=now,
        slashed_at=now,
        slashed_reason=reason,
        node_share_sats=node_share_sats,
        payout_sats=amount_sats - node_share_sats,
        payout_recipient=recipient,
    )


def range_part_payable(bond: Bond) -> bool:
    """A part is paid only once its parent's HTLC is settled and LND confirmed it; a whole bond
    once its own is."""
    if bond.parent_bond_id is None:
        return bond.htlc_resolved_at is not None
    parent = Bond.objects.filter(pk=bond.parent_bond_id).values_list("state", "htlc_resolved_at").first()
    return parent is not None and parent[0] == BondState.SLASHED and parent[1] is not None
