"""REST read endpoints: orders, node info and stats, the dev-fee ledger (staff only)."""

from typing import TYPE_CHECKING, Literal, TypeAlias
from uuid import UUID

from django.db.models import Count, Sum
from ninja import Query, Router

from devfee.models import DevFeePayment, DevFeeStatus
from disputes.console import ConsoleForbidden, require
from disputes.models import Dispute
from lightning import get_lightning_client
from lightning.errors import LightningError
from mostro_site.api.auth import API_AUTH
from mostro_site.api.disputes import MAX_LIMIT, MAX_OFFSET, ApiError, page, responses
from mostro_site.api.order_schemas import DevFeeListOut, NodeOut, OrderListOut, OrderOut, StatsOut
from mostro_site.config import node_config
from mostro_site.staff import is_operator
from nostrbridge.node_identity import encode_npub, node_pubkey
from orders.models import Order
from orders.services.admin_cancel import order_admin_cancel_pretrade
from orders.status import OrderKind, OrderStatus

router = Router(auth=API_AUTH, tags=["orders"])

if TYPE_CHECKING:
    OrderStatusLiteral: TypeAlias = str
    OrderKindLiteral: TypeAlias = str
    DevFeeStatusLiteral: TypeAlias = str
else:  # the models' choices, as OpenAPI enums
    OrderStatusLiteral = Literal[tuple(OrderStatus.values)]
    OrderKindLiteral = Literal[tuple(OrderKind.values)]
    DevFeeStatusLiteral = Literal[tuple(DevFeeStatus.values)]
VIEW_ORDER = "orders.view_order"
VIEW_LEDGER = "devfee.view_devfeepayment"


def order_out(order: Order) -> dict:
    fields = {name: getattr(order, name) for name in OrderOut.model_fields if hasattr(Order, name)}
    dispute = getattr(order, "dispute", None)  # reverse one-to-one: AttributeError when absent
    return fields | {
        "min_amount": order.min_fiat_amount,
        "max_amount": order.max_fiat_amount,
        "dispute_id": dispute.id if dispute else None,
    }


@router.get("/orders", response=responses(OrderListOut), url_name="order_list")
def order_list(
    request,
    status: OrderStatusLiteral | None = None,
    kind: OrderKindLiteral | None = None,
    fiat_code: str | None = Query(None, pattern=r"^[A-Za-z]{3,16}$"),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
):
    require(request.auth, VIEW_ORDER)
    queryset = Order.objects.select_related("dispute").order_by("-created_at", "pk")
    if status:
        queryset = queryset.filter(status=status)
    if kind:
        queryset = queryset.filter(kind=kind)
    if fiat_code:
        queryset = queryset.filter(fiat_code__iexact=fiat_code)
    count, items = page(queryset, limit, offset)
    return {"count": count, "items": [order_out(o) for o in items]}


@router.get("/orders/{order_id}", response=responses(OrderOut, 404), url_name="order_detail")
def order_detail(request, order_id: UUID):
    require(request.auth, VIEW_ORDER)
    order = Order.objects.select_related("dispute").filter(pk=order_id).first()
    if order is None:
        raise ApiError(404, "not_found", "no such order")
    return order_out(order)


@router.post("/orders/{order_id}/cancel", response=responses(OrderOut, 404, 409), url_name="order_cancel")
def order_cancel(request, order_id: UUID):
    """Cancel an order nobody took yet (`pending`, `waiting-taker-bond`): `canceled-by-admin`, the
    maker is told `admin-canceled`. Any other status: 409 `not_allowed_by_status`, nothing changes
    (a disputed order is canceled through its dispute). Operators only."""
    if not is_operator(request.auth):
        raise ConsoleForbidden("not_authorized", "only operators cancel orders")
    order = order_admin_cancel_pretrade(order_id=order_id, actor_label=f"admin:{request.auth.get_username()}")
    return order_out(Order.objects.select_related("dispute").get(pk=order.pk))


@router.get("/node", response=responses(NodeOut), url_name="node_info", tags=["node"])
def node_info(request):
    """The node's identity and what its Lightning node reports now ("unknown" when unreachable)."""
    require(request.auth, VIEW_ORDER)
    config = node_config()
    try:
        info = get_lightning_client().get_info()
        lightning = {
            "alias": info.alias,
            "network": info.network,
            "block_height": info.block_height,
            "version": info.version,
        }
    except LightningError:
        lightning = None
    return {
        "pubkey": node_pubkey(),
        "npub": encode_npub(node_pubkey()),
        "name": config.name,
        "protocol_version": config.protocol_version,
        "fee": config.fee,
        "lightning": lightning,
        "lightning_status": "ok" if lightning else "unknown",
    }


@router.get("/stats", response=responses(StatsOut), url_name="node_stats", tags=["node"])
def node_stats(request):
    require(request.auth, VIEW_ORDER)
    orders = dict(Order.objects.values_list("status").annotate(n=Count("pk")).order_by())
    disputes = dict(Dispute.objects.values_list("status").annotate(n=Count("pk")).order_by())
    done = Order.objects.filter(status=OrderStatus.SUCCESS)
    fiat = dict(done.values_list("fiat_code").annotate(total=Sum("fiat_amount")).order_by())
    totals = done.aggregate(sats=Sum("amount_sats"), fees=Sum("fee_sats"))
    return {
        "orders_by_status": orders,
        "disputes_by_status": disputes,
        "completed_volume_sats": totals["sats"] or 0,
        "completed_volume_fiat": fiat,
        "fees_earned_sats": 2 * (totals["fees"] or 0),  # each party pays fee_sats
    }


@router.get("/dev-fees", response=responses(DevFeeListOut), url_name="devfee_list", tags=["node"])
def devfee_list(
    request,
    status: DevFeeStatusLiteral | None = None,
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
):
    require(request.auth, VIEW_LEDGER)
    queryset = DevFeePayment.objects.order_by("-created_at", "pk")
    if status:
        queryset = queryset.filter(status=status)
    paid = DevFeePayment.objects.filter(status=DevFeeStatus.PAID).aggregate(s=Sum("amount_sats"))["s"] or 0
    unpaid = DevFeePayment.objects.exclude(status=DevFeeStatus.PAID).aggregate(s=Sum("amount_sats"))["s"] or 0
    count, items = page(queryset, limit, offset)
    return {"count": count, "paid_sats": paid, "unpaid_sats": unpaid, "items": items}
