"""API token lifecycle: created by their owner, shown once, expiring, scoped; only the hash is kept."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from mostro_site.models import ApiToken, TokenScope
from mostro_site.staff import is_operator

LIFETIME_DAYS = (7, 30, 90, 365)
DEFAULT_LIFETIME_DAYS = 90
RESOLVE_PERMISSION = "disputes.resolve_dispute"


def scopes_for(user) -> list[str]:
    """The scopes worth giving a token of `user`: none beyond what the user may do."""
    scopes: list[str] = [TokenScope.READ]
    if user.has_perm(RESOLVE_PERMISSION) or user.has_perm("disputes.take_dispute"):
        scopes.append(TokenScope.RESOLVE)
    if is_operator(user):
        scopes.append(TokenScope.OPERATOR)
    return scopes


def api_token_create(
    *, owner, name: str, scope: str = TokenScope.READ, lifetime_days: int = DEFAULT_LIFETIME_DAYS
) -> tuple[ApiToken, str]:
    """A new token for `owner` (the user asking: nobody creates a token for someone else).

    Returns the row and the plaintext key: show it once, it cannot be recovered.
    """
    if scope not in scopes_for(owner):
        raise ValueError(f"scope {scope!r} is beyond what this user may do")
    if lifetime_days not in LIFETIME_DAYS:
        raise ValueError(f"lifetime must be one of {LIFETIME_DAYS} days")
    key = ApiToken.new_key()
    token = ApiToken.objects.create(
        user=owner,
        name=name,
        scope=scope,
        prefix=key[: ApiToken.PREFIX_LENGTH],
        key_hash=ApiToken.hash_key(key),
        expires_at=timezone.now() + timedelta(days=lifetime_days),
    )
    return token, key


def api_token_revoke(*, token: ApiToken) -> bool:
    with transaction.atomic():
        revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db()
    return revoked == 1
