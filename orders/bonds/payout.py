"""Paying the counterparty's share of a slashed bond (docs/PROTOCOL.md §Bonds, Payout).

The winner is asked with `add-bond-invoice` (at most once per `payout_invoice_window_seconds`)
until it sends an invoice for exactly its share or the claim window ends (`forfeited`: the node
keeps everything). Each attempt claims the invoice's payment hash in the database before
`send_payment` (at most one payment per invoice); an unknown outcome keeps the claim and is
asked of LND at the next sweep; after `payout_max_retries` failures the bond is `failed`
and a new invoice within the claim window revives it.
"""

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from lightning import get_lightning_client
from lightning.errors import LightningError
from lightning.fees import routing_fee_cap_sats
from lightning.outcomes import payment_send_classified
from lightning.types import PaymentStatus
from mostro_site.config import node_config
from mostro_site.config.faults import kill_point
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import BondPayoutRequestPayload, OrderPayload
from nostrbridge.protocol.structs import BondPayoutRequest
from orders.bonds.models import Bond, BondState
from orders.bonds.ranges import range_part_payable
from orders.bonds.transitions import bond_transition, bond_update_guarded
from orders.bonds.wire import bond_order_view
from orders.models import Order
from orders.wire import send

logger = logging.getLogger(__name__)
ACTOR = "scheduler"
SEND_TIMEOUT_SECONDS = 60
BATCH = 50
OWED_STATES = (BondState.PENDING_PAYOUT, BondState.FAILED)


def claim_deadline(bond: Bond) -> datetime:
    assert bond.slashed_at is not None
    return bond.slashed_at + timedelta(days=node_config().bond_payout_claim_window_days)


def process_bond_payouts(now: datetime | None = None) -> dict[str, int]:
    """The payout job (every 60 s)."""
    now = now or timezone.now()
    counts: dict[str, int] = {}
    for bond in Bond.objects.filter(state__in=OWED_STATES).order_by("pk")[:BATCH]:
        what = bond_payout_step(bond=bond, now=now)
        counts[what] = counts.get(what, 0) + 1
    return counts


def bond_payout_step(*, bond: Bond, now: datetime) -> str:
    """One bond's next move; returns what happened. Nothing moves before LND confirmed the
    slashed HTLC settled (a range part: its parent's): the node pays only sats it holds."""
    if not range_part_payable(bond):
        return "awaiting-settle"
    if not bond.payout_sats:
        # Never paid, so never `failed`: only `pending-payout → slashed` is an edge.
        _transition(bond, [BondState.PENDING_PAYOUT], BondState.SLASHED, "no counterparty share owed")
        return "settled_without_share"
    if bond.state == BondState.PENDING_PAYOUT and bond.payout_hash is not None:
        # A payment was started: LND says how it ended, never the clock (a claim is not forfeited).
        return bond_pay(bond_id=bond.pk)
    if now >= claim_deadline(bond):
        # Guarded: a payment claimed after this sweep read the bond is asked of LND instead.
        reason = "claim window ended without a paid invoice"
        won = _transition(bond, OWED_STATES, BondState.FORFEITED, reason, guard=Q(payout_hash__isnull=True))
        return "forfeited" if won else "waiting"
    if bond.state == BondState.PENDING_PAYOUT and bond.payout_invoice:
        return bond_pay(bond_id=bond.pk)
    window = timedelta(seconds=node_config().bond_payout_invoice_window_seconds)
    if bond.payout_asked_at is None or now - bond.payout_asked_at >= window:
        _ask_for_invoice(bond, now=now)
        return "asked"
    return "waiting"


def _transition(bond: Bond, from_states: Iterable[str], to_state: str, reason: str, guard: Q | None = None) -> bool:
    with transaction.atomic():
        return bond_transition(
            bond_id=bond.pk, from_states=from_states, to_state=to_state, actor=ACTOR, reason=reason, guard=guard
        )


def _ask_for_invoice(bond: Bond, *, now: datetime) -> None:
    order = Order.objects.get(pk=bond.order_id)
    assert bond.slashed_at is not None
    assert bond.payout_sats is not None
    request = BondPayoutRequest(
        order=bond_order_view(order, amount_sats=bond.payout_sats), slashed_at=int(bond.slashed_at.timestamp())
    )
    with transaction.atomic():
        if bond_update_guarded(
            bond_id=bond.pk,
            states=OWED_STATES,
            set_fields={"payout_asked_at": now},
            guard=Q(payout_invoice__isnull=True),
        ):
            send(bond.payout_recipient, Action.ADD_BOND_INVOICE, order, payload=BondPayoutRequestPayload(request))


def bond_payout_invoice_accept(*, order_id, sender: str, invoice: str | None, atomic) -> Bond:
    """`add-bond-invoice` from the winner (docs/PROTOCOL.md §Bonds, Payout): checks, store, ack."""
    from nostrbridge.protocol.enums import CantDoReason
    from nostrbridge.protocol.errors import CantDo

    if not invoice:
        raise CantDo(CantDoReason.INVALID_INVOICE)
    now = timezone.now()
    owed = Bond.objects.filter(
        order_id=order_id,
        payout_recipient=sender,
        state__in=OWED_STATES,
        payout_invoice__isnull=True,
        payout_sats__gt=0,
    )
    bond = next((b for b in owed.order_by("pk") if now < claim_deadline(b)), None)
    if bond is None:
        raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
    assert bond.payout_sats is not None
    _check_invoice(invoice, amount_sats=bond.payout_sats)
    order = Order.objects.get(pk=bond.order_id)
    with atomic():
        fields = {"payout_invoice": invoice, "payout_hash": None, "payout_claimed_at": None}
        if bond.state == BondState.FAILED:
            stored = bond_transition(
                bond_id=bond.pk,
                from_states=[BondState.FAILED],
                to_state=BondState.PENDING_PAYOUT,
                actor=sender,
                reason="new payout invoice after a failed payout",
                set_fields={**fields, "payout_attempts": 0},
                guard=Q(payout_invoice__isnull=True),
            )
        else:
            stored = bond_update_guarded(
                bond_id=bond.pk,
                states=[BondState.PENDING_PAYOUT],
                set_fields=fields,
                guard=Q(payout_invoice__isnull=True),
            )
        if not stored:
            raise CantDo(CantDoReason.NOT_ALLOWED_BY_STATUS)
        view = OrderPayload(bond_order_view(order, amount_sats=bond.payout_sats))
        send(sender, Action.BOND_INVOICE_ACCEPTED, order, payload=view)
        _pay_in_background(bond.pk)
    return bond


def _pay_in_background(bond_id: int) -> None:
    """The payment runs in the job cluster, never in the intake worker (a payment may take a
    minute); the queue row is written in this transaction when the broker shares it."""
    from django_q.tasks import async_task

    from orders.services.payout import broker_shares_the_transaction

    def enqueue() -> None:
        async_task("orders.bonds.payout.bond_pay", bond_id=bond_id, task_name=f"bond-payout-{bond_id}", save=False)

    if broker_shares_the_transaction():
        enqueue()
    else:
        transaction.on_commit(enqueue, robust=True)


def _check_invoice(invoice: str, *, amount_sats: int) -> None:
    """A BOLT11 of this node's network for exactly the share, not expired (`invalid_invoice`)."""
    from lightning.bolt11 import InvoiceInvalid, validate_payout_invoice
    from nostrbridge.event_settings import invoice_network
    from nostrbridge.protocol.enums import CantDoReason
    from nostrbridge.protocol.errors import CantDo

    network = invoice_network()
    try:
        if network is None:
            raise InvoiceInvalid("network", "LND's network is unknown")
        decoded = validate_payout_invoice(invoice, expected_amount_sats=amount_sats, network=network)
    except InvoiceInvalid as exc:
        raise CantDo(CantDoReason.INVALID_INVOICE) from exc
    if decoded.amount_msat != amount_sats * 1000:
        raise CantDo(CantDoReason.INVALID_INVOICE)  # an amountless invoice is not "exactly the share"


def bond_pay(*, bond_id: int) -> str:
    """Claim, pay, record. Never raises."""
    bond = Bond.objects.get(pk=bond_id)
    if bond.state != BondState.PENDING_PAYOUT or not bond.payout_invoice or bond.payout_sats is None:
        return "waiting"
    if not range_part_payable(bond):
        return "awaiting-settle"
    client = get_lightning_client()
    try:
        decoded = client.decode_pay_req(payment_request=bond.payout_invoice)
    except LightningError as exc:
        logger.warning("bond %s: payout invoice undecodable (%s)", bond.pk, exc.message)
        return "waiting"
    if bond.payout_hash is None:
        try:
            with transaction.atomic():
                claimed = bond_update_guarded(
                    bond_id=bond.pk,
                    states=[BondState.PENDING_PAYOUT],
                    set_fields={"payout_hash": decoded.payment_hash_hex, "payout_claimed_at": timezone.now()},
                    guard=Q(payout_hash__isnull=True, payout_invoice=bond.payout_invoice),
                )
        except IntegrityError:
            claimed = False  # that invoice's hash is already some other payment's
        if not claimed:
            return "waiting"
    try:
        outcome = payment_send_classified(
            client,
            payment_request=bond.payout_invoice,
            payment_hash_hex=decoded.payment_hash_hex,
            max_fee_sats=routing_fee_cap_sats(bond.payout_sats, max_routing_fee=node_config().max_routing_fee),
            timeout_seconds=SEND_TIMEOUT_SECONDS,
        )
    except Exception:
        logger.exception("bond %s: payout outcome unknown; asked again at the next sweep", bond.pk)
        return "waiting"
    kill_point("bond-payout-sent")
    if outcome.status is PaymentStatus.SUCCEEDED:
        return _record_paid(bond)
    if outcome.status is PaymentStatus.FAILED:
        return _record_failed(bond, outcome.failure_reason)
    return "waiting"  # in flight or unknown: the claim stays, LND answers next time


def _record_paid(bond: Bond) -> str:
    order = Order.objects.get(pk=bond.order_id)
    with transaction.atomic():
        if bond_transition(
            bond_id=bond.pk,
            from_states=[BondState.PENDING_PAYOUT],
            to_state=BondState.SLASHED,
            actor="lightning",
            reason="counterparty share paid",
            set_fields={"payout_paid_at": timezone.now()},
        ):
            assert bond.payout_sats is not None
            view = OrderPayload(bond_order_view(order, amount_sats=bond.payout_sats))
            send(bond.payout_recipient, Action.BOND_PAYOUT_COMPLETED, order, payload=view)
    return "paid"


def _record_failed(bond: Bond, reason: str) -> str:
    attempts = bond.payout_attempts + 1
    # The claim is dropped (the next sweep claims the same invoice again); after the last
    # attempt the invoice too: `failed` waits for a new one.
    fields = {"payout_attempts": attempts, "payout_hash": None, "payout_claimed_at": None}
    logger.warning("bond %s: payout attempt %s failed (%s)", bond.pk, attempts, reason)
    with transaction.atomic():
        if attempts >= node_config().bond_payout_max_retries:
            bond_transition(
                bond_id=bond.pk,
                from_states=[BondState.PENDING_PAYOUT],
                to_state=BondState.FAILED,
                actor="lightning",
                reason=f"payout failed {attempts} times",
                set_fields={**fields, "payout_invoice": None, "payout_asked_at": None},
            )
        else:
            bond_update_guarded(bond_id=bond.pk, states=[BondState.PENDING_PAYOUT], set_fields=fields)
    return "failed"
