"""The development fee (docs/PROTOCOL.md §Dev-fee, §Dev-fee-event; mostrod `src/app/dev_fee.rs`).

`Order.dev_fee_sats` is fixed at take time. Once the order reaches `settled-hold-invoice` or
`success` the operator owes it to the development fund, paid from its own earnings to
`dev_fee_lightning_address` over LNURL-pay. The `DevFeePayment` row (one per order) is the
ledger: owed → claimed → in-flight → paid, or failed → claimed again later. This ledger sits
below the orders app: the sweep (`orders.jobs.pay_pending_dev_fees`) hands it the orders that
owe a fee (`dev_fee_rows_create`) and never the other way round.

One attempt (`dev_fee_pay`), each phase a public function so a run stopped between any two
leaves a row the next run completes:

1. claim: guarded UPDATE (owed/failed, no hash) → `claimed` with a fresh claim token; commit;
2. resolve: LNURL-pay invoice for the exact amount, LUD-12 comment (outside any transaction);
3. validate: the payout invoice rules and the exact amount (amountless refused);
4. store the payment hash: guarded on the claim token → `in-flight`; commit;
5. send, then record: SUCCEEDED → `paid` and the 8383 audit event in one transaction;
   FAILED (said by the node) → `failed`, hash cleared, retried later with a fresh invoice;
   anything else (timeout, IN_FLIGHT, UNKNOWN) → stays `in-flight`.

`in-flight` rows are settled by asking the node (`dev_fee_reconcile`). A row whose payment the
node never saw (a run stopped between 4 and 5) is sent again with the SAME stored invoice:
LND pays one hash at most once, so the fund is never paid twice for an order. A fresh
invoice is fetched only after the node said FAILED.
"""

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from devfee.models import DevFeePayment, DevFeeStatus
from lightning import get_lightning_client
from lightning.bolt11 import InvoiceInvalid, validate_payout_invoice
from lightning.fees import routing_fee_cap_sats
from lightning.lnurl import LnurlError, fetch_invoice
from lightning.outcomes import payment_send_classified, payment_track_classified
from lightning.types import DecodedInvoice, PaymentOutcome, PaymentStatus
from mostro_site.config import node_config
from mostro_site.config.faults import kill_point
from nostrbridge.event_settings import invoice_network, lnd_network, publisher_settings
from nostrbridge.node_identity import encode_npub, node_pubkey
from nostrbridge.outbox import enqueue_event, node_keys
from nostrbridge.protocol.published_events import build_dev_fee_event
from nostrbridge.statements import insert_rows

logger = logging.getLogger(__name__)

S = DevFeeStatus
# A claim with no hash after this long belongs to a run that stopped: nothing was sent.
STALE_CLAIM_SECONDS = 300
# An in-flight row the node has never heard of is re-sent (same invoice) after this long,
# so a run still between "hash stored" and "send" is never raced.
UNSEEN_GRACE_SECONDS = 300
# A failed attempt is retried with a fresh invoice after this long.
RETRY_FAILED_SECONDS = 300
# SendPaymentV2 timeout (mostrod: 25 s for a result); a longer wait is "unknown".
SEND_TIMEOUT_SECONDS = 25

# Outcomes, also the keys of the job's count dict.
PAID = "paid"
FAILED = "failed"
PENDING = "pending"
SKIPPED = "skipped"


class DevFeeAttemptError(Exception):
    """The attempt failed before anything was sent (LNURL, invoice rules, node network)."""


@dataclass(frozen=True, slots=True)
class DevFeeClaim:
    payment_id: int
    token: str
    order_id: uuid.UUID
    amount_sats: int
    destination: str


def dev_fee_comment(order_id: uuid.UUID | str) -> str:
    """The LUD-12 comment (dropped by `fetch_invoice` when longer than `commentAllowed`)."""
    return f"mostro-dev-fee order={order_id} node={encode_npub(node_pubkey())}"


# --- the ledger ------------------------------------------------------------------------------


def dev_fee_rows_create(*, billable: Iterable[tuple[uuid.UUID, int]]) -> int:
    """One `owed` row per (order id, dev fee in sats) that has none; returns how many were new.

    `billable` comes from the orders app (`orders.selectors.dev_fee_billable_orders`: settled
    or successful orders with a dev fee and no row yet), which sits above this ledger.
    One `INSERT … ON CONFLICT (order_id) DO NOTHING` for the whole batch (it was a
    `get_or_create` per order, 13 % of the job cluster's CPU in a trade run): a row a
    concurrent run already created stays as it is, unique constraint and all, and is not
    counted. Every other column takes its field default (`owed`, no claim). The model has no
    `save()` override or signals to bypass.
    """
    destination = node_config().dev_fee_lightning_address
    rows = [{"order_id": order_id, "amount_sats": amount, "destination": destination} for order_id, amount in billable]
    return insert_rows(DevFeePayment, rows, conflict=("order_id",))


def dev_fee_reset_stale_claims(*, now: datetime) -> int:
    """Claims that never stored a hash sent nothing: give them back (`owed`)."""
    cutoff = now - timedelta(seconds=STALE_CLAIM_SECONDS)
    return DevFeePayment.objects.filter(status=S.CLAIMED, payment_hash__isnull=True, claimed_at__lt=cutoff).update(
        status=S.OWED,
        claim_token=None,
        claimed_at=None,
        last_error="claim expired before a payment hash was stored",
        updated_at=now,
    )


def dev_fee_due_ids(*, now: datetime, limit: int) -> list[int]:
    """Rows to attempt: owed ones, and failed ones whose retry delay has passed."""
    retry_cutoff = now - timedelta(seconds=RETRY_FAILED_SECONDS)
    query = DevFeePayment.objects.filter(
        Q(status=S.OWED) | Q(status=S.FAILED, updated_at__lte=retry_cutoff), payment_hash__isnull=True
    )
    return list(query.order_by("updated_at").values_list("pk", flat=True)[:limit])


def dev_fee_inflight_ids(*, limit: int) -> list[int]:
    query = DevFeePayment.objects.filter(status=S.IN_FLIGHT, payment_hash__isnull=False).order_by("claimed_at")
    return list(query.values_list("pk", flat=True)[:limit])


# --- one attempt -----------------------------------------------------------------------------


def dev_fee_pay(*, payment_id: int, now: datetime | None = None) -> str:
    """Claim, resolve, store the hash, send and record: one attempt. Returns an outcome."""
    now = now or timezone.now()
    claim = dev_fee_claim(payment_id=payment_id, now=now)
    if claim is None:
        return SKIPPED
    try:
        payment_request, decoded = dev_fee_resolve(claim=claim)
    except DevFeeAttemptError as exc:
        logger.warning("dev fee of order %s: attempt failed before sending: %s", claim.order_id, exc)
        _release_claim(claim, error=str(exc), now=now)
        return FAILED
    payment_hash = decoded.payment_hash_hex
    if not dev_fee_store_hash(claim=claim, payment_request=payment_request, payment_hash=payment_hash, now=now):
        return SKIPPED
    kill_point("devfee-hash-stored")
    outcome = dev_fee_send(payment_request=payment_request, payment_hash=payment_hash, amount_sats=claim.amount_sats)
    kill_point("devfee-sent")
    return dev_fee_record_outcome(payment_id=payment_id, payment_hash=payment_hash, outcome=outcome, now=now)


def dev_fee_claim(*, payment_id: int, now: datetime) -> DevFeeClaim | None:
    """Phase 1: at most one worker holds a row; None when another one (or a payment) has it."""
    token = uuid.uuid4().hex
    destination = node_config().dev_fee_lightning_address  # an operator fix applies to the next try
    with transaction.atomic(durable=True):
        won = DevFeePayment.objects.filter(
            pk=payment_id, status__in=(S.OWED, S.FAILED), payment_hash__isnull=True
        ).update(
            status=S.CLAIMED,
            claim_token=token,
            claimed_at=now,
            destination=destination,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    if not won:
        return None
    row = DevFeePayment.objects.get(pk=payment_id)
    return DevFeeClaim(payment_id, token, row.order_id, row.amount_sats, destination)


def dev_fee_resolve(*, claim: DevFeeClaim) -> tuple[str, DecodedInvoice]:
    """Phases 2–3: the fund's invoice for exactly the fee. Network only; no transaction open."""
    network = invoice_network()
    if network is None:
        raise DevFeeAttemptError("LND network unknown; cannot check the dev-fee invoice")
    try:
        payment_request = fetch_invoice(claim.destination, claim.amount_sats, dev_fee_comment(claim.order_id))
        decoded = validate_payout_invoice(payment_request, expected_amount_sats=claim.amount_sats, network=network)
    except (LnurlError, InvoiceInvalid) as exc:
        raise DevFeeAttemptError(f"{exc.code}: {exc.message}") from exc
    if decoded.amount_msat != claim.amount_sats * 1000:
        raise DevFeeAttemptError(f"invoice amount {decoded.amount_msat} msat, expected {claim.amount_sats} sats")
    return payment_request, decoded


def dev_fee_store_hash(*, claim: DevFeeClaim, payment_request: str, payment_hash: str, now: datetime) -> bool:
    """Phase 4: the hash is committed before any send, guarded by the claim token."""
    try:
        with transaction.atomic(durable=True):
            stored = DevFeePayment.objects.filter(
                pk=claim.payment_id, status=S.CLAIMED, claim_token=claim.token, payment_hash__isnull=True
            ).update(
                status=S.IN_FLIGHT,
                payment_hash=payment_hash,
                payment_request=payment_request,
                claimed_at=now,
                updated_at=now,
            )
    except IntegrityError:
        # The service handed out an invoice another row already holds; paying it twice is impossible anyway.
        _release_claim(claim, error=f"payment hash {payment_hash} already used by another dev-fee row", now=now)
        return False
    if not stored:
        logger.info("dev fee of order %s: claim lost before the hash was stored; not sending", claim.order_id)
    return bool(stored)


def dev_fee_send(*, payment_request: str, payment_hash: str, amount_sats: int) -> PaymentOutcome:
    """Phase 5: pay. FAILED only when the node said so; a doubt is UNKNOWN."""
    return payment_send_classified(
        get_lightning_client(),
        payment_request=payment_request,
        payment_hash_hex=payment_hash,
        max_fee_sats=routing_fee_cap_sats(amount_sats, max_routing_fee=node_config().max_routing_fee),
        timeout_seconds=SEND_TIMEOUT_SECONDS,
    )


def dev_fee_record_outcome(*, payment_id: int, payment_hash: str, outcome: PaymentOutcome, now: datetime) -> str:
    if outcome.status is PaymentStatus.SUCCEEDED:
        return _mark_paid(payment_id=payment_id, payment_hash=payment_hash, outcome=outcome, now=now)
    if outcome.status is PaymentStatus.FAILED:
        return _mark_failed(payment_id=payment_id, payment_hash=payment_hash, reason=outcome.failure_reason, now=now)
    logger.warning(
        "dev-fee payment %s is %s; kept in flight, the node is asked later", payment_hash[:16], outcome.status
    )
    return PENDING


def dev_fee_reconcile(*, payment_id: int, now: datetime | None = None) -> str:
    """Settle an `in-flight` row with the node's word (see the module docstring)."""
    now = now or timezone.now()
    row = DevFeePayment.objects.filter(pk=payment_id, status=S.IN_FLIGHT, payment_hash__isnull=False).first()
    if row is None or not row.payment_hash:  # the filter already excludes a missing hash
        return SKIPPED
    outcome = payment_track_classified(get_lightning_client(), payment_hash_hex=row.payment_hash)
    if outcome.status is PaymentStatus.UNKNOWN:
        if row.claimed_at is not None and row.claimed_at > now - timedelta(seconds=UNSEEN_GRACE_SECONDS):
            return PENDING  # the storing run may still be about to send
        logger.warning("dev-fee payment %s unknown to the node; sending the stored invoice", row.payment_hash[:16])
        outcome = dev_fee_send(
            payment_request=row.payment_request, payment_hash=row.payment_hash, amount_sats=row.amount_sats
        )
    return dev_fee_record_outcome(payment_id=row.pk, payment_hash=row.payment_hash, outcome=outcome, now=now)


# --- recording -------------------------------------------------------------------------------


def _release_claim(claim: DevFeeClaim, *, error: str, now: datetime) -> None:
    """Nothing was sent: the row becomes `failed` (visible) and is retried later."""
    DevFeePayment.objects.filter(
        pk=claim.payment_id, status=S.CLAIMED, claim_token=claim.token, payment_hash__isnull=True
    ).update(status=S.FAILED, claim_token=None, claimed_at=None, last_error=error[:1000], updated_at=now)


def _mark_failed(*, payment_id: int, payment_hash: str, reason: str, now: datetime) -> str:
    """The node said FAILED: only now is the hash released, so the next try gets a fresh invoice."""
    with transaction.atomic(durable=True):
        released = DevFeePayment.objects.filter(pk=payment_id, status=S.IN_FLIGHT, payment_hash=payment_hash).update(
            status=S.FAILED,
            payment_hash=None,
            payment_request="",
            claim_token=None,
            claimed_at=None,
            last_error=f"payment failed: {reason or 'no reason given'}"[:1000],
            updated_at=now,
        )
    if not released:
        return SKIPPED
    logger.warning("dev-fee payment %s failed at the node: %s", payment_hash[:16], reason)
    return FAILED


def _mark_paid(*, payment_id: int, payment_hash: str, outcome: PaymentOutcome, now: datetime) -> str:
    """`paid` and the kind-8383 audit event commit together (or neither does)."""
    with transaction.atomic(durable=True):
        row = (
            DevFeePayment.objects.select_for_update()
            .filter(pk=payment_id, status=S.IN_FLIGHT, payment_hash=payment_hash)
            .first()
        )
        if row is None:
            return SKIPPED  # another run recorded it first
        event = build_dev_fee_event(
            node_keys(),
            order_id=row.order_id,
            amount_sats=row.amount_sats,
            payment_hash=payment_hash,
            destination=row.destination,
            network=lnd_network(),
            settings=publisher_settings(),
            now=int(now.timestamp()),
        )
        enqueue_event(event=event, order_id=row.order_id)
        DevFeePayment.objects.filter(pk=row.pk).update(
            status=S.PAID,
            paid_at=now,
            routing_fee_sats=outcome.fee_sats,
            audit_event_id=event.id,
            claim_token=None,
            last_error="",
            updated_at=now,
        )
    logger.info("dev fee of order %s paid: %s sats, hash %s", row.order_id, row.amount_sats, payment_hash[:16])
    return PAID
