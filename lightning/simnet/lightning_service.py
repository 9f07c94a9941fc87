"""`lnrpc.Lightning` for one simulated node (the subset Mostro and its tests use)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from lightning.bolt11 import InvoiceInvalid, decode_invoice
from lightning.grpc import lightning_pb2 as ln
from lightning.grpc import lightning_pb2_grpc
from lightning.simnet.model import INVOICE_ACCEPTED, INVOICE_OPEN, PAYMENT_SUCCEEDED, SimError, SimNode
from lightning.simnet.rpc import unary

if TYPE_CHECKING:
    from lightning.simnet.network import Network

_T = TypeVar("_T")

VERSION = "0.20.0-beta commit=v0.20.0-beta-simnet"
WALLET_BALANCE_SATS = 100_000_000
DEFAULT_PAGE = 100  # LND answers 100 invoices/payments when no maximum is given


class LightningService(lightning_pb2_grpc.LightningServicer):
    def __init__(self, network: Network, node: SimNode) -> None:
        self.network, self.node = network, node

    @unary
    def GetInfo(self, request: ln.GetInfoRequest) -> ln.GetInfoResponse:  # noqa: N802 - gRPC method names
        net, node = self.network, self.node
        return ln.GetInfoResponse(
            version=VERSION,
            commit_hash="simnet",
            identity_pubkey=node.pubkey_hex,
            alias=node.name,
            color="#3399ff",
            num_active_channels=len(net.nodes) - 1,
            num_peers=len(net.nodes) - 1,
            block_height=net.height,
            block_hash=net.block_hash(),
            best_header_timestamp=int(time.time()),
            synced_to_chain=True,
            synced_to_graph=True,
            chains=[ln.Chain(chain="bitcoin", network=net.network_name)],
            uris=[f"{node.pubkey_hex}@127.0.0.1:{node.port + 1000}"],
        )

    @unary
    def WalletBalance(self, request: ln.WalletBalanceRequest) -> ln.WalletBalanceResponse:  # noqa: N802
        sats = WALLET_BALANCE_SATS
        return ln.WalletBalanceResponse(total_balance=sats, confirmed_balance=sats)

    @unary
    def ChannelBalance(self, request: ln.ChannelBalanceRequest) -> ln.ChannelBalanceResponse:  # noqa: N802
        node = self.node
        in_flight = sum(p.locked_msat for p in node.payments.values())
        return ln.ChannelBalanceResponse(
            balance=node.balance_msat // 1000,
            local_balance=ln.Amount(sat=node.balance_msat // 1000, msat=node.balance_msat),
            unsettled_local_balance=ln.Amount(sat=in_flight // 1000, msat=in_flight),
        )

    @unary
    def AddInvoice(self, request: ln.Invoice) -> ln.AddInvoiceResponse:  # noqa: N802
        if request.value and request.value_msat:
            raise SimError("value and value_msat are mutually exclusive")
        invoice = self.network.add_invoice(
            self.node,
            value_msat=request.value * 1000 or request.value_msat,
            memo=request.memo,
            expiry=request.expiry,
            cltv_expiry=request.cltv_expiry,
            preimage=request.r_preimage or None,
        )
        return ln.AddInvoiceResponse(
            r_hash=invoice.r_hash,
            payment_request=invoice.payment_request,
            add_index=invoice.add_index,
            payment_addr=invoice.payment_addr,
        )

    @unary
    def LookupInvoice(self, request: ln.PaymentHash) -> ln.Invoice:  # noqa: N802
        r_hash = request.r_hash or _hex_hash(request.r_hash_str)
        return self.network.lookup(self.node, r_hash).to_proto()

    @unary
    def ListInvoices(self, request: ln.ListInvoiceRequest) -> ln.ListInvoiceResponse:  # noqa: N802
        invoices = sorted(self.node.invoices.values(), key=lambda i: i.add_index)
        if request.pending_only:
            invoices = [i for i in invoices if i.state in (INVOICE_OPEN, INVOICE_ACCEPTED)]
        page = _page(invoices, lambda i: i.add_index, request.index_offset, request.num_max_invoices, request.reversed)
        return ln.ListInvoiceResponse(
            invoices=[i.to_proto() for i in page],
            first_index_offset=page[0].add_index if page else 0,
            last_index_offset=page[-1].add_index if page else 0,
        )

    @unary
    def ListPayments(self, request: ln.ListPaymentsRequest) -> ln.ListPaymentsResponse:  # noqa: N802
        payments = sorted(self.node.payments.values(), key=lambda p: p.payment_index)
        if not request.include_incomplete:
            payments = [p for p in payments if p.status == PAYMENT_SUCCEEDED]
        page = _page(payments, lambda p: p.payment_index, request.index_offset, request.max_payments, request.reversed)
        return ln.ListPaymentsResponse(
            payments=[p.to_proto() for p in page],
            first_index_offset=page[0].payment_index if page else 0,
            last_index_offset=page[-1].payment_index if page else 0,
            total_num_payments=len(payments) if request.count_total_payments else 0,
        )

    @unary
    def DecodePayReq(self, request: ln.PayReqString) -> ln.PayReq:  # noqa: N802
        found = self.network.by_request.get(request.pay_req.lower())
        if found is not None:
            payee, inv = found
            return ln.PayReq(
                destination=payee.pubkey_hex,
                payment_hash=inv.r_hash.hex(),
                num_satoshis=inv.value_msat // 1000,
                timestamp=inv.creation_date,
                expiry=inv.expiry,
                description=inv.memo,
                cltv_expiry=inv.cltv_expiry,
                payment_addr=inv.payment_addr,
                num_msat=inv.value_msat,
            )
        return _decode_foreign(request.pay_req, self.network)


def _decode_foreign(pay_req: str, network: Network) -> ln.PayReq:
    try:
        decoded = decode_invoice(pay_req)
    except InvoiceInvalid as exc:
        raise SimError(f"invalid payment request: {exc.message}") from exc
    if decoded.currency != network.currency:
        raise SimError(f"invoice not for current active network '{network.network_name}'")
    return ln.PayReq(
        destination=decoded.payee_pubkey_hex,
        payment_hash=decoded.payment_hash_hex,
        num_satoshis=decoded.amount_sats,
        timestamp=decoded.timestamp,
        expiry=decoded.expiry_seconds,
        description=decoded.description,
        description_hash=decoded.description_hash_hex,
        cltv_expiry=decoded.min_final_cltv_expiry,
        payment_addr=bytes.fromhex(decoded.payment_secret_hex or ""),
        num_msat=decoded.amount_msat,
    )


def _hex_hash(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise SimError(f"unable to decode hash: {text!r}") from exc


def _page(items: list[_T], index_of: Callable[[_T], int], offset: int, limit: int, reverse: bool) -> list[_T]:
    limit = limit or DEFAULT_PAGE
    if reverse:
        items = [i for i in items if not offset or index_of(i) < offset]
        return items[-limit:]
    return [i for i in items if index_of(i) > offset][:limit]
