"""A bonded taker's `cancel` while the order is still on the book (docs/PROTOCOL.md §Cancel).

Its own bond is released; while other takers' bonds still race, only this taker hears
`canceled`; otherwise the order goes back to `pending` as after a taker cancel (republished,
the maker told `new-order` with the taker's request id).
"""

from django.db.models import Q

from nostrbridge.context import Atomic
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from orders.bonds.models import Bond, BondRole
from orders.bonds.release import bonds_release
from orders.bonds.transitions import OPEN_STATES
from orders.models import Order
from orders.publish import publish_order_event
from orders.status import OrderStatus
from orders.transitions import transition_order
from orders.wire import order_payload, send


def bond_taker_cancel(*, order: Order, sender: str, request_id: int | None, atomic: Atomic) -> bool:
    """False when `sender` holds no open taker bond on the order (the caller refuses then)."""
    bond = Bond.objects.filter(order=order, role=BondRole.TAKER, pubkey=sender, state__in=OPEN_STATES).first()
    if bond is None:
        return False
    with atomic():
        if not bonds_release(bonds=[bond], actor=sender, reason="taker cancel"):
            raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
        send(sender, Action.CANCELED, order, request_id=request_id)
        order_back_on_book_if_unbonded(order=order, actor=sender, request_id=request_id)
    return True


def order_back_on_book_if_unbonded(*, order: Order, actor: str, request_id: int | None) -> bool:
    """`waiting-taker-bond` with no taker bond left → `pending`, republished, the maker told."""
    racing = Bond.objects.filter(order_id=order.pk, role=BondRole.TAKER, state__in=OPEN_STATES)
    moved = transition_order(
        order_id=order.pk,
        from_statuses=[OrderStatus.WAITING_TAKER_BOND],
        to_status=OrderStatus.PENDING,
        actor=actor,
        reason="no taker bond left",
        guard=~Q(pk__in=racing.values("order_id")),
    )
    if moved:
        order.refresh_from_db()
        publish_order_event(order)
        send(
            order.maker_pubkey,
            Action.NEW_ORDER,
            order,
            request_id=request_id,
            payload=order_payload(order, include_maker_pubkey=True),
        )
    return moved
