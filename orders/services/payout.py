"""The buyer payout after the escrow is settled (docs/PROTOCOL.md §Payout).

Shape of every attempt: read → resolve the invoice (LNURL fetch, outside any transaction) →
claim → commit → `send_payment` → record the outcome in a second short transaction.

* The claim is a guarded UPDATE that stores `payout_payment_hash` only while the order is
  `settled-hold-invoice` with no hash set, so a payout is sent at most once even when two
  workers start it together.
* Only the node's word ends a claim: SUCCEEDED finishes the trade, FAILED clears the claim
  and runs the retry bookkeeping. A timeout, IN_FLIGHT or UNKNOWN keeps the claim; the
  reconciliation sweep asks the node later (`track_payment`).

The sweeps that start or reconcile payouts on the jobs' schedule live in
`orders.services.payout_sweeps`; they record through `payout_record_outcome`.
"""

import functools
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.tasks import async_task

from lightning import get_lightning_client
from lightning.base import LightningClient
from lightning.bolt11 import InvoiceInvalid, check_payout_invoice, validate_payout_invoice
from lightning.bolt11_facts import InvoiceFacts, invoice_facts, invoice_from_facts
from lightning.errors import (
    LightningError,
    LightningUnavailable,
)
from lightning.fees import routing_fee_cap_sats
from lightning.lnurl import LnurlError, fetch_invoice, is_lnurl_destination
from lightning.outcomes import payment_send_classified
from lightning.types import DecodedInvoice, InvoiceState, PaymentOutcome, PaymentStatus
from mostro_site.config import node_config
from mostro_site.config.faults import kill_point
from nostrbridge.event_settings import invoice_network
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentFailedPayload
from nostrbridge.protocol.structs import PaymentFailedInfo
from orders.models import Order
from orders.publish import order_event_build, order_event_enqueue
from orders.selectors import order_get
from orders.services.amounts import buyer_payout_sats
from orders.services.escrow_reconcile import escrow_settle_decided
from orders.services.payout_queue import task_enqueue, task_row_ack_in_transaction
from orders.status import OrderStatus
from orders.transitions import transition_order, update_order_guarded
from orders.wire import buyer_view_amount, order_payload, replies_together, send

logger = logging.getLogger(__name__)

PAYOUT_TASK = "orders.services.payout.payout_start"
SEND_TIMEOUT_SECONDS = 60  # SendPaymentV2 timeout_seconds, as mostrod

SETTLED = OrderStatus.SETTLED_HOLD_INVOICE
Claim = tuple[str, datetime | None]  # (payment hash, claimed_at): the claim token


def payout_schedule(*, order_id: UUID | str, request_id: int | None, buyer_invoice: str | None = None) -> None:
    """Start `payout_start` in the background once the caller's transaction commits.

    With django-q2's ORM broker on this database (the node's configuration) the queue row is
    written inside the caller's transaction: it commits, or rolls back, with the release, and
    the release costs one SQLite write transaction instead of two (on SQLite every extra write
    transaction queues behind the job cluster's). A synchronous cluster (tests) or another
    broker would run or publish the task at once, so they wait for the commit. The cluster's
    wake-up for that row leaves at the commit, or, inside `nostrbridge.wake.hints_held()` (the
    release, the admin settle), once the caller's settle at LND returned.

    `save=False`: a successful payout is recorded on the order (status, audit row); storing
    the task's success too made the cluster prune its result table under a write lock at
    every payout. Failed payout tasks are still stored.

    `buyer_invoice`: the order's BOLT11, decoded when the node accepted it (a cache hit here);
    its facts ride in the task so the worker need not decode it again (`lightning.bolt11_facts`).
    """
    order_id = str(order_id)
    kwargs: dict[str, Any] = {"order_id": order_id, "request_id": request_id}
    if buyer_invoice and not is_lnurl_destination(buyer_invoice):
        facts = invoice_facts(buyer_invoice)
        if facts is not None:
            kwargs["invoice_facts"] = facts
    name = f"payout-{order_id}"

    if broker_shares_the_transaction():
        broker = _queue_broker(Conf.BROKER_CLASS, Conf.CLUSTER_NAME)
        task_enqueue(func=PAYOUT_TASK, name=name, kwargs=kwargs, broker=broker, save=False)
    else:
        transaction.on_commit(lambda: async_task(PAYOUT_TASK, task_name=name, save=False, **kwargs), robust=True)


def broker_shares_the_transaction() -> bool:
    """django-q2's ORM broker (or the node's subclass of it, `mostro_site.runtime.job_broker`)
    on the default database, not synchronous, and a transaction open."""
    return (
        Conf.ORM == DEFAULT_DB_ALIAS
        and _orm_broker(Conf.BROKER_CLASS)
        and not Conf.SYNC
        and transaction.get_connection().in_atomic_block
    )


@functools.cache
def _queue_broker(broker_class: str | None, list_key: str) -> ORM:
    """The ORM broker the release enqueues on, built once per configuration: `async_task` would
    import the class and build one per call (the broker keeps no per-transaction state; its
    queue rows go through the calling thread's connection)."""
    return get_broker(list_key)


@functools.cache
def _orm_broker(broker_class: str | None) -> bool:
    """No broker class (django-q2 then uses its ORM broker) or a subclass of that broker."""
    if not broker_class:
        return True
    try:
        return issubclass(import_string(broker_class), ORM)
    except ImportError:
        return False


def payout_start(
    *, order_id: UUID | str, request_id: int | None = None, invoice_facts: InvoiceFacts | None = None
) -> str:
    """Try to pay the buyer once. Returns succeeded / failed / pending / skipped (for logs).

    `invoice_facts`: the release's decode of the buyer's invoice (`payout_schedule`); used only
    if they are the facts of the invoice the order holds now."""
    order = order_get(order_id=order_id)
    if order is None or order.status != SETTLED or order.payout_payment_hash:
        return "skipped"
    if order.failed_payment and order.payment_attempts >= node_config().payment_attempts:
        return "skipped"  # waiting for a new invoice from the buyer
    destination = order.buyer_invoice
    if not destination:
        logger.error("order %s: settled without a buyer invoice, cannot pay out", order.id)
        return "skipped"
    amount = buyer_payout_sats(amount_sats=order.amount_sats, fee_sats=order.fee_sats)
    if not _escrow_settled(order):
        return _retry_soon(order)
    client = get_lightning_client()
    try:
        payment_request, decoded = _resolve(destination, amount, invoice_facts)
    except LightningError as exc:
        logger.warning("order %s: node unavailable before the payout (%s); retried later", order.id, exc)
        return _retry_soon(order)
    except (LnurlError, InvoiceInvalid) as exc:
        logger.warning("order %s: payout destination unusable: %s", order.id, exc)
        return _record_failure(order_id=order.id, request_id=request_id, claim=None)
    claim = _claim(order, decoded, destination, request_id)
    if claim is None:
        return "skipped"
    kill_point("payout-claimed")
    outcome = _send(client, payment_request, decoded, amount)
    kill_point("payout-sent")
    return payout_record_outcome(order=order, claim=claim, outcome=outcome, request_id=request_id)


# --- one attempt ----------------------------------------------------------------------------


def _retry_soon(order: Order) -> str:
    """An attempt that could not ask LND (unreachable, or the escrow's settle not confirmed)
    sends nothing and counts no failure, and leaves the order due for the retry sweep's next
    run. Left to the orphan grace instead, a payout whose start met LND just coming back (a
    process's gRPC channel still waiting out its reconnect backoff) waited five minutes.
    A retry already set for later (a failure another attempt recorded meanwhile) is kept: this
    attempt learned nothing about the payment, and must not shorten the operator's interval."""
    now = timezone.now()
    update_order_guarded(
        order_id=order.id,
        statuses=[SETTLED],
        set_fields={"next_payout_at": now},
        guard=Q(payout_payment_hash__isnull=True) & (Q(next_payout_at__isnull=True) | Q(next_payout_at__lte=now)),
    )
    return "skipped"


def _escrow_settled(order: Order) -> bool:
    """The release or admin-settle recorded its decision before settling at LND: pay only once
    the escrow is settled (settling again is a no-op), never while LND could still refund it."""
    if not order.hold_invoice_preimage or not order.hold_invoice_hash:
        return True  # an imported order settled by the previous daemon
    try:
        state = get_lightning_client().lookup_invoice(payment_hash=bytes.fromhex(order.hold_invoice_hash)).state
    except LightningError as exc:
        logger.warning("order %s: cannot read the escrow before the payout (%s); retried later", order.id, exc)
        return False
    if state is InvoiceState.SETTLED:
        return True  # the usual case: a read, not a second settle
    return escrow_settle_decided(order=order)  # the release's settle did not reach LND: again


def _resolve(destination: str, amount: int, facts: InvoiceFacts | None = None) -> tuple[str, DecodedInvoice]:
    """The BOLT11 to pay and its decode, checked against the pay-time rules; network calls only,
    no transaction open. A BOLT11 with its facts from the release is not decoded again."""
    network = invoice_network()
    if network is None:
        raise LightningUnavailable("LND network unknown; cannot check the payout invoice")
    if is_lnurl_destination(destination):
        payment_request = fetch_invoice(destination, amount)
        return payment_request, validate_payout_invoice(payment_request, expected_amount_sats=amount, network=network)
    known = invoice_from_facts(destination, facts)
    if known is not None:
        return destination, check_payout_invoice(known, expected_amount_sats=amount, network=network)
    return destination, validate_payout_invoice(destination, expected_amount_sats=amount, network=network)


def _claim(order: Order, decoded: DecodedInvoice, destination: str, request_id: int | None) -> Claim | None:
    claimed_at = timezone.now()
    payment_hash = decoded.payment_hash_hex
    expires_at = datetime.fromtimestamp(decoded.timestamp + decoded.expiry_seconds, tz=UTC)
    try:
        with transaction.atomic(durable=True):
            won = update_order_guarded(
                order_id=order.id,
                statuses=[SETTLED],
                set_fields={
                    "payout_payment_hash": payment_hash,
                    "payout_claimed_at": claimed_at,
                    "payout_invoice_expires_at": expires_at,
                    "payout_request_id": request_id,
                },
                # The invoice read above must still be the buyer's: a swap in between wins.
                guard=Q(payout_payment_hash__isnull=True, buyer_invoice=destination),
            )
    except IntegrityError:
        logger.warning("order %s: payout hash %s already used by another order", order.id, payment_hash[:16])
        _record_failure(order_id=order.id, request_id=request_id, claim=None)
        return None
    if not won:
        logger.info("order %s: payout already claimed or state changed; not sending", order.id)
        return None
    return (payment_hash, claimed_at)


def _send(client: LightningClient, payment_request: str, decoded: DecodedInvoice, amount: int) -> PaymentOutcome:
    return payment_send_classified(
        client,
        payment_request=payment_request,
        payment_hash_hex=decoded.payment_hash_hex,
        max_fee_sats=routing_fee_cap_sats(amount, max_routing_fee=node_config().max_routing_fee),
        timeout_seconds=SEND_TIMEOUT_SECONDS,
        amount_sats=amount if decoded.amount_msat == 0 else None,
    )


def payout_record_outcome(*, order: Order, claim: Claim, outcome: PaymentOutcome, request_id: int | None) -> str:
    """`order` is the row read before the claim (payout_start) or the reconciliation's read
    (`orders.services.payout_sweeps.payout_reconcile`)."""
    if outcome.status is PaymentStatus.SUCCEEDED:
        return _record_success(order=order, claim=claim, outcome=outcome, request_id=request_id)
    if outcome.status is PaymentStatus.FAILED:
        logger.warning("order %s: payout %s failed: %s", order.id, claim[0][:16], outcome.failure_reason)
        return _record_failure(order_id=order.id, request_id=request_id, claim=claim)
    logger.warning("order %s: payout %s is %s; claim kept for reconciliation", order.id, claim[0][:16], outcome.status)
    return "pending"


def _record_success(*, order: Order, claim: Claim, outcome: PaymentOutcome, request_id: int | None) -> str:
    """The trade's end, its order event and the buyer's two replies, in one transaction.

    No re-read of the order: the replies need its id and the buyer's trade key (set at the
    take), the event only columns no code changes while the order is settled (`order_snapshot`);
    the row is `order` with the transition's changes (`_succeeded`). The event is built first so
    the transition's UPDATE stores its id (as the new order's INSERT does): its clock row is
    locked before the order's, safe as no other transaction locks both for a settled order (not
    a published status; its only move is this one). A lost transition rolls it all back.
    """
    set_fields: dict[str, Any] = {"payout_claimed_at": None, "routing_fee_sats": outcome.fee_sats}
    with transaction.atomic(durable=True):
        event = order_event_build(_succeeded(order, claim, set_fields))  # the row the transition makes
        if event is not None:
            set_fields["event_id"] = event.id
        won = transition_order(
            order_id=order.id,
            from_statuses=[SETTLED],
            to_status=OrderStatus.SUCCESS,
            actor="lightning",
            reason=f"buyer payout {claim[0][:16]} succeeded",
            set_fields=set_fields,
            guard=Q(payout_payment_hash=claim[0]),
        )
        if not won:
            transaction.set_rollback(True)  # nothing of this transaction happened, the clock step neither
            return "skipped"
        # This payout's own queue row goes with the trade's end (the monitor's DELETE is skipped).
        task_row_ack_in_transaction(func=PAYOUT_TASK, order_id=str(order.id))
        with replies_together():  # the order event and both replies as one outbox INSERT
            if event is not None:
                order_event_enqueue(order, event)
                order.event_id = event.id
            send(order.buyer_pubkey, Action.PURCHASE_COMPLETED, order)
            send(order.buyer_pubkey, Action.RATE, order, request_id=request_id)
    return "succeeded"


def _succeeded(order: Order, claim: Claim, set_fields: dict) -> Order:
    """`order` (read while it was settled, before or after the claim) as the claim and the
    success transition leave it: the claimed hash, the status and the transition's columns.
    Nothing else in the transition writes the order (its audit row and the bond rules write
    their own tables). Changed in place: the callers drop `order` after `_record_success`,
    whether the transition won or lost."""
    order.payout_payment_hash = claim[0]
    order.status = OrderStatus.SUCCESS
    for name, value in set_fields.items():
        setattr(order, name, value)
    return order


def _record_failure(*, order_id, request_id: int | None, claim: Claim | None) -> str:
    """docs/PROTOCOL.md §Payout bookkeeping. With a claim, only that exact claim is released (token compare)."""
    config = node_config()
    with transaction.atomic(durable=True):
        order = Order.objects.select_for_update().filter(pk=order_id, status=SETTLED).first()
        if order is None or (order.payout_payment_hash, order.payout_claimed_at) != (claim or (None, None)):
            return "skipped"
        first_failure = order.payment_attempts == 0
        attempts = min(order.payment_attempts + 1, config.payment_attempts)
        update_order_guarded(
            order_id=order_id,
            statuses=[SETTLED],
            set_fields={
                "failed_payment": True,
                "payment_attempts": attempts,
                "payout_payment_hash": None,
                "payout_claimed_at": None,
                "payout_invoice_expires_at": None,
                "next_payout_at": timezone.now() + timedelta(seconds=config.payment_retries_interval),
            },
        )
        if first_failure:
            info = PaymentFailedInfo(
                payment_attempts=max(config.payment_attempts - 1, 0),
                payment_retries_interval=config.payment_retries_interval,
            )
            send(
                order.buyer_pubkey,
                Action.PAYMENT_FAILED,
                order,
                request_id=request_id,
                payload=PaymentFailedPayload(info),
            )
        if attempts >= config.payment_attempts:
            _ask_for_new_invoice(order, request_id)
    return "failed"


def _ask_for_new_invoice(order: Order, request_id: int | None) -> None:
    payload = order_payload(
        order,
        status=SETTLED,
        amount_sats=buyer_view_amount(order),
        include_pubkeys=True,
        include_buyer_invoice=True,
    )
    send(order.buyer_pubkey, Action.ADD_INVOICE, order, request_id=request_id, payload=payload)
