"""Solver keys: created in the console (sealed at rest) or proven from a NIP-07 extension.

Either way the user's `SolverLink` points at the key and the key is registered as a solver
at the level the user's groups give, so `admin-took-dispute` announces it. Only a key the
console holds can chat from the console: NIP-07 exposes signing and NIP-44 but no raw ECDH,
and both chat envelopes are keyed by the raw ECDH secret (docs/ARCHITECTURE.md).
"""

import functools
import time

from django.db import transaction

from disputes.chat import atrest
from disputes.chat.models import SolverKey
from disputes.console import RESOLVE_PERMISSION, TAKE_PERMISSION, ConsoleForbidden, require
from disputes.models import OPEN_DISPUTE_STATUSES, Dispute, SolverLink
from disputes.services import solver_grant, solver_remove
from mostro_site.staff import is_operator
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.errors import MalformedEvent
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.nip01 import Event
from orders.models import SolverCategory

PROOF_KIND = 22242  # NIP-42's "client authentication" kind: a signed challenge, never published
PROOF_MAX_AGE_S = 600


def _aad(pubkey: str) -> bytes:
    return f"solver-key:{pubkey}".encode()


def _check_may_hold_key(user) -> SolverLink | None:
    require(user, TAKE_PERMISSION)
    if is_operator(user):
        raise ConsoleForbidden(
            "operator_acts_as_node",
            "operators act as the node key, which never chats; use a solver account for the dispute chat",
        )
    link = SolverLink.objects.filter(user=user).first()
    if link and Dispute.objects.filter(solver_pubkey=link.pubkey, status__in=OPEN_DISPUTE_STATUSES).exists():
        raise ConsoleForbidden(
            "key_in_use", "your current key holds open disputes; resolve or hand them over before changing it"
        )
    return link


def _relink(user, old: SolverLink | None, pubkey: str) -> None:
    """Point the user's link at `pubkey` and register it (inside the caller's transaction)."""
    if pubkey == node_pubkey():
        raise ConsoleForbidden("invalid_pubkey", "the node's key cannot be a solver key")
    SolverLink.objects.update_or_create(user=user, defaults={"pubkey": pubkey})
    category = SolverCategory.READ_WRITE if user.has_perm(RESOLVE_PERMISSION) else SolverCategory.READ
    solver_grant(actor_pubkey=node_pubkey(), pubkey=pubkey, category=category)
    if old is not None and old.pubkey != pubkey:
        solver_remove(actor_pubkey=node_pubkey(), pubkey=old.pubkey)


def solver_key_create(*, user) -> SolverKey:
    """A fresh key for `user`, held by the console; replaces the user's previous key."""
    old = _check_may_hold_key(user)
    keys = Keys.generate()
    sealed = atrest.seal(keys.secret, purpose=atrest.SOLVER_KEY, aad=_aad(keys.public_key_hex))
    with transaction.atomic():
        SolverKey.objects.filter(user=user).delete()
        row = SolverKey.objects.create(user=user, pubkey=keys.public_key_hex, secret_sealed=sealed)
        _relink(user, old, keys.public_key_hex)
    return row


def solver_key_link_external(*, user, proof: dict, challenge: str, now: int | None = None) -> SolverLink:
    """Link the key that signed `challenge` (a NIP-07 extension); the console holds no secret."""
    now = int(time.time()) if now is None else now
    try:
        event = Event.from_dict(proof)
    except MalformedEvent as exc:
        raise ConsoleForbidden("bad_proof", f"the signed challenge is malformed: {exc}") from exc
    tags = {tag[0]: tag[1] for tag in event.tags if len(tag) > 1}
    if event.kind != PROOF_KIND or tags.get("challenge") != challenge or not challenge:
        raise ConsoleForbidden("bad_proof", "the signed event does not answer this page's challenge")
    if abs(now - event.created_at) > PROOF_MAX_AGE_S or not event.verify_signature():
        raise ConsoleForbidden("bad_proof", "the signature is stale or does not verify")
    old = _check_may_hold_key(user)
    with transaction.atomic():
        SolverKey.objects.filter(user=user).delete()
        _relink(user, old, event.pubkey)
    return SolverLink.objects.get(user=user)


def console_keys(pubkey: str) -> Keys | None:
    """The console-held key for `pubkey`, or None (an external key, or no key at all)."""
    row = SolverKey.objects.filter(pubkey=pubkey).values_list("secret_sealed", flat=True).first()
    return None if row is None else _open(pubkey, row)


@functools.lru_cache(maxsize=256)
def _open(pubkey: str, sealed: str) -> Keys:
    return Keys(atrest.unseal(sealed, purpose=atrest.SOLVER_KEY, aad=_aad(pubkey)))


def solver_key_reseal(row: SolverKey) -> bool:
    """Re-seal with the current key after a rotation; True when the row changed."""
    if atrest.is_current(row.secret_sealed, purpose=atrest.SOLVER_KEY):
        return False
    secret = atrest.unseal(row.secret_sealed, purpose=atrest.SOLVER_KEY, aad=_aad(row.pubkey))
    row.secret_sealed = atrest.seal(secret, purpose=atrest.SOLVER_KEY, aad=_aad(row.pubkey))
    SolverKey.objects.filter(pk=row.pk).update(secret_sealed=row.secret_sealed)
    return True
