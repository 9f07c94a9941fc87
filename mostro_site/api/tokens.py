"""API token lifecycle: the plaintext exists once, in the creator's response; only its hash is kept."""

from django.db import transaction
from django.utils import timezone

from disputes.models import ApiToken


def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """Return the new row and the plaintext key (show it once; it cannot be recovered)."""
    token = ApiToken(user=user, name=name)
    return token, api_token_issue(token=token)


def api_token_issue(*, token: ApiToken) -> str:
    """Give an unsaved token its key, save it, and return the plaintext key."""
    key = ApiToken.new_key()
    token.prefix, token.key_hash = key[: ApiToken.PREFIX_LENGTH], ApiToken.hash_key(key)
    token.save()
    return key


def api_token_revoke(*, token: ApiToken) -> bool:
    with transaction.atomic():
        revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db()
    return revoked == 1
