"""The REST admin API (django-ninja): one NinjaAPI; its routers live next to it in mostro_site/api/.

Every error is `{"code": "<reason>", "message": "..."}`:
401 unauthenticated (no, unknown, revoked or expired token) · 403 authenticated but not allowed
(missing permission, a token whose scope is too narrow: `token_scope`, or a protocol refusal
about *who* acts: not_authorized, is_not_your_dispute, dispute_taken_by_admin, invalid_pubkey)
· 404 unknown id · 409 any other protocol refusal (`CantDo` reason) or a lost race · 422
invalid input · 503 LND unreachable (nothing moved; retry).
"""

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from disputes.console import ConsoleForbidden
from disputes.services.errors import DisputeConflict, DisputeNotFound, NotNodeAdmin
from lightning.errors import LightningError
from mostro_site.api.auth import ApiUnauthorized
from mostro_site.api.disputes import ApiError
from nostrbridge.context import SilentDrop
from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.errors import CantDo
from orders.services.escrow import EscrowError

logger = logging.getLogger(__name__)


class MostroApi(NinjaAPI):
    def get_openapi_operation_id(self, operation) -> str:
        # The view's own name (unique in this API) rather than ninja's module path + name, so
        # moving a router between modules never changes the published operation ids.
        return operation.view_func.__name__


api = MostroApi(title="Mostro admin API", version="1", urls_namespace="api")
api.add_router("/", "mostro_site.api.disputes.router")
api.add_router("/", "mostro_site.api.orders.router")
api.add_router("/", "mostro_site.api.maintenance.router")
api.add_router("/", "mostro_site.api.bans.router")

# Refusals about who is acting, not about the order's state.
FORBIDDEN_REASONS = frozenset(
    {
        CantDoReason.NOT_AUTHORIZED,
        CantDoReason.IS_NOT_YOUR_DISPUTE,
        CantDoReason.DISPUTE_TAKEN_BY_ADMIN,
        CantDoReason.INVALID_PUBKEY,
    }
)


def error(request, status: int, code: str, message: str, **extra):
    return api.create_response(request, {"code": code, "message": message, **extra}, status=status)


@api.exception_handler(ApiError)
def _api_error(request, exc: ApiError):
    return error(request, exc.status, exc.code, exc.message)


@api.exception_handler(ApiUnauthorized)
def _unauthorized(request, exc: ApiUnauthorized):
    return error(request, exc.status, exc.code, exc.message)  # 401, or 403 for a token's scope


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return error(request, 401, "not_authenticated", "send `Authorization: Bearer <token>` or log in")


@api.exception_handler(ConsoleForbidden)
def _console_forbidden(request, exc: ConsoleForbidden):
    return error(request, 403, exc.code, exc.message)


@api.exception_handler(PermissionDenied)
def _forbidden(request, exc):
    return error(request, 403, "forbidden", str(exc) or "not allowed")


@api.exception_handler(Http404)
def _not_found(request, exc):
    return error(request, 404, "not_found", "not found")


@api.exception_handler(ValidationError)
def _invalid(request, exc: ValidationError):
    return error(request, 422, "invalid_request", "the request does not match the schema", errors=exc.errors)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    code = {400: "malformed_request", 403: "csrf_failed"}.get(exc.status_code, f"http_{exc.status_code}")
    return error(request, exc.status_code, code, str(exc))


@api.exception_handler(CantDo)
def _cant_do(request, exc: CantDo):
    reason = CantDoReason(exc.reason)
    status = 403 if reason in FORBIDDEN_REASONS else 404 if reason == CantDoReason.NOT_FOUND else 409
    # A refused slash says why (docs/PROTOCOL.md §Bonds): no bond, or canceled at LND.
    message = getattr(exc, "message", None) or f"refused: {reason.value}"
    return error(request, status, reason.value, message)


@api.exception_handler(SilentDrop)
def _silent(request, exc: SilentDrop):
    if isinstance(exc, DisputeNotFound):
        return error(request, 404, "not_found", str(exc))
    if isinstance(exc, NotNodeAdmin):
        return error(request, 403, "not_authorized", str(exc))
    code = "conflict" if isinstance(exc, DisputeConflict) else "refused"
    return error(request, 409, code, str(exc))


@api.exception_handler(EscrowError)
@api.exception_handler(LightningError)
def _lightning(request, exc):
    logger.warning("API request failed at the Lightning node: %s", exc)
    return error(request, 503, "lightning_unavailable", "the Lightning node could not be reached; nothing moved")
