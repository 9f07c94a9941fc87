"""REST API authentication: per-user bearer tokens (sha256-hashed) or the admin session.

401 means "who are you?" (no credentials, unknown or revoked token); 403 is left to the
endpoints ("known, but not allowed").
"""

from django.utils import timezone
from ninja.security import HttpBearer, SessionAuth

from disputes.models import ApiToken


class ApiUnauthorized(Exception):
    status = 401

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BearerTokenAuth(HttpBearer):
    def authenticate(self, request, token: str):
        row = ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash_key(token.strip())).first()
        if row is None:
            raise ApiUnauthorized("invalid_token", "unknown API token")
        if row.revoked_at is not None:
            raise ApiUnauthorized("token_revoked", "this API token was revoked")
        if not row.user.is_active:
            raise ApiUnauthorized("inactive_user", "the token's user is inactive")
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
        request.user = row.user
        return row.user


class ActiveSessionAuth(SessionAuth):
    """The admin login cookie (CSRF-checked on writes, as Django forms are)."""

    def authenticate(self, request, key):
        user = super().authenticate(request, key)
        return user if user is not None and user.is_active else None


API_AUTH = [BearerTokenAuth(), ActiveSessionAuth()]
