"""REST endpoints for disputes and solvers; every write goes through `disputes.console`,
the same gate and services as the admin console and the Nostr actions."""

from uuid import UUID

from django.db.models import QuerySet
from ninja import Query, Router

from disputes.console import (
    MANAGE_SOLVERS_PERMISSION,
    RESOLVE_PERMISSION,
    TAKE_PERMISSION,
    cancel_as,
    grant_as,
    remove_as,
    require,
    settle_as,
    take_as,
)
from disputes.models import Dispute
from disputes.selectors import dispute_filter, dispute_queryset, solvers
from mostro_site.api.auth import API_AUTH
from mostro_site.api.dispute_schemas import (
    PUBKEY_PATTERN,
    DisputeListOut,
    DisputeOut,
    DisputeStatusLiteral,
    ErrorOut,
    RemovedOut,
    ResolutionOut,
    ResolveIn,
    SolverIn,
    SolverListOut,
    SolverOut,
    ValidationErrorOut,
)
from nostrbridge.node_identity import decode_npub, encode_npub
from orders.bonds.slash import SlashChoice
from orders.models import SolverCategory, Trader

router = Router(auth=API_AUTH, tags=["disputes"])

MAX_LIMIT = 200
MAX_OFFSET = 1_000_000  # far beyond any queue; keeps OFFSET inside every database's integer range


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def responses(ok, *extra: int) -> dict:
    """Every response an operation can give, so the OpenAPI schema documents all of them."""
    declared = {200: ok, 401: ErrorOut, 403: ErrorOut, 422: ValidationErrorOut}
    return declared | {status: ErrorOut for status in extra}


WRITE_ERRORS = (404, 409, 503)


def dispute_out(dispute: Dispute) -> dict:
    order = dispute.order
    return {
        "id": dispute.id,
        "order_id": dispute.order_id,
        "status": dispute.status,
        "initiator": dispute.initiator,
        "initiator_pubkey": dispute.initiator_pubkey,
        "order_previous_status": dispute.order_previous_status,
        "solver_pubkey": dispute.solver_pubkey,
        "order_status": order.status,
        "fiat_code": order.fiat_code,
        "fiat_amount": order.fiat_amount,
        "amount_sats": order.amount_sats,
        "created_at": dispute.created_at,
        "taken_at": dispute.taken_at,
        "resolved_at": dispute.resolved_at,
    }


def page(queryset: QuerySet, limit: int, offset: int) -> tuple[int, list]:
    return queryset.count(), list(queryset[offset : offset + limit])


def _get_dispute(dispute_id: UUID) -> Dispute:
    dispute = dispute_queryset().filter(pk=dispute_id).first()
    if dispute is None:
        raise ApiError(404, "not_found", "no such dispute")
    return dispute


@router.get("/disputes", response=responses(DisputeListOut), url_name="dispute_list")
def dispute_list(
    request,
    status: DisputeStatusLiteral | None = None,
    solver_pubkey: str | None = Query(None, pattern=PUBKEY_PATTERN),
    unassigned: bool | None = None,
    fiat_code: str | None = Query(None, pattern=r"^[A-Za-z]{3,16}$"),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
):
    require(request.auth, "disputes.view_dispute")
    queryset = dispute_filter(
        dispute_queryset(), status=status, solver_pubkey=solver_pubkey, unassigned=unassigned, fiat_code=fiat_code
    )
    count, items = page(queryset, limit, offset)
    return {"count": count, "items": [dispute_out(d) for d in items]}


@router.get("/disputes/{dispute_id}", response=responses(DisputeOut, 404), url_name="dispute_detail")
def dispute_detail(request, dispute_id: UUID):
    require(request.auth, "disputes.view_dispute")
    return dispute_out(_get_dispute(dispute_id))


@router.post("/disputes/{dispute_id}/take", response=responses(DisputeOut, *WRITE_ERRORS), url_name="dispute_take")
def dispute_take(request, dispute_id: UUID):
    require(request.auth, TAKE_PERMISSION)
    _get_dispute(dispute_id)
    take_as(request.auth, dispute_id=dispute_id)
    return dispute_out(_get_dispute(dispute_id))


@router.post(
    "/disputes/{dispute_id}/settle",
    response=responses(ResolutionOut, 400, *WRITE_ERRORS),  # 400: a body that is not JSON (the slash choice)
    url_name="dispute_settle",
)
def dispute_settle(request, dispute_id: UUID, body: ResolveIn | None = None):
    """Settle the escrow to the buyer (admin-settle), optionally slashing a party's bond."""
    require(request.auth, RESOLVE_PERMISSION)
    result = settle_as(request.auth, dispute=_get_dispute(dispute_id), slash=_slash(body))
    return _resolution(result, dispute_id)


@router.post(
    "/disputes/{dispute_id}/cancel",
    response=responses(ResolutionOut, 400, *WRITE_ERRORS),  # 400: a body that is not JSON (the slash choice)
    url_name="dispute_cancel",
)
def dispute_cancel(request, dispute_id: UUID, body: ResolveIn | None = None):
    """Refund the seller (admin-cancel), optionally slashing a party's bond."""
    require(request.auth, RESOLVE_PERMISSION)
    result = cancel_as(request.auth, dispute=_get_dispute(dispute_id), slash=_slash(body))
    return _resolution(result, dispute_id)


def _slash(body: ResolveIn | None) -> SlashChoice:
    return SlashChoice() if body is None else SlashChoice(slash_buyer=body.slash_buyer, slash_seller=body.slash_seller)


def _resolution(result: str, dispute_id: UUID) -> dict:
    if result == "cooperatively-canceled":
        raise ApiError(409, "order_already_canceled", "the parties canceled the order cooperatively; nothing moved")
    return {"result": result, "dispute": dispute_out(_get_dispute(dispute_id))}


def solver_out(trader: Trader) -> dict:
    read_only = trader.solver_category == SolverCategory.READ
    return {
        "pubkey": trader.pubkey,
        "npub": encode_npub(trader.pubkey),
        "permission": "read" if read_only else "read-write",
    }


@router.get("/solvers", response=responses(SolverListOut), url_name="solver_list", tags=["solvers"])
def solver_list(request):
    require(request.auth, "disputes.view_dispute")
    items = [solver_out(t) for t in solvers()]
    return {"count": len(items), "items": items}


@router.post("/solvers", response=responses(SolverOut, 400, 409), url_name="solver_add", tags=["solvers"])
def solver_add(request, body: SolverIn):
    """Register (or promote) a solver, as admin-add-solver does."""
    require(request.auth, MANAGE_SOLVERS_PERMISSION)
    category = SolverCategory.READ if body.permission == "read" else SolverCategory.READ_WRITE
    trader = grant_as(request.auth, pubkey=_parse_pubkey(body.pubkey), category=category)
    return solver_out(trader)


@router.delete("/solvers/{pubkey}", response=responses(RemovedOut, 404), url_name="solver_remove", tags=["solvers"])
def solver_remove(request, pubkey: str):
    require(request.auth, MANAGE_SOLVERS_PERMISSION)
    hex_key = _parse_pubkey(pubkey)
    if not remove_as(request.auth, pubkey=hex_key):
        raise ApiError(404, "not_found", "this key is not a solver")
    return {"pubkey": hex_key, "removed": True}


def _parse_pubkey(value: str) -> str:
    value = value.strip()
    if value.startswith("npub1"):
        try:
            return decode_npub(value)
        except ValueError as exc:
            raise ApiError(422, "invalid_pubkey", "not a valid npub") from exc
    if len(value) == 64 and all(c in "0123456789abcdef" for c in value.lower()):
        return value.lower()
    raise ApiError(422, "invalid_pubkey", "expected an npub or 64 hex characters")
