"""REST API authentication: per-user bearer tokens (sha256-hashed) or the admin session.

401 means "who are you?" (no credentials, unknown, revoked or expired token); 403 is "known,
but not allowed": the endpoints check the user's permissions, and this module the token's
scope, which narrows them (a session has no scope: its user's permissions alone apply).
"""

from django.utils import timezone
from ninja.security import HttpBearer, SessionAuth

from mostro_site.models import ApiToken, TokenScope

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Write operations (by url_name) a "resolve" token may call; any other write needs "operator",
# so a new write endpoint is closed to narrow tokens until it is listed here.
# Bans (create, lift) are a solver's tool too. One path's methods share the URL name of the
# first operation declared on it: `POST /api/bans` resolves as "ban_list".
RESOLVE_OPERATIONS = frozenset({"dispute_take", "dispute_settle", "dispute_cancel", "ban_list", "ban_lift"})


class ApiUnauthorized(Exception):
    status = 401

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ApiScopeForbidden(ApiUnauthorized):
    status = 403


def scope_allows(scope: str, *, method: str, operation: str | None) -> bool:
    if scope == TokenScope.OPERATOR or method in SAFE_METHODS:
        return True
    return scope == TokenScope.RESOLVE and operation in RESOLVE_OPERATIONS


class BearerTokenAuth(HttpBearer):
    def authenticate(self, request, token: str):
        row = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash_key(token.strip())).first()
        if row is None:
            raise ApiUnauthorized("invalid_token", "unknown API token")
        if row.revoked_at is not None:
            raise ApiUnauthorized("token_revoked", "this API token was revoked")
        if row.expires_at <= timezone.now():
            raise ApiUnauthorized("token_expired", "this API token has expired; create a new one")
        if not row.user.is_active:
            raise ApiUnauthorized("inactive_user", "the token's user is inactive")
        operation = request.resolver_match.url_name if request.resolver_match else None
        if not scope_allows(row.scope, method=request.method, operation=operation):
            raise ApiScopeForbidden("token_scope", f"this token's scope ({row.scope}) does not allow this operation")
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
        request.user = row.user
        request.api_token = row
        return row.user


class ActiveSessionAuth(SessionAuth):
    """The admin login cookie (CSRF-checked on writes, as Django forms are)."""

    def authenticate(self, request, key):
        user = super().authenticate(request, key)
        return user if user is not None and user.is_active else None


API_AUTH = [BearerTokenAuth(), ActiveSessionAuth()]
