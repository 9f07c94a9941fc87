"""REST endpoints for bans (docs/OPERATIONS.md §Policies): list with history, create, lift.

Creating needs `orders.add_ban` (operators, read-write solvers), lifting `orders.change_ban`
(operators); a "resolve" token may create and lift on top of its user's permissions, a "read"
token only list. Every write goes through `orders.services.bans`, as the admin's do.
"""

from datetime import datetime

from django.core.exceptions import ValidationError
from django.utils import timezone
from ninja import Path, Query, Router, Schema

from disputes.console import require
from mostro_site.api.auth import API_AUTH
from mostro_site.api.disputes import MAX_LIMIT, MAX_OFFSET, ApiError, _parse_pubkey, page, responses
from nostrbridge.node_identity import encode_npub
from orders.models import Ban
from orders.services import bans as ban_service

router = Router(auth=API_AUTH, tags=["bans"])
MAX_BAN_ID = 2**63 - 1  # the primary key's range: a larger id is a 422, never a database overflow


class BanIn(Schema):
    pubkey: str  # npub or 64 hex characters
    reason: str
    expires_at: datetime | None = None


class BanOut(Schema):
    id: int
    pubkey: str
    npub: str
    reason: str
    banned_by: str
    created_at: datetime
    expires_at: datetime | None
    lifted_at: datetime | None
    lifted_by: str
    active: bool


class BanListOut(Schema):
    count: int
    items: list[BanOut]


def ban_out(ban: Ban) -> dict:
    return {
        "id": ban.pk,
        "pubkey": ban.pubkey,
        "npub": encode_npub(ban.pubkey),
        "reason": ban.reason,
        "banned_by": ban.banned_by,
        "created_at": ban.created_at,
        "expires_at": ban.expires_at,
        "lifted_at": ban.lifted_at,
        "lifted_by": ban.lifted_by,
        "active": ban.is_active_at(timezone.now()),
    }


def _actor(request) -> str:
    return f"api:{request.auth.get_username()}"


@router.get("/bans", response=responses(BanListOut), url_name="ban_list")
def ban_list(
    request,
    pubkey: str | None = None,
    active: bool | None = None,
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
):
    """Every ban, newest first (lifted and expired ones too: the history)."""
    require(request.auth, "orders.view_ban")
    queryset = Ban.objects.order_by("-pk")
    if pubkey:
        queryset = queryset.filter(pubkey=_parse_pubkey(pubkey))
    if active is not None:
        live = Ban.objects.filter(lifted_at__isnull=True).exclude(expires_at__lte=timezone.now())
        queryset = queryset.filter(pk__in=live) if active else queryset.exclude(pk__in=live)
    count, items = page(queryset, limit, offset)
    return {"count": count, "items": [ban_out(ban) for ban in items]}


@router.post("/bans", response=responses(BanOut, 400, 409), url_name="ban_create")
def ban_create(request, body: BanIn):
    """Ban a key: its new orders, takes and disputes are refused; trades in progress go on."""
    require(request.auth, "orders.add_ban")
    try:
        ban = ban_service.ban_create(
            pubkey=_parse_pubkey(body.pubkey), reason=body.reason, expires_at=body.expires_at, actor=_actor(request)
        )
    except ValidationError as exc:
        details = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
        raise ApiError(422, "invalid_request", details) from exc
    except ban_service.BanConflict as exc:
        raise ApiError(409, "already_banned", str(exc)) from exc
    return ban_out(ban)


@router.post("/bans/{ban_id}/lift", response=responses(BanOut, 404, 409), url_name="ban_lift")
def ban_lift(request, ban_id: int = Path(..., ge=1, le=MAX_BAN_ID)):
    require(request.auth, "orders.change_ban")
    if not Ban.objects.filter(pk=ban_id).exists():
        raise ApiError(404, "not_found", "no such ban")
    try:
        ban = ban_service.ban_lift(ban_id=ban_id, actor=_actor(request))
    except ban_service.BanConflict as exc:
        raise ApiError(409, "already_lifted", str(exc)) from exc
    return ban_out(ban)
