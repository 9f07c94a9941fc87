"""Process one stored inbound event: intake checks, gates, handler, outcome (mostrod `app.rs`).

The handlers and the first-contact gate's notion of a known key come from the apps above the
bridge, through `nostrbridge.wiring`. The trade-index gate (docs/PROTOCOL.md §Trade-index) is the first
step of the three handlers it applies to (`orders.services.traders.trade_index_check`).

Outcomes: a protocol failure is dropped silently (docs/PROTOCOL.md §Silent-drops); `CantDo` is answered to
the sender's trade key with the request's `request_id` and `id`; `SilentDrop` is logged; any
other exception is an internal error: the row is retried a few times, then parked.
"""

import logging
import time

from django.db import transaction

from mostro_site.config import node_config
from nostrbridge.context import InboundContext, SilentDrop
from nostrbridge.inbox import inbox_fail, inbox_finish
from nostrbridge.models import InboundEvent, InboundStatus
from nostrbridge.outbox import enqueue_cant_do, node_keys
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo, ProtocolError
from nostrbridge.protocol.inbound import FRESHNESS_WINDOW_SECONDS, open_inbound
from nostrbridge.protocol.nip01 import leading_zero_bits
from nostrbridge.wiring import bridge_wiring, get_handler

logger = logging.getLogger(__name__)

# Events replayed from `since` after a reconnect are accepted this far back; older ones
# would long have been retried by the client with a fresh event.
CATCH_UP_WINDOW_SECONDS = 600


def process_inbound(pk: int, *, row: InboundEvent | None = None) -> str:
    """Run the pipeline for one claimed row; return the final inbox status.

    `row`: the claimed row, when the caller loaded its whole batch in one query (the bridge).
    """
    if row is None:
        row = InboundEvent.objects.filter(pk=pk, status=InboundStatus.PROCESSING).first()
    if row is None:
        return "not-claimed"
    try:
        ctx = _open(row)
    except ProtocolError as exc:
        inbox_finish(pk=pk, status=InboundStatus.DROPPED, drop_reason=f"{type(exc).__name__}: {exc}")
        return InboundStatus.DROPPED
    except SilentDrop as exc:
        inbox_finish(pk=pk, status=InboundStatus.DROPPED, drop_reason=str(exc))
        return InboundStatus.DROPPED
    return _dispatch(ctx)


def _open(row: InboundEvent) -> InboundContext:
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
    )
    if config.protocol_version == 2:
        _check_first_contact(
            event_id=row.event_id,
            sender=unwrapped.sender,
            pow_bits=config.pow_bits,
            first_contact_bits=config.pow_first_contact_bits,
        )
    kind = unwrapped.message.kind
    return InboundContext(
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


def _check_first_contact(*, event_id: str, sender: str, pow_bits: int, first_contact_bits: int) -> None:
    """docs/PROTOCOL.md §Intake step 4: a key the node does not deal with yet owes the higher PoW.

    The apps answer "known" from the database, so a key is known the moment its order is
    stored (mostrod's cache lags up to 60 s).
    """
    if first_contact_bits <= pow_bits or leading_zero_bits(event_id) >= first_contact_bits:
        return
    if not bridge_wiring().is_known_trade_key(sender):
        raise SilentDrop("first-contact proof of work not met")


def _dispatch(ctx: InboundContext) -> str:
    started = time.monotonic()
    try:
        if ctx.action == Action.PAY_INVOICE:
            raise CantDo(CantDoReason.INVALID_ACTION)
        handler = get_handler(ctx.action)
        if handler is None:
            raise SilentDrop(f"unhandled action {ctx.action}")
        handler(ctx)
    except CantDo as exc:
        _reply_cant_do(ctx, exc.reason)
        logger.info("cant-do %s for %s (%s)", exc.reason, ctx.action, ctx.event_id[:12])
        return InboundStatus.DONE
    except SilentDrop as exc:
        _finish_silently(ctx, str(exc))
        logger.info("dropped %s (%s): %s", ctx.action, ctx.event_id[:12], exc)
        return InboundStatus.DONE
    except Exception as exc:  # noqa: BLE001 — last-resort guard: one poison message never stops the worker
        logger.exception("internal error handling %s (%s) order=%s", ctx.action, ctx.event_id[:12], ctx.order_id)
        if ctx.inbound_pk is None:
            raise
        return inbox_fail(pk=ctx.inbound_pk, error=f"{type(exc).__name__}: {exc}")
    if not ctx.finished:
        _finish_silently(ctx, "")
    logger.debug("handled %s in %.1f ms", ctx.action, (time.monotonic() - started) * 1000)
    return InboundStatus.DONE


def _reply_cant_do(ctx: InboundContext, reason: CantDoReason) -> None:
    with transaction.atomic():
        enqueue_cant_do(recipient_pubkey=ctx.sender, reason=reason, request_id=ctx.request_id, order_id=ctx.order_id)
        ctx.finished = False
        ctx.mark_done(drop_reason=f"cant-do {reason}")


def _finish_silently(ctx: InboundContext, reason: str) -> None:
    ctx.finished = False
    ctx.mark_done(drop_reason=reason)
