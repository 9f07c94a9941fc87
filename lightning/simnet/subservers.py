"""`invoicesrpc.Invoices` and `routerrpc.Router` for one simulated node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from lightning.grpc import invoices_pb2, invoices_pb2_grpc, lightning_pb2, router_pb2, router_pb2_grpc
from lightning.simnet.model import (
    INVOICE_CANCELED,
    INVOICE_SETTLED,
    PAYMENT_FAILED,
    PAYMENT_IN_FLIGHT,
    PAYMENT_SUCCEEDED,
    SimError,
    SimNode,
)
from lightning.simnet.rpc import Context, abort, check_call, drain, unary

if TYPE_CHECKING:
    from lightning.simnet.network import Network


def _invoice_final(proto: Any) -> bool:  # an Invoice protobuf or a SimInvoice
    return proto.state in (INVOICE_SETTLED, INVOICE_CANCELED)


def _payment_final(proto: Any) -> bool:
    return proto.status in (PAYMENT_SUCCEEDED, PAYMENT_FAILED)


class InvoicesService(invoices_pb2_grpc.InvoicesServicer):
    def __init__(self, network: Network, node: SimNode) -> None:
        self.network, self.node = network, node

    @unary
    def AddHoldInvoice(self, request: invoices_pb2.AddHoldInvoiceRequest) -> invoices_pb2.AddHoldInvoiceResp:  # noqa: N802 - gRPC method names
        if request.value and request.value_msat:
            raise SimError("value and value_msat are mutually exclusive")
        invoice = self.network.add_invoice(
            self.node,
            value_msat=request.value * 1000 or request.value_msat,
            memo=request.memo,
            expiry=request.expiry,
            cltv_expiry=request.cltv_expiry,
            r_hash=bytes(request.hash),
        )
        return invoices_pb2.AddHoldInvoiceResp(
            payment_request=invoice.payment_request, add_index=invoice.add_index, payment_addr=invoice.payment_addr
        )

    @unary
    def SettleInvoice(self, request: invoices_pb2.SettleInvoiceMsg) -> invoices_pb2.SettleInvoiceResp:  # noqa: N802
        self.network.settle(self.node, bytes(request.preimage))
        return invoices_pb2.SettleInvoiceResp()

    @unary
    def CancelInvoice(self, request: invoices_pb2.CancelInvoiceMsg) -> invoices_pb2.CancelInvoiceResp:  # noqa: N802
        self.network.cancel(self.node, bytes(request.payment_hash))
        return invoices_pb2.CancelInvoiceResp()

    @unary
    def LookupInvoiceV2(self, request: invoices_pb2.LookupInvoiceMsg) -> lightning_pb2.Invoice:  # noqa: N802
        if not request.payment_hash:
            raise SimError("invoice hash must be provided")
        return self.network.lookup(self.node, bytes(request.payment_hash)).to_proto()

    async def SubscribeSingleInvoice(
        self, request: invoices_pb2.SubscribeSingleInvoiceRequest, context: Context
    ) -> AsyncIterator[object]:  # noqa: N802
        """Current state (if the invoice exists yet), then every change; ends when final."""
        r_hash = bytes(request.r_hash)
        try:
            check_call(self.node, context)
            if len(r_hash) != 32:
                raise SimError(f"unable to parse hash: invalid length {len(r_hash)}, want 32")
        except SimError as exc:
            await abort(context, exc)
        queue = self.node.invoice_subs.add(r_hash)
        try:
            invoice = self.node.invoices.get(r_hash)
            if invoice is not None:
                yield invoice.to_proto()
                if _invoice_final(invoice):
                    return
            async for proto in drain(queue, context, is_final=_invoice_final):
                yield proto
        finally:
            self.node.invoice_subs.remove(r_hash, queue)


class RouterService(router_pb2_grpc.RouterServicer):
    def __init__(self, network: Network, node: SimNode) -> None:
        self.network, self.node = network, node

    async def SendPaymentV2(self, request: router_pb2.SendPaymentRequest, context: Context) -> AsyncIterator[object]:  # noqa: N802
        node = self.node
        try:
            check_call(node, context)
            if request.fee_limit_sat and request.fee_limit_msat:
                raise SimError("sat and msat arguments are mutually exclusive")
            payment, terms = self.network.start_payment(node, request)
        except SimError as exc:
            await abort(context, exc)
        queue = node.payment_subs.add(payment.payment_hash)
        try:
            first = payment.to_proto()
            # Deliver before the first write, so a client that hangs up early cannot
            # leave the payment undelivered (LND's router owns it once accepted).
            self.network.deliver(node, payment, terms, request.fee_limit_sat * 1000 or request.fee_limit_msat)
            if not request.no_inflight_updates:
                yield first
            async for proto in drain(queue, context, is_final=_payment_final):
                if proto.status != PAYMENT_IN_FLIGHT or not request.no_inflight_updates:
                    yield proto
        finally:
            node.payment_subs.remove(payment.payment_hash, queue)

    async def TrackPaymentV2(self, request: router_pb2.TrackPaymentRequest, context: Context) -> AsyncIterator[object]:  # noqa: N802
        node = self.node
        payment_hash = bytes(request.payment_hash)
        try:
            check_call(node, context)
            payment = node.payments.get(payment_hash)
            if payment is None:
                raise SimError("payment isn't initiated", code="NOT_FOUND")
        except SimError as exc:
            await abort(context, exc)
        queue = node.payment_subs.add(payment_hash)
        try:
            current = payment.to_proto()
            if not (request.no_inflight_updates and current.status == PAYMENT_IN_FLIGHT):
                yield current
            if _payment_final(current):
                return
            async for proto in drain(queue, context, is_final=_payment_final):
                if proto.status != PAYMENT_IN_FLIGHT or not request.no_inflight_updates:
                    yield proto
        finally:
            node.payment_subs.remove(payment_hash, queue)
