"""`FakeLightningClient`: an in-memory LND for fast unit tests (LIGHTNING_BACKEND in tests).

It mints real signed regtest BOLT11 strings, keeps hold invoices through OPEN → ACCEPTED →
SETTLED/CANCELED with LND's error strings, and records every call. Test controls:

- `mark_accepted(payment_hash)`: the seller's HTLC arrives (OPEN → ACCEPTED);
- `fail_next_payment(reason)`, `leave_next_payment_in_flight()`, `resolve_payment(...)`;
- `set_unavailable(True)`: every call raises `LightningUnavailable`;
- `mine_blocks(n)`, `reset()`, and `calls` (method name + arguments, preimages left out).

Like `LndClient`, every call asserts that no database transaction is open.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import coincurve

from lightning.bolt11 import InvoiceInvalid, decode_invoice
from lightning.bolt11_encode import InvoiceTerms, encode_invoice
from lightning.errors import (
    AlreadySettledOrCanceled,
    InvoiceNotFound,
    InvoiceStillOpen,
    LightningRejected,
    LightningUnavailable,
    PaymentAlreadyExists,
)
from lightning.lnd_errors import assert_not_in_transaction
from lightning.types import (
    DecodedInvoice,
    HoldInvoice,
    InvoiceState,
    InvoiceUpdate,
    NodeInfo,
    PaymentOutcome,
    PaymentStatus,
)

DEFAULT_INVOICE_EXPIRY_SECONDS = 86_400  # LND's default when no expiry is given
START_HEIGHT = 800
_NODE_KEY = coincurve.PrivateKey(hashlib.sha256(b"mostro-fake-lightning-node").digest())
_FINAL = (InvoiceState.SETTLED, InvoiceState.CANCELED)


@dataclass
class FakeInvoice:
    payment_hash_hex: str
    payment_request: str
    amount_sats: int
    memo: str
    cltv_expiry: int
    add_index: int
    preimage: bytes | None = None
    is_hold: bool = True
    state: InvoiceState = InvoiceState.OPEN
    amount_paid_sats: int = 0
    settle_index: int = 0
    htlc_expiry_heights: tuple[int, ...] = ()
    created_at: int = field(default_factory=lambda: int(time.time()))
    expiry_seconds: int = DEFAULT_INVOICE_EXPIRY_SECONDS

    def update(self) -> InvoiceUpdate:
        return InvoiceUpdate(
            payment_hash_hex=self.payment_hash_hex,
            state=self.state,
            amount_sats=self.amount_sats,
            amount_paid_sats=self.amount_paid_sats,
            htlc_expiry_heights=self.htlc_expiry_heights if self.state is InvoiceState.ACCEPTED else (),
            payment_request=self.payment_request,
            memo=self.memo,
            add_index=self.add_index,
            settle_index=self.settle_index,
            cltv_expiry=self.cltv_expiry,
            creation_date=self.created_at,
            expiry_seconds=self.expiry_seconds,
        )


class FakeLightningClient:
    alias = "fake-lnd"
    network = "regtest"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._subscribers: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[InvoiceUpdate]]]] = {}
        self.reset()

    # --- test controls --------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.invoices: dict[str, FakeInvoice] = {}
            self.payments: dict[str, PaymentOutcome] = {}
            self.calls: list[tuple[str, dict[str, Any]]] = []
            self.block_height = START_HEIGHT
            self.unavailable = False
            self.next_payment_fee_sats = 0
            self._next_failure: str | None = None
            self._next_in_flight = False
            self._add_index = 0
            self._settle_index = 0

    def set_unavailable(self, unavailable: bool = True) -> None:
        self.unavailable = unavailable

    def fail_next_payment(self, reason: str = "FAILURE_REASON_NO_ROUTE") -> None:
        self._next_failure = reason

    def leave_next_payment_in_flight(self) -> None:
        self._next_in_flight = True

    def mine_blocks(self, count: int = 1) -> int:
        self.block_height += count
        return self.block_height

    def mark_accepted(self, payment_hash: bytes | str, *, htlc_expiry_height: int | None = None) -> InvoiceUpdate:
        """The payer's HTLC is locked in: OPEN → ACCEPTED with the full amount paid."""
        with self._lock:
            invoice = self._invoice(payment_hash)
            if invoice.state is not InvoiceState.OPEN:
                raise LightningRejected(
                    f"cannot accept invoice in state {invoice.state}", details="cannot accept invoice"
                )
            expiry = htlc_expiry_height or self.block_height + invoice.cltv_expiry
            invoice.state = InvoiceState.ACCEPTED
            invoice.amount_paid_sats = invoice.amount_sats
            invoice.htlc_expiry_heights = (expiry,)
            return self._changed(invoice)

    def resolve_payment(
        self, payment_hash: bytes | str, *, succeed: bool, reason: str = "FAILURE_REASON_TIMEOUT"
    ) -> PaymentOutcome:
        """Finish a payment left in flight."""
        key = _hex(payment_hash)
        with self._lock:
            outcome = self.payments[key]
            if succeed:
                outcome = replace(outcome, status=PaymentStatus.SUCCEEDED, preimage_hex=_fake_preimage(key))
            else:
                outcome = replace(outcome, status=PaymentStatus.FAILED, failure_reason=reason)
            self.payments[key] = outcome
            return outcome

    def invoice_state(self, payment_hash: bytes | str) -> InvoiceState:
        return self._invoice(payment_hash).state

    # --- plumbing -------------------------------------------------------------------------
    def _call(self, method: str, **kwargs: object) -> None:
        assert_not_in_transaction()
        if self.unavailable:
            raise LightningUnavailable(f"fake LND unavailable for {method}", code="UNAVAILABLE")
        with self._lock:
            self.calls.append((method, kwargs))

    def _invoice(self, payment_hash: bytes | str) -> FakeInvoice:
        invoice = self.invoices.get(_hex(payment_hash))
        if invoice is None:
            raise InvoiceNotFound("unable to locate invoice", code="UNKNOWN", details="unable to locate invoice")
        return invoice

    def _changed(self, invoice: FakeInvoice) -> InvoiceUpdate:
        update = invoice.update()
        for loop, queue in self._subscribers.get(invoice.payment_hash_hex, []):
            loop.call_soon_threadsafe(queue.put_nowait, update)
        return update

    def _mint(self, *, amount_sats: int, memo: str, payment_hash: bytes, cltv: int, expiry: int) -> str:
        terms = InvoiceTerms(
            payment_hash=payment_hash,
            payment_secret=os.urandom(32),
            amount_msat=amount_sats * 1000,
            description=memo,
            expiry_seconds=expiry,
            min_final_cltv_expiry=cltv,
            currency="bcrt",
            timestamp=int(time.time()),
        )
        return encode_invoice(terms, _NODE_KEY)

    # --- LightningClient --------------------------------------------------------------------
    def get_info(self) -> NodeInfo:
        self._call("get_info")
        return NodeInfo(
            alias=self.alias,
            pubkey=_NODE_KEY.public_key.format().hex(),
            version="0.20.0-beta commit=fake",
            commit_hash="fake",
            chains=("bitcoin",),
            networks=(self.network,),
            uris=(),
            block_height=self.block_height,
        )

    def add_hold_invoice(
        self, *, amount_sats: int, preimage: bytes, memo: str, cltv_expiry: int, expiry_seconds: int | None = None
    ) -> HoldInvoice:
        payment_hash = hashlib.sha256(preimage).digest()
        self._call(
            "add_hold_invoice",
            amount_sats=amount_sats,
            payment_hash=payment_hash.hex(),
            memo=memo,
            cltv_expiry=cltv_expiry,
            expiry_seconds=expiry_seconds,
        )
        return self._add(payment_hash, amount_sats, memo, cltv_expiry, expiry_seconds, preimage=None, is_hold=True)

    def add_invoice(
        self, *, amount_sats: int, memo: str = "", expiry_seconds: int | None = None, cltv_expiry: int = 0
    ) -> HoldInvoice:
        preimage = os.urandom(32)
        payment_hash = hashlib.sha256(preimage).digest()
        self._call("add_invoice", amount_sats=amount_sats, memo=memo, expiry_seconds=expiry_seconds)
        return self._add(payment_hash, amount_sats, memo, cltv_expiry or 80, expiry_seconds, preimage, is_hold=False)

    def _add(
        self,
        payment_hash: bytes,
        amount_sats: int,
        memo: str,
        cltv: int,
        expiry: int | None,
        preimage: bytes | None,
        is_hold: bool,
    ) -> HoldInvoice:
        with self._lock:
            if payment_hash.hex() in self.invoices:
                raise LightningRejected(
                    "invoice with payment hash already exists",
                    code="UNKNOWN",
                    details="invoice with payment hash already exists",
                )
            expiry = expiry or DEFAULT_INVOICE_EXPIRY_SECONDS
            self._add_index += 1
            request = self._mint(
                amount_sats=amount_sats, memo=memo, payment_hash=payment_hash, cltv=cltv, expiry=expiry
            )
            self.invoices[payment_hash.hex()] = FakeInvoice(
                payment_hash_hex=payment_hash.hex(),
                payment_request=request,
                amount_sats=amount_sats,
                memo=memo,
                cltv_expiry=cltv,
                add_index=self._add_index,
                preimage=preimage,
                is_hold=is_hold,
                expiry_seconds=expiry,
            )
            return HoldInvoice(payment_request=request, payment_hash_hex=payment_hash.hex(), add_index=self._add_index)

    def settle_invoice(self, *, preimage: bytes) -> None:
        payment_hash = hashlib.sha256(preimage).hexdigest()
        self._call("settle_invoice", payment_hash=payment_hash)
        with self._lock:
            invoice = self._invoice(payment_hash)
            _refuse_unless_accepted(invoice.state)
            invoice.preimage = preimage
            invoice.state = InvoiceState.SETTLED
            self._settle_index += 1
            invoice.settle_index = self._settle_index
            self._changed(invoice)

    def cancel_invoice(self, *, payment_hash: bytes) -> None:
        self._call("cancel_invoice", payment_hash=payment_hash.hex())
        with self._lock:
            invoice = self._invoice(payment_hash)
            if invoice.state is InvoiceState.CANCELED:
                return  # LND's CancelInvoice is idempotent
            if invoice.state is InvoiceState.SETTLED:
                raise AlreadySettledOrCanceled(
                    "invoice already settled", code="UNKNOWN", details="invoice already settled"
                )
            invoice.state = InvoiceState.CANCELED
            invoice.amount_paid_sats = 0
            self._changed(invoice)

    def lookup_invoice(self, *, payment_hash: bytes) -> InvoiceUpdate:
        self._call("lookup_invoice", payment_hash=payment_hash.hex())
        return self._invoice(payment_hash).update()

    async def subscribe_single_invoice(self, *, payment_hash: bytes) -> AsyncIterator[InvoiceUpdate]:
        self._call("subscribe_single_invoice", payment_hash=payment_hash.hex())
        key = payment_hash.hex()
        queue: asyncio.Queue[InvoiceUpdate] = asyncio.Queue()
        entry = (asyncio.get_running_loop(), queue)
        with self._lock:
            update = self._invoice(key).update()
            self._subscribers.setdefault(key, []).append(entry)
        try:
            while True:
                yield update
                if update.state in _FINAL:
                    return
                update = await queue.get()
        finally:
            with self._lock:
                self._subscribers[key].remove(entry)

    def decode_pay_req(self, *, payment_request: str) -> DecodedInvoice:
        self._call("decode_pay_req", payment_request=payment_request)
        try:
            return decode_invoice(payment_request)
        except InvoiceInvalid as exc:
            raise LightningRejected(
                f"invalid payment request: {exc.message}", code="UNKNOWN", details=exc.message
            ) from exc

    def send_payment(
        self, *, payment_request: str, max_fee_sats: int, timeout_seconds: int, amount_sats: int | None = None
    ) -> PaymentOutcome:
        self._call(
            "send_payment",
            payment_request=payment_request,
            max_fee_sats=max_fee_sats,
            timeout_seconds=timeout_seconds,
            amount_sats=amount_sats,
        )
        decoded = self._decode_for_payment(payment_request, amount_sats)
        key = decoded.payment_hash_hex
        with self._lock:
            _refuse_duplicate(self.payments.get(key))
            outcome = self._next_outcome(key, amount_sats or decoded.amount_sats)
            self.payments[key] = outcome
            return outcome

    def _decode_for_payment(self, payment_request: str, amount_sats: int | None) -> DecodedInvoice:
        try:
            decoded = decode_invoice(payment_request)
        except InvoiceInvalid as exc:
            raise LightningRejected(exc.message, code="UNKNOWN", details=exc.message) from exc
        message = ""
        if decoded.expires_at < time.time():
            message = "invoice expired"
        elif decoded.amount_msat == 0 and not amount_sats:
            message = "amount must be specified when paying a zero amount invoice"
        elif decoded.amount_msat and amount_sats:
            message = "amount must not be specified when paying a non-zero amount invoice"
        if message:
            raise LightningRejected(message, code="UNKNOWN", details=message)
        return decoded

    def _next_outcome(self, key: str, amount_sats: int) -> PaymentOutcome:
        base = PaymentOutcome(status=PaymentStatus.IN_FLIGHT, payment_hash_hex=key, amount_sats=amount_sats)
        if self._next_in_flight:
            self._next_in_flight = False
            return base
        if self._next_failure:
            reason, self._next_failure = self._next_failure, None
            return replace(base, status=PaymentStatus.FAILED, failure_reason=reason)
        return replace(
            base, status=PaymentStatus.SUCCEEDED, preimage_hex=_fake_preimage(key), fee_sats=self.next_payment_fee_sats
        )

    def track_payment(self, *, payment_hash: bytes, wait_seconds: float = 0.0) -> PaymentOutcome:
        self._call("track_payment", payment_hash=payment_hash.hex())
        outcome = self.payments.get(payment_hash.hex())
        return outcome or PaymentOutcome(status=PaymentStatus.UNKNOWN, payment_hash_hex=payment_hash.hex())


def _hex(value: bytes | str) -> str:
    return value.hex() if isinstance(value, bytes) else value.lower()


def _fake_preimage(payment_hash_hex: str) -> str:
    # Deterministic stand-in: the payee of an external invoice is not simulated here.
    return hashlib.sha256(b"fake-preimage" + bytes.fromhex(payment_hash_hex)).hexdigest()


def _refuse_unless_accepted(state: InvoiceState) -> None:
    messages = {
        InvoiceState.OPEN: (InvoiceStillOpen, "invoice still open"),
        InvoiceState.CANCELED: (AlreadySettledOrCanceled, "invoice already canceled"),
        InvoiceState.SETTLED: (AlreadySettledOrCanceled, "invoice already settled"),
    }
    if state in messages:
        cls, message = messages[state]
        raise cls(message, code="UNKNOWN", details=message)


def _refuse_duplicate(previous: PaymentOutcome | None) -> None:
    if previous is None or previous.status is PaymentStatus.FAILED:
        return
    message = "invoice is already paid" if previous.status is PaymentStatus.SUCCEEDED else "payment is in transition"
    raise PaymentAlreadyExists(message, code="ALREADY_EXISTS", details=message)
