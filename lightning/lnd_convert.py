"""Protobuf messages from LND <-> the plain values of `lightning.types`."""

from __future__ import annotations

from lightning.grpc import lightning_pb2 as ln
from lightning.types import DecodedInvoice, InvoiceState, InvoiceUpdate, NodeInfo, PaymentOutcome, PaymentStatus

_INVOICE_STATES = {v: InvoiceState(k) for k, v in ln.Invoice.InvoiceState.items()}
_PAYMENT_STATUSES = {v: PaymentStatus(k) for k, v in ln.Payment.PaymentStatus.items()}
_HTLC_ACCEPTED = ln.InvoiceHTLCState.Value("ACCEPTED")


def invoice_update(invoice: ln.Invoice) -> InvoiceUpdate:
    return InvoiceUpdate(
        payment_hash_hex=invoice.r_hash.hex(),
        state=_INVOICE_STATES.get(invoice.state, InvoiceState.OPEN),
        amount_sats=invoice.value,
        amount_paid_sats=invoice.amt_paid_sat,
        htlc_expiry_heights=tuple(h.expiry_height for h in invoice.htlcs if h.state == _HTLC_ACCEPTED),
        payment_request=invoice.payment_request,
        memo=invoice.memo,
        add_index=invoice.add_index,
        settle_index=invoice.settle_index,
        cltv_expiry=invoice.cltv_expiry,
        creation_date=invoice.creation_date,
        expiry_seconds=invoice.expiry,
    )


def payment_outcome(payment: ln.Payment, *, payment_hash_hex: str = "") -> PaymentOutcome:
    status = _PAYMENT_STATUSES.get(payment.status, PaymentStatus.UNKNOWN)
    reason = ""
    if status is PaymentStatus.FAILED:
        reason = ln.PaymentFailureReason.Name(payment.failure_reason)
    return PaymentOutcome(
        status=status,
        payment_hash_hex=payment.payment_hash or payment_hash_hex,
        preimage_hex=payment.payment_preimage if status is PaymentStatus.SUCCEEDED else "",
        fee_sats=payment.fee_sat,
        amount_sats=payment.value_sat,
        failure_reason=reason,
    )


def node_info(info: ln.GetInfoResponse) -> NodeInfo:
    return NodeInfo(
        alias=info.alias,
        pubkey=info.identity_pubkey,
        version=info.version,
        commit_hash=info.commit_hash,
        chains=tuple(c.chain for c in info.chains),
        networks=tuple(c.network for c in info.chains),
        uris=tuple(info.uris),
        block_height=info.block_height,
        synced_to_chain=info.synced_to_chain,
    )


def decoded_invoice(req: ln.PayReq, *, payment_request: str, network: str) -> DecodedInvoice:
    return DecodedInvoice(
        payment_request=payment_request,
        payment_hash_hex=req.payment_hash,
        amount_msat=req.num_msat or req.num_satoshis * 1000,
        network=network,
        timestamp=req.timestamp,
        expiry_seconds=req.expiry,
        min_final_cltv_expiry=req.cltv_expiry,
        description=req.description,
        description_hash_hex=req.description_hash,
        payee_pubkey_hex=req.destination,
        payment_secret_hex=req.payment_addr.hex(),
    )
