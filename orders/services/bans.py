"""Bans (docs/OPERATIONS.md §Policies): create, lift, and the refusal a banned key gets.

A ban names a key: the identity key in reputation mode, the trade key in full privacy (where
the trade key is the only key there is). A banned key's `new-order`, `take-sell`, `take-buy`
and `dispute` are refused with `not_authorized`; everything else — the trade it is in, its
invoice, release, cancel, rating, listing and restore — goes on, so a ban never strands money.
This module is the only writer of `orders_ban`; the admin, the dispute console, the REST API
and the automatic ban all come here.
"""

import functools
import re
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.statement_sql import quoted_column, table_name
from nostrbridge.statements import db_connection, prep_value, select_rows
from orders.models import Ban

BAN_POLICY = "ban"
ACTOR_MAX_LENGTH = 80
REASON_MAX_LENGTH = 300
_HEX_KEY = re.compile(r"^[0-9a-f]{64}$")


class BanConflict(Exception):
    """The key already has an active ban (create) or the ban was already lifted (lift)."""


def ban_errors(*, pubkey: str, reason: str, expires_at: datetime | None, now: datetime) -> dict[str, list[str]]:
    """Every problem of a new ban (field -> messages); the admin form and the API show them."""
    errors: dict[str, list[str]] = {}
    if not _HEX_KEY.match(pubkey):
        errors["pubkey"] = ["A key is 64 lowercase hex characters (decode an npub first)."]
    if not reason.strip():
        errors["reason"] = ["Say why: the reason is shown in the ban list and its history."]
    elif len(reason.strip()) > REASON_MAX_LENGTH:
        errors["reason"] = [f"At most {REASON_MAX_LENGTH} characters."]
    if expires_at is not None and expires_at <= now:
        errors["expires_at"] = ["The expiry must be in the future (leave it empty for a ban until lifted)."]
    return errors


def ban_create(
    *, pubkey: str, reason: str, actor: str, expires_at: datetime | None = None, now: datetime | None = None
) -> Ban:
    """Ban `pubkey`; ValidationError for bad input, BanConflict when it is banned already.

    An unlifted ban that has expired is closed first (lifted at its expiry, by "expired"), so the
    history keeps it and the one-unlifted-row constraint holds.
    """
    now = now or timezone.now()
    pubkey = pubkey.strip().lower()
    errors = ban_errors(pubkey=pubkey, reason=reason, expires_at=expires_at, now=now)
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            Ban.objects.filter(pubkey=pubkey, lifted_at__isnull=True, expires_at__lte=now).update(
                lifted_by="expired", lifted_at=now
            )
            return Ban.objects.create(
                pubkey=pubkey, reason=reason.strip(), expires_at=expires_at, banned_by=actor[:ACTOR_MAX_LENGTH]
            )
    except IntegrityError as exc:  # the partial unique constraint: an active ban exists
        raise BanConflict(f"{pubkey[:16]}… is already banned") from exc


def ban_lift(*, ban_id: int, actor: str, now: datetime | None = None) -> Ban:
    """Lift a ban (guarded: only an unlifted row); Ban.DoesNotExist or BanConflict otherwise."""
    now = now or timezone.now()
    with transaction.atomic():
        lifted = Ban.objects.filter(pk=ban_id, lifted_at__isnull=True).update(
            lifted_at=now, lifted_by=actor[:ACTOR_MAX_LENGTH]
        )
        ban = Ban.objects.get(pk=ban_id)
    if not lifted:
        raise BanConflict(f"ban {ban_id} was already lifted")
    return ban


def active_ban(*keys: str | None, now: datetime | None = None) -> Ban | None:
    """The active ban of any of `keys` (None entries ignored), or None."""
    wanted = {key for key in keys if key}
    if not wanted:
        return None
    now = now or timezone.now()
    # Plain SQL: every new-order and take asks before anything else (docs/PERFORMANCE.md). Same
    # rows as filter(pubkey__in=…, lifted_at__isnull=True) & (no expiry | expires_at > now), by pk.
    pubkeys = sorted(wanted)
    expires_at = Ban._meta.get_field("expires_at")
    params = [*pubkeys, expires_at.get_db_prep_value(now, connection)]
    bans = select_rows(Ban, where=_active_where(len(pubkeys)), params=params)
    return bans[0] if bans else None


@functools.cache
def _active_where(keys: int) -> str:
    """The WHERE of `active_ban` for that many keys, built once (the gate asks with one or two)."""
    return f"{_active_condition(keys)} ORDER BY {quoted_column(Ban, 'id')}"


@functools.cache
def _active_condition(keys: int) -> str:
    column = {name: quoted_column(Ban, name) for name in ("pubkey", "lifted_at", "expires_at")}
    return (
        f"{column['pubkey']} IN ({', '.join(['%s'] * keys)}) AND {column['lifted_at']} IS NULL"
        f" AND ({column['expires_at']} IS NULL OR {column['expires_at']} > %s)"
    )


def active_ban_exists_sql(*keys: str | None, now: datetime | None = None) -> tuple[str, list]:
    """`active_ban(*keys) is not None` as an SQL expression and its parameters, for a statement
    that reads it with other values (the trade gate, `orders.services.traders.trade_gate_read`).
    At least one key must be given."""
    pubkeys = sorted({key for key in keys if key})
    assert pubkeys, "a ban is looked up by at least one key"
    # `prep_value`: the datetime's database value without the field's chain of calls, which
    # cost as much as the statement itself (docs/PERFORMANCE.md).
    params = [*pubkeys, prep_value(_EXPIRES_AT, now or timezone.now(), db_connection())]
    return _exists_sql(len(pubkeys)), params


_EXPIRES_AT = Ban._meta.get_field("expires_at")


@functools.cache
def _exists_sql(keys: int) -> str:
    return f"EXISTS (SELECT 1 FROM {table_name(Ban)} WHERE {_active_condition(keys)})"  # noqa: S608 - quoted identifiers


def ban_refuse(*, identity: str | None, sender: str) -> None:
    """`not_authorized` when the identity or the trade key is banned; the first check of the
    actions a ban closes, before anything is written (even the trade-index registration)."""
    if active_ban(identity, sender) is not None:
        raise CantDo(CantDoReason.NOT_AUTHORIZED, policy=BAN_POLICY)
