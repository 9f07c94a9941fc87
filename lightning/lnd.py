"""`LndClient`: the LightningClient over LND's gRPC API (TLS + macaroon).

Sync methods serve services and jobs; `subscribe_single_invoice` is an async stream over
grpc.aio for the invoice watcher. The channel is built on first use. Every unary call has a
deadline (LND_CALL_TIMEOUT_SECONDS); payments get `timeout_seconds` plus a margin.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any, Protocol

import grpc

from lightning import lnd_convert as convert
from lightning.errors import STATE_ANSWERS, LightningError, LightningUnavailable
from lightning.grpc import (
    invoices_pb2,
    invoices_pb2_grpc,
    lightning_pb2,
    lightning_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
)
from lightning.lnd_channel import CHANNEL_OPTIONS, SEND_CHANNEL_OPTIONS, LndTarget, build_target
from lightning.lnd_errors import RETRYABLE_CODES, assert_not_in_transaction, map_rpc_error
from lightning.metrics import lnd_call_observed
from lightning.types import (
    DecodedInvoice,
    HoldInvoice,
    InvoiceState,
    InvoiceUpdate,
    NodeInfo,
    PaymentOutcome,
    PaymentStatus,
)

logger = logging.getLogger(__name__)

# LND keeps routing for `timeout_seconds`; its final answer can take a little longer.
PAYMENT_DEADLINE_MARGIN_SECONDS = 15.0
_NOT_SENT_HINTS = ("failed to connect", "handshake", "connection refused", "dns resolution")
_FINAL_INVOICE_STATES = (InvoiceState.SETTLED, InvoiceState.CANCELED)


class _PaymentStream(Protocol):
    """A server-streaming call of payment updates (SendPaymentV2, TrackPaymentV2)."""

    def __iter__(self) -> Iterator[lightning_pb2.Payment]: ...

    def cancel(self) -> bool: ...


class _Stubs:
    def __init__(self, channel: grpc.Channel | grpc.aio.Channel) -> None:
        self.channel = channel
        self.lightning = lightning_pb2_grpc.LightningStub(channel)
        self.invoices = invoices_pb2_grpc.InvoicesStub(channel)
        self.router = router_pb2_grpc.RouterStub(channel)


class LndClient:
    """LightningClient for one LND node. Thread-safe; one instance per process is enough."""

    def __init__(
        self,
        *,
        host: str | None = None,
        cert_file: str | None = None,
        macaroon_file: str | None = None,
        call_timeout_seconds: float | None = None,
    ) -> None:
        self._host, self._cert_file, self._macaroon_file = host, cert_file, macaroon_file
        self._call_timeout = call_timeout_seconds
        self._lock = threading.Lock()
        self._target: LndTarget | None = None
        self._sync: _Stubs | None = None
        self._sending: _Stubs | None = None  # SendPaymentV2's channel: its streams on the calling thread
        self._aio: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Stubs] = weakref.WeakKeyDictionary()
        self._network = ""

    # --- connection -----------------------------------------------------------------------
    def _settings_target(self) -> LndTarget:
        if self._target is None:
            from django.conf import settings

            self._target = build_target(
                host=self._host or settings.LND_GRPC_HOST,
                cert_file=self._cert_file if self._cert_file is not None else settings.LND_CERT_FILE,
                macaroon_file=self._macaroon_file if self._macaroon_file is not None else settings.LND_MACAROON_FILE,
            )
            if self._call_timeout is None:
                self._call_timeout = float(getattr(settings, "LND_CALL_TIMEOUT_SECONDS", 10.0))
        return self._target

    def _stubs(self) -> _Stubs:
        return self._channel_stubs("_sync", CHANNEL_OPTIONS)

    def _channel_stubs(self, attribute: str, options: tuple[tuple[Any, Any], ...]) -> _Stubs:
        """The sync channel kept in `attribute`, opened with `options` at its first use."""
        with self._lock:
            stubs: _Stubs | None = getattr(self, attribute)
            if stubs is None:
                target = self._settings_target()
                stubs = _Stubs(grpc.secure_channel(target.target, target.credentials, options=options))
                setattr(self, attribute, stubs)
            return stubs

    def _send_stubs(self) -> _Stubs:
        """A channel of its own for `SendPaymentV2`, whose streams run on the calling thread.

        grpc's sync client starts a thread ("channel spin") for a stream whenever none of the
        channel's streams is open, and the job cluster's workers pay one payout at a time: a new
        thread per payout, 0.15 ms of CPU each measured here and ~6 % of the cluster's samples
        (the thread's start, its hand-offs). With `SingleThreadedUnaryStream` the calling thread
        reads the stream's events itself. Such a stream must be read to its end, or its
        completion queue stays allocated with the channel (~20 KB a stream, measured): LND ends
        SendPaymentV2 after the final update, and `send_payment` reads it to that end. Streams
        that are left open (`track_payment` without `wait_final`) stay on the threaded channel.
        """
        return self._channel_stubs("_sending", SEND_CHANNEL_OPTIONS)

    def _aio_stubs(self) -> _Stubs:
        loop = asyncio.get_running_loop()
        with self._lock:
            stubs = self._aio.get(loop)
            if stubs is None:
                target = self._settings_target()
                channel = grpc.aio.secure_channel(target.target, target.credentials, options=CHANNEL_OPTIONS)
                stubs = self._aio[loop] = _Stubs(channel)
            return stubs

    def close(self) -> None:
        with self._lock:
            for stubs in (self._sync, self._sending):
                if stubs is not None:
                    stubs.channel.close()
            self._sync = self._sending = None

    async def aclose(self) -> None:
        """Close the grpc.aio channel of the running event loop."""
        with self._lock:
            stubs = self._aio.pop(asyncio.get_running_loop(), None)
        if stubs is not None and isinstance(stubs.channel, grpc.aio.Channel):
            await stubs.channel.close()

    def _error(self, exc: grpc.RpcError, method: str) -> LightningError:
        target = self._target.target if self._target else "?"
        cert_file = self._target.cert_file if self._target else ""
        error = map_rpc_error(exc, method=method, target=target, cert_file=cert_file)
        # An answer about the invoice's state ("already settled", "unable to locate invoice") is
        # an outcome its caller expects and judges (a second settle by the payout racing the
        # release's is a no-op): INFO, so WARNING stays for what the operator must look at.
        level = logging.INFO if isinstance(error, STATE_ANSWERS) else logging.WARNING
        logger.log(level, "LND %s failed: %s", method, error.message)
        return error

    def _unary(self, service: str, method: str, request: object, timeout: float | None = None) -> Any:
        """The response message (Any: the generated gRPC stubs are untyped)."""
        assert_not_in_transaction()
        stub = getattr(self._stubs(), service)
        started, error = time.monotonic(), ""
        try:
            return getattr(stub, method)(
                request, timeout=timeout or self._call_timeout, metadata=self._settings_target().metadata
            )
        except grpc.RpcError as exc:
            mapped = self._error(exc, method)
            error = type(mapped).__name__
            raise mapped from exc
        finally:
            lnd_call_observed(method=method, seconds=time.monotonic() - started, error=error)

    # --- node -----------------------------------------------------------------------------
    def get_info(self) -> NodeInfo:
        info = convert.node_info(self._unary("lightning", "GetInfo", lightning_pb2.GetInfoRequest()))
        self._network = info.network
        return info

    def channel_balance_sats(self) -> int:
        balance = self._unary("lightning", "ChannelBalance", lightning_pb2.ChannelBalanceRequest())
        return int(balance.local_balance.sat)

    # --- invoices -------------------------------------------------------------------------
    def add_hold_invoice(
        self, *, amount_sats: int, preimage: bytes, memo: str, cltv_expiry: int, expiry_seconds: int | None = None
    ) -> HoldInvoice:
        payment_hash = hashlib.sha256(preimage).digest()
        request = invoices_pb2.AddHoldInvoiceRequest(
            memo=memo, hash=payment_hash, value=amount_sats, cltv_expiry=cltv_expiry, expiry=expiry_seconds or 0
        )
        response = self._unary("invoices", "AddHoldInvoice", request)
        logger.info("hold invoice added hash=%s amount_sats=%d", payment_hash.hex(), amount_sats)
        return HoldInvoice(
            payment_request=response.payment_request,
            payment_hash_hex=payment_hash.hex(),
            add_index=response.add_index,
            payment_addr_hex=response.payment_addr.hex(),
        )

    def add_invoice(
        self, *, amount_sats: int, memo: str = "", expiry_seconds: int | None = None, cltv_expiry: int = 0
    ) -> HoldInvoice:
        request = lightning_pb2.Invoice(
            memo=memo, value=amount_sats, expiry=expiry_seconds or 0, cltv_expiry=cltv_expiry
        )
        response = self._unary("lightning", "AddInvoice", request)
        return HoldInvoice(
            payment_request=response.payment_request,
            payment_hash_hex=response.r_hash.hex(),
            add_index=response.add_index,
            payment_addr_hex=response.payment_addr.hex(),
        )

    def settle_invoice(self, *, preimage: bytes) -> None:
        self._unary("invoices", "SettleInvoice", invoices_pb2.SettleInvoiceMsg(preimage=preimage))
        logger.info("hold invoice settled hash=%s", hashlib.sha256(preimage).hexdigest())

    def cancel_invoice(self, *, payment_hash: bytes) -> None:
        self._unary("invoices", "CancelInvoice", invoices_pb2.CancelInvoiceMsg(payment_hash=payment_hash))
        logger.info("hold invoice canceled hash=%s", payment_hash.hex())

    def lookup_invoice(self, *, payment_hash: bytes) -> InvoiceUpdate:
        invoice = self._unary("lightning", "LookupInvoice", lightning_pb2.PaymentHash(r_hash=payment_hash))
        return convert.invoice_update(invoice)

    async def subscribe_single_invoice(self, *, payment_hash: bytes) -> AsyncIterator[InvoiceUpdate]:
        """The current state, then each change; ends after SETTLED or CANCELED.

        No deadline (the stream lives as long as the escrow); keepalive pings detect a dead
        node, which ends the stream with `LightningUnavailable`.
        """
        call = self._aio_stubs().invoices.SubscribeSingleInvoice(
            invoices_pb2.SubscribeSingleInvoiceRequest(r_hash=payment_hash),
            # A Metadata, not the tuple: grpc.aio tests any other value against typing.Sequence, an ABC
            # subclass check that py-spy showed at ~2 ms per escrow in the running node (docs/PERFORMANCE.md).
            metadata=grpc.aio.Metadata(*self._settings_target().metadata),
        )
        try:
            async for invoice in call:
                update = convert.invoice_update(invoice)
                yield update
                if update.state in _FINAL_INVOICE_STATES:
                    return
        except grpc.RpcError as exc:
            error = self._error(exc, "SubscribeSingleInvoice")
            lnd_call_observed(method="SubscribeSingleInvoice", seconds=0.0, error=type(error).__name__)
            raise error from exc
        finally:
            call.cancel()

    def decode_pay_req(self, *, payment_request: str) -> DecodedInvoice:
        decoded = self._unary("lightning", "DecodePayReq", lightning_pb2.PayReqString(pay_req=payment_request))
        if not self._network:
            self.get_info()
        return convert.decoded_invoice(decoded, payment_request=payment_request, network=self._network)

    # --- payments -------------------------------------------------------------------------
    def send_payment(
        self, *, payment_request: str, max_fee_sats: int, timeout_seconds: int, amount_sats: int | None = None
    ) -> PaymentOutcome:
        """Raises LightningRejected when LND refuses to start the payment (expired invoice,
        already paid, ...). Once the request may have reached LND, transport errors and the
        client deadline give IN_FLIGHT/UNKNOWN, never FAILED."""
        assert_not_in_transaction()
        request = router_pb2.SendPaymentRequest(
            payment_request=payment_request, fee_limit_sat=max_fee_sats, timeout_seconds=timeout_seconds
        )
        if amount_sats:
            request.amt = amount_sats
        stubs = self._send_stubs()
        stream = stubs.router.SendPaymentV2(
            request,
            timeout=timeout_seconds + PAYMENT_DEADLINE_MARGIN_SECONDS,
            metadata=self._settings_target().metadata,
        )
        outcome = self._follow(stream, "SendPaymentV2", wait_final=True, to_end=True)
        if not outcome.payment_hash_hex:
            outcome = replace(outcome, payment_hash_hex=_hash_of(payment_request))
        logger.info("payment %s status=%s reason=%s", outcome.payment_hash_hex, outcome.status, outcome.failure_reason)
        return outcome

    def track_payment(self, *, payment_hash: bytes, wait_seconds: float = 0.0) -> PaymentOutcome:
        assert_not_in_transaction()
        request = router_pb2.TrackPaymentRequest(payment_hash=payment_hash)
        stubs = self._stubs()
        stream = stubs.router.TrackPaymentV2(
            request, timeout=wait_seconds or self._call_timeout, metadata=self._settings_target().metadata
        )
        return self._follow(stream, "TrackPaymentV2", wait_final=wait_seconds > 0, payment_hash_hex=payment_hash.hex())

    def _follow(
        self,
        stream: _PaymentStream,
        method: str,
        *,
        wait_final: bool,
        payment_hash_hex: str = "",
        to_end: bool = False,
    ) -> PaymentOutcome:
        """The stream's last update: the first final one (`wait_final`), else the first one.
        `to_end`: the stream is read until the server ends it (see `_send_stubs`); an update
        after a final one is not expected and does not replace it, nor does an error after it."""
        last: PaymentOutcome | None = None
        started, error = time.monotonic(), ""
        try:
            for payment in stream:
                if last is not None and last.status.is_final:
                    continue  # reading to the end (`to_end`): the final update stands
                last = convert.payment_outcome(payment, payment_hash_hex=payment_hash_hex)
                if (last.status.is_final and not to_end) or not wait_final:
                    break
        except grpc.RpcError as exc:
            if last is not None and last.status.is_final:
                return last  # the stream broke after the node's final word (`to_end` only)
            # LND's "no such payment" is an answer, not an error; a raised error names itself below.
            error = "" if _not_found(exc) else "OutcomeUnknown"
            try:
                return self._stream_error(exc, method, last, payment_hash_hex)
            except LightningError as raised:
                error = type(raised).__name__
                raise
        finally:
            stream.cancel()
            lnd_call_observed(method=method, seconds=time.monotonic() - started, error=error)
        return last or PaymentOutcome(status=PaymentStatus.UNKNOWN, payment_hash_hex=payment_hash_hex)

    def _stream_error(
        self, exc: grpc.RpcError, method: str, last: PaymentOutcome | None, payment_hash_hex: str
    ) -> PaymentOutcome:
        code = exc.code()
        details = (exc.details() or "").lower()
        if _not_found(exc):
            return PaymentOutcome(status=PaymentStatus.UNKNOWN, payment_hash_hex=payment_hash_hex)
        if code not in RETRYABLE_CODES:
            raise self._error(exc, method) from exc
        if last is None and any(hint in details for hint in _NOT_SENT_HINTS):
            raise self._error(exc, method) from exc  # the request never left this process
        logger.warning("LND %s: %s after %s; outcome unknown", method, code.name, last.status if last else "nothing")
        if last is not None:
            return last
        if method == "TrackPaymentV2":
            raise LightningUnavailable(f"LND {method} gave no answer: {code.name}", code=code.name)
        return PaymentOutcome(status=PaymentStatus.UNKNOWN, payment_hash_hex=payment_hash_hex)


def _not_found(exc: grpc.RpcError) -> bool:
    return exc.code() is grpc.StatusCode.NOT_FOUND or "isn't initiated" in (exc.details() or "").lower()


def _hash_of(payment_request: str) -> str:
    from lightning.bolt11 import InvoiceInvalid, decode_invoice

    try:
        return decode_invoice(payment_request).payment_hash_hex
    except InvoiceInvalid:
        return ""
