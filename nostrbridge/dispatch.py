"""Process one stored inbound event: intake checks, gates, handler, outcome (mostrod `app.rs`).

The handlers and the first-contact gate's notion of a known key come from the apps above the
bridge, through `nostrbridge.wiring`. The trade-index gate (docs/PROTOCOL.md §Trade-index) is the first
step of the three handlers it applies to (`orders.services.traders.trade_index_check`).

Outcomes: a protocol failure is dropped silently (docs/PROTOCOL.md §Silent-drops), except a
`user-info` request with a bad identity proof or trade signature, answered `invalid_signature`
(`SignatureRefusal`, docs/PROTOCOL.md §User-info); `CantDo` is answered to the sender's trade key
with the request's `request_id` and `id`; `SilentDrop` is logged; any other exception is an
internal error: the row is retried a few times, then parked.
"""

import logging
import time
from contextvars import Token
from typing import Protocol

from django.db import InterfaceError, OperationalError, transaction

from lightning.errors import LightningUnavailable
from mostro_site.config import NodeConfig, node_config
from mostro_site.models import MaintenanceState
from nostrbridge import metrics
from nostrbridge.context import InboundContext, NeedsOwnTransaction, RetryLater, SilentDrop
from nostrbridge.group_writes import group_begin, holding
from nostrbridge.guarded import exists_where
from nostrbridge.inbox import inbox_age_seconds, inbox_defer, inbox_fail, inbox_finish, inbox_finish_or_hold
from nostrbridge.log_context import bind as bind_log_context
from nostrbridge.log_context import log_context
from nostrbridge.log_context import unbind as unbind_log_context
from nostrbridge.models import POLICY_MARK, InboundEvent, InboundStatus
from nostrbridge.outbox import enqueue_cant_do, node_keys
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo, ProtocolError, SignatureRefusal
from nostrbridge.protocol.inbound import FRESHNESS_WINDOW_SECONDS, open_inbound, verify_message
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.nip01 import Event, leading_zero_bits
from nostrbridge.wiring import bridge_wiring, get_handler

logger = logging.getLogger(__name__)

# Events replayed from `since` after a reconnect are accepted this far back; older ones
# would long have been retried by the client with a fresh event.
CATCH_UP_WINDOW_SECONDS = 600

# Maintenance ("drain") mode refuses only what would open new escrow; everything else keeps
# running so open trades finish (docs/PROTOCOL.md §Maintenance).
MAINTENANCE_GATED_ACTIONS = frozenset({Action.NEW_ORDER.value, Action.TAKE_BUY.value, Action.TAKE_SELL.value})


class HandlerLane(Protocol):
    """Where the bridge runs messages that must not wait in its database thread
    (`nostrbridge.bridge.lane`): those whose handlers may call the network, and those queued
    behind one of them (same order, trade key or identity)."""

    def takes(self, ctx: InboundContext) -> bool: ...

    def submit(self, ctx: InboundContext) -> None:
        """Queue it, or hand it back to the inbox for a moment (full); the row stays PROCESSING."""
        ...


def process_inbound(
    pk: int,
    *,
    row: InboundEvent | None = None,
    grouped: bool = False,
    lane: HandlerLane | None = None,
    checked: Event | None = None,
) -> str:
    """Run the pipeline for one claimed row; return the final inbox status.

    `row`: the claimed row, when the caller loaded its whole batch in one query (the bridge).
    `grouped`: the caller holds a transaction around several messages (the bridge's group
    commit, `nostrbridge.bridge.group`). The handler's own transactions (`ctx.atomic()`, a
    service's `transaction.atomic()`) then run as savepoints, so its writes commit or roll back
    exactly as they would alone; a message `BridgeWiring.stays_in_database` does not keep raises
    `NeedsOwnTransaction` before its handler runs.
    `lane`: messages it `takes` are handed to it instead of running here (inside a group, by
    raising `NeedsOwnTransaction`: the group commits first); the row stays claimed (PROCESSING).
    `checked`: the intake's parsed and signature-checked `Event` of this row's own event object
    (`nostrbridge.protocol.inbound.open_inbound`), when the row was stored from it in this process.
    """
    if row is None:
        row = InboundEvent.objects.filter(pk=pk, status=InboundStatus.PROCESSING).first()
    if row is None:
        return "not-claimed"
    # The log context as tokens rather than two nested `log_context` blocks: the same fields,
    # without two generator-based context managers per message (hot path).
    tokens = bind_log_context(event_id=row.event_id)
    try:
        return _process_opened(row, grouped=grouped, lane=lane, tokens=tokens, checked=checked)
    finally:
        unbind_log_context(tokens)


def _process_opened(
    row: InboundEvent, *, grouped: bool, lane: HandlerLane | None, tokens: list[Token], checked: Event | None
) -> str:
    pk = row.pk
    try:
        ctx, message = _open(row, checked=checked)
    except SignatureRefusal as exc:
        return _refuse_signature(row, exc)
    except ProtocolError as exc:
        inbox_finish_or_hold(pk=pk, status=InboundStatus.DROPPED, drop_reason=f"{type(exc).__name__}: {exc}")
        metrics.inbound_dropped(action=metrics.UNKNOWN_ACTION, cause=type(exc).__name__)
        return InboundStatus.DROPPED
    except SilentDrop as exc:
        inbox_finish_or_hold(pk=pk, status=InboundStatus.DROPPED, drop_reason=str(exc))
        metrics.inbound_dropped(action=metrics.UNKNOWN_ACTION, cause=exc.cause)
        return InboundStatus.DROPPED
    tokens += bind_log_context(action=ctx.action, order_id=ctx.order_id)  # unbound by the caller
    # The gate sits after the signature, freshness and first-contact checks and before
    # `verify()` and the trade-index gate: a refused request creates no user and burns
    # no trade index.
    # `MaintenanceState.is_enabled()`'s read on the plain statements (its own Django cursor
    # per new-order and take was most of the gate's cost).
    if ctx.action in MAINTENANCE_GATED_ACTIONS and exists_where(MaintenanceState, where={"id": 1, "enabled": True}):
        return _refuse(ctx, CantDoReason.MAINTENANCE_MODE)
    try:
        verify_message(message)
    except ProtocolError as exc:
        inbox_finish_or_hold(pk=pk, status=InboundStatus.DROPPED, drop_reason=f"{type(exc).__name__}: {exc}")
        metrics.inbound_dropped(action=metrics.UNKNOWN_ACTION, cause=type(exc).__name__)
        return InboundStatus.DROPPED
    return _dispatch(ctx, grouped=grouped, lane=lane)


def dispatch_opened(ctx: InboundContext) -> str:
    """Run the handler of a message that left a group commit (`NeedsOwnTransaction`), as outside one."""
    with log_context(event_id=ctx.event_id), log_context(action=ctx.action, order_id=ctx.order_id):
        return _dispatch(ctx, grouped=False)


def _open(row: InboundEvent, *, checked: Event | None = None) -> tuple[InboundContext, Message]:
    """Steps up to the first-contact gate; `verify()` (step 10) is left to the caller, after the
    maintenance gate."""
    config = node_config()
    received_at = int(row.received_at.timestamp())
    # Freshness is judged at receipt (a backlog must not turn live messages stale); for a
    # catch-up replay, against the catch-up window. Either way on the message's own created_at
    # (the rumor's on v1: a gift wrap's outer created_at is randomised into the past).
    window = CATCH_UP_WINDOW_SECONDS if row.caught_up else FRESHNESS_WINDOW_SECONDS
    freshness_now = received_at - window + FRESHNESS_WINDOW_SECONDS
    unwrapped = open_inbound(
        row.raw,
        node_keys(),
        transport_version=config.protocol_version,
        pow_bits=config.pow_bits,
        now=freshness_now,
        verify=False,
        checked=checked,
    )
    _check_first_contact(config, event_id=row.event_id, sender=unwrapped.sender)
    kind = unwrapped.message.kind
    ctx = InboundContext(
        inbound_pk=row.pk,
        event_id=row.event_id,
        sender=unwrapped.sender,
        identity=unwrapped.identity,
        action=kind.action.value,
        request_id=kind.request_id,
        trade_index=kind.trade_index,
        order_id=kind.id,
        payload=kind.payload,
        message=kind,
        created_at=unwrapped.created_at,
    )
    return ctx, unwrapped.message


def _refuse_signature(row: InboundEvent, refusal: SignatureRefusal) -> str:
    """Answer `invalid_signature` to the event's author, once the first-contact gate lets it in
    (mostrod runs its gate before unwrapping: an under-powered stranger still gets nothing)."""
    try:
        _check_first_contact(node_config(), event_id=row.event_id, sender=refusal.sender)
    except SilentDrop as exc:
        inbox_finish_or_hold(pk=row.pk, status=InboundStatus.DROPPED, drop_reason=str(exc))
        return InboundStatus.DROPPED
    group_begin()  # in a group, this transaction is a savepoint of the group's
    with transaction.atomic():
        reason = f"cant-do {CantDoReason.INVALID_SIGNATURE}: {refusal}"
        if inbox_finish(pk=row.pk, status=InboundStatus.DONE, action=Action.USER_INFO.value, drop_reason=reason):
            enqueue_cant_do(
                recipient_pubkey=refusal.sender,
                reason=CantDoReason.INVALID_SIGNATURE,
                request_id=refusal.request_id,
                order_id=None,
            )
    logger.info("cant-do invalid_signature for user-info (%s): %s", row.event_id[:12], refusal)
    return InboundStatus.DONE


def _check_first_contact(config: NodeConfig, *, event_id: str, sender: str) -> None:
    """docs/PROTOCOL.md §Intake step 4 (protocol v2): a key the node does not deal with yet owes
    the higher PoW.

    The apps answer "known" from the database, so a key is known the moment its order is
    stored (mostrod's cache lags up to 60 s).
    """
    first_contact_bits = config.pow_first_contact_bits
    if config.protocol_version != 2 or first_contact_bits <= config.pow_bits:
        return
    if leading_zero_bits(event_id) >= first_contact_bits:
        return
    if not bridge_wiring().is_known_trade_key(sender):
        raise SilentDrop("first-contact proof of work not met", cause="first-contact-pow")


def _dispatch(ctx: InboundContext, *, grouped: bool, lane: HandlerLane | None = None) -> str:
    ctx.grouped = grouped
    handler = None if ctx.action == Action.PAY_INVOICE else get_handler(ctx.action)
    if handler is not None and lane is not None and lane.takes(ctx):
        if grouped:
            raise NeedsOwnTransaction(ctx)
        lane.submit(ctx)
        return InboundStatus.PROCESSING
    elif grouped and handler is not None and not bridge_wiring().stays_in_database(ctx):
        raise NeedsOwnTransaction(ctx)
    if grouped:
        group_begin()  # it stays in the group: the group's transaction (if not yet begun) now
    started = time.monotonic()
    try:
        if ctx.action == Action.PAY_INVOICE:
            raise CantDo(CantDoReason.INVALID_ACTION)
        if handler is None:
            raise SilentDrop(f"unhandled action {ctx.action}", cause="unhandled-action")
        handler(ctx)
    except NeedsOwnTransaction:
        raise  # `ctx.leave_group()`: the group commits without it, then it runs on its own
    except CantDo as exc:
        return _refuse(ctx, exc.reason, started=started, policy=exc.policy)
    except RetryLater as exc:
        if ctx.inbound_pk is None:
            raise
        if exc.give_up is not None and inbox_age_seconds(pk=ctx.inbound_pk) >= (exc.give_up_after_s or 0.0):
            logger.warning("gave up waiting for %s (%s): %s", ctx.action, ctx.event_id[:12], exc)
            return _refuse(ctx, exc.give_up, started=started)
        inbox_defer(pk=ctx.inbound_pk, seconds=exc.seconds)
        logger.info("deferred %s (%s): %s", ctx.action, ctx.event_id[:12], exc)
        return InboundStatus.PROCESSING
    except SilentDrop as exc:
        _finish_silently(ctx, str(exc))
        logger.info("dropped %s (%s): %s", ctx.action, ctx.event_id[:12], exc)
        metrics.inbound_dropped(action=ctx.action, cause=exc.cause, seconds=time.monotonic() - started)
        return InboundStatus.DONE
    except Exception as exc:  # noqa: BLE001 — last-resort guard: one poison message never stops the worker
        down = "LND" if _lightning_down(exc) else "database" if _database_down(exc) else ""
        transient = bool(down)
        if transient:
            logger.warning(
                "%s unavailable handling %s (%s) order=%s: %s", down, ctx.action, ctx.event_id[:12], ctx.order_id, exc
            )
        else:
            logger.exception("internal error handling %s (%s) order=%s", ctx.action, ctx.event_id[:12], ctx.order_id)
        metrics.inbound_error(action=ctx.action, seconds=time.monotonic() - started)
        if ctx.inbound_pk is None:
            raise
        return inbox_fail(pk=ctx.inbound_pk, error=f"{type(exc).__name__}: {exc}", transient=transient)
    if not ctx.finished:
        _finish_silently(ctx, "")
    seconds = time.monotonic() - started
    metrics.inbound_handled(action=ctx.action, seconds=seconds)
    logger.debug("handled %s in %.1f ms", ctx.action, seconds * 1000)
    return InboundStatus.DONE


def _refuse(ctx: InboundContext, reason: CantDoReason, *, started: float | None = None, policy: str = "") -> str:
    _reply_cant_do(ctx, reason, policy=policy)
    logger.info("cant-do %s for %s (%s)", reason, ctx.action, ctx.event_id[:12])
    seconds = 0.0 if started is None else time.monotonic() - started
    metrics.inbound_cant_do(action=ctx.action, reason=str(reason), seconds=seconds)
    return InboundStatus.DONE


def _lightning_down(exc: BaseException) -> bool:
    """LND could not be reached (anywhere in the chain of causes): the request is retried later.

    "Unknown, ask the node": a settle or cancel that timed out may have happened, so the retry
    asks LND again (settling or canceling twice is a no-op) instead of answering a failure.
    """
    seen: BaseException | None = exc
    for _ in range(10):  # a cause chain is short; never loop on a cycle
        if seen is None:
            return False
        if isinstance(seen, LightningUnavailable):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _database_down(exc: BaseException) -> bool:
    """The database dropped the connection or stayed locked past the busy timeout (a PostgreSQL
    restart or failover, another SQLite writer): the handler's transaction rolled back whole, so
    the message is retried with the same backoff as an LND outage instead of spending its three
    quick retries and being parked."""
    return isinstance(exc, OperationalError | InterfaceError)


def _reply_cant_do(ctx: InboundContext, reason: CantDoReason, *, policy: str = "") -> None:
    # A policy refusal names its policy in the row: the operator's dashboard lists them from here.
    note = f"cant-do {reason}" + (f" {POLICY_MARK}{policy} key:{ctx.sender[:16]}" if policy else "")
    if holding() is not None:
        # At a group's own level both writes are held to the group's end (nostrbridge.group_writes):
        # no statement runs here, so no transaction to open either.
        _write_cant_do(ctx, reason, note)
        return
    # In a group commit no savepoint: if this fails, the whole group is rolled back and redone
    # one message at a time (nostrbridge.bridge.group).
    with transaction.atomic(savepoint=False):
        _write_cant_do(ctx, reason, note)


def _write_cant_do(ctx: InboundContext, reason: CantDoReason, note: str) -> None:
    enqueue_cant_do(recipient_pubkey=ctx.sender, reason=reason, request_id=ctx.request_id, order_id=ctx.order_id)
    ctx.finished = False
    ctx.mark_done(drop_reason=note)


def _finish_silently(ctx: InboundContext, reason: str) -> None:
    ctx.finished = False
    ctx.mark_done(drop_reason=reason)
