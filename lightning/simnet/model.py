"""Simulated node state: invoices, HTLCs and payments, and their LND protobuf views.

Everything runs on one asyncio loop, so no locks: a state change and the notification of
its subscribers happen in one step. Subscribers are asyncio queues; `RESTART` in a queue
tells the stream to end with UNAVAILABLE, as a restarting LND cuts its streams.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import coincurve

from lightning.grpc import lightning_pb2 as ln

RESTART = object()
INVOICE_OPEN = ln.Invoice.InvoiceState.OPEN
INVOICE_SETTLED = ln.Invoice.InvoiceState.SETTLED
INVOICE_CANCELED = ln.Invoice.InvoiceState.CANCELED
INVOICE_ACCEPTED = ln.Invoice.InvoiceState.ACCEPTED
HTLC_ACCEPTED = ln.InvoiceHTLCState.ACCEPTED
HTLC_SETTLED = ln.InvoiceHTLCState.SETTLED
HTLC_CANCELED = ln.InvoiceHTLCState.CANCELED
PAYMENT_IN_FLIGHT = ln.Payment.PaymentStatus.IN_FLIGHT
PAYMENT_SUCCEEDED = ln.Payment.PaymentStatus.SUCCEEDED
PAYMENT_FAILED = ln.Payment.PaymentStatus.FAILED


class SimError(Exception):
    """An RPC refusal: gRPC status name plus LND's message."""

    def __init__(self, message: str, code: str = "UNKNOWN") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Subscribers:
    """Queues keyed by payment hash; a hash may be watched before its invoice exists."""

    def __init__(self) -> None:
        self._queues: dict[bytes, set[asyncio.Queue[object]]] = {}

    def add(self, key: bytes) -> asyncio.Queue[object]:
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._queues.setdefault(key, set()).add(queue)
        return queue

    def remove(self, key: bytes, queue: asyncio.Queue[object]) -> None:
        queues = self._queues.get(key)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._queues[key]

    def publish(self, key: bytes, item: object) -> None:
        for queue in self._queues.get(key, ()):
            queue.put_nowait(item)

    def cut_all(self) -> None:
        for queues in self._queues.values():
            for queue in queues:
                queue.put_nowait(RESTART)


@dataclass
class SimHtlc:
    amt_msat: int
    accept_height: int
    expiry_height: int
    payer: SimPayment
    accept_time: int = field(default_factory=lambda: int(time.time()))
    state: ln.InvoiceHTLCState = HTLC_ACCEPTED
    resolve_time: int = 0

    def to_proto(self, index: int) -> ln.InvoiceHTLC:
        return ln.InvoiceHTLC(
            chan_id=1,
            htlc_index=index,
            amt_msat=self.amt_msat,
            accept_height=self.accept_height,
            accept_time=self.accept_time,
            resolve_time=self.resolve_time,
            expiry_height=self.expiry_height,
            state=self.state,
            mpp_total_amt_msat=self.amt_msat,
        )


@dataclass
class SimInvoice:
    r_hash: bytes
    value_msat: int
    memo: str
    payment_request: str
    payment_addr: bytes
    expiry: int
    cltv_expiry: int
    add_index: int
    is_hold: bool
    preimage: bytes | None = None
    creation_date: int = field(default_factory=lambda: int(time.time()))
    state: ln.Invoice.InvoiceState = INVOICE_OPEN
    settle_index: int = 0
    settle_date: int = 0
    htlcs: list[SimHtlc] = field(default_factory=list)

    @property
    def amt_paid_msat(self) -> int:
        return sum(h.amt_msat for h in self.htlcs if h.state != HTLC_CANCELED)

    def accepted_htlcs(self) -> list[SimHtlc]:
        return [h for h in self.htlcs if h.state == HTLC_ACCEPTED]

    def to_proto(self) -> ln.Invoice:
        paid = self.amt_paid_msat
        show_preimage = self.preimage is not None and (not self.is_hold or self.state == INVOICE_SETTLED)
        return ln.Invoice(
            memo=self.memo,
            r_preimage=self.preimage if show_preimage else b"",
            r_hash=self.r_hash,
            value=self.value_msat // 1000,
            value_msat=self.value_msat,
            settled=self.state == INVOICE_SETTLED,
            creation_date=self.creation_date,
            settle_date=self.settle_date,
            payment_request=self.payment_request,
            expiry=self.expiry,
            cltv_expiry=self.cltv_expiry,
            add_index=self.add_index,
            settle_index=self.settle_index,
            amt_paid=paid,
            amt_paid_sat=paid // 1000,
            amt_paid_msat=paid,
            state=self.state,
            htlcs=[h.to_proto(i) for i, h in enumerate(self.htlcs)],
            payment_addr=self.payment_addr,
        )


@dataclass
class SimPayment:
    payment_hash: bytes
    value_msat: int
    fee_msat: int
    payment_request: str
    payment_index: int
    payer: SimNode | None = None
    status: ln.Payment.PaymentStatus = PAYMENT_IN_FLIGHT
    failure_reason: ln.PaymentFailureReason = ln.PaymentFailureReason.FAILURE_REASON_NONE
    preimage: bytes = b""
    creation_time_ns: int = field(default_factory=time.time_ns)
    # A payment held back by fault injection; `deliver` continues it.
    stuck: bool = False
    deliver: tuple[object, int] | None = None  # (payments._Terms, fee limit msat)
    # Amount + fee taken from the payer's balance while the HTLC is outstanding.
    locked_msat: int = 0

    def to_proto(self) -> ln.Payment:
        return ln.Payment(
            payment_hash=self.payment_hash.hex(),
            value=self.value_msat // 1000,
            creation_date=self.creation_time_ns // 10**9,
            fee=self.fee_msat // 1000,
            payment_preimage=self.preimage.hex() if self.preimage else "0" * 64,
            value_sat=self.value_msat // 1000,
            value_msat=self.value_msat,
            payment_request=self.payment_request,
            status=self.status,
            fee_sat=self.fee_msat // 1000,
            fee_msat=self.fee_msat,
            creation_time_ns=self.creation_time_ns,
            payment_index=self.payment_index,
            failure_reason=self.failure_reason,
        )


@dataclass
class SimNode:
    name: str
    key: coincurve.PrivateKey
    macaroon: bytes
    port: int
    balance_msat: int
    invoices: dict[bytes, SimInvoice] = field(default_factory=dict)
    payments: dict[bytes, SimPayment] = field(default_factory=dict)
    invoice_subs: Subscribers = field(default_factory=Subscribers)
    payment_subs: Subscribers = field(default_factory=Subscribers)
    add_index: int = 0
    settle_index: int = 0
    payment_index: int = 0
    online: bool = True
    fail_next_payment: str = ""
    stick_next_payment: bool = False
    # Slow LND: unary calls (all, or only these method names) answer `call_delay_s` late; with
    # `delay_after_effect` the call takes effect at once and only its answer is late (a reply
    # lost to the client's deadline), else it takes effect after the wait (or never, if the
    # client gave up and the call was cancelled).
    call_delay_s: float = 0.0
    delay_methods: frozenset[str] = frozenset()
    delay_after_effect: bool = False
    cert_file: str = ""
    macaroon_file: str = ""

    @property
    def pubkey_hex(self) -> str:
        return self.key.public_key.format().hex()

    @property
    def macaroon_hex(self) -> str:
        return self.macaroon.hex()

    def delay_for(self, method: str) -> float:
        if self.call_delay_s and (not self.delay_methods or method in self.delay_methods):
            return self.call_delay_s
        return 0.0

    def notify_invoice(self, invoice: SimInvoice) -> None:
        self.invoice_subs.publish(invoice.r_hash, invoice.to_proto())

    def notify_payment(self, payment: SimPayment) -> None:
        self.payment_subs.publish(payment.payment_hash, payment.to_proto())

    def restart(self) -> None:
        self.invoice_subs.cut_all()
        self.payment_subs.cut_all()
