"""Outgoing payments between simulated nodes (the `Network` mixin behind SendPaymentV2).

A payment is checked the way LND's router checks a SendPaymentRequest (refusals raise
`SimError` with LND's message), then recorded IN_FLIGHT, then delivered: the payer's
balance is locked, the payee's invoice gets an HTLC, and the payment ends SUCCEEDED when
the invoice settles or FAILED (FAILURE_REASON_*) when it is canceled or cannot be paid.
"""

from __future__ import annotations

import logging
import time
from typing import cast

from lightning.bolt11 import InvoiceInvalid, decode_invoice
from lightning.grpc import lightning_pb2 as ln
from lightning.grpc import router_pb2
from lightning.simnet.model import (
    INVOICE_OPEN,
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    SimError,
    SimHtlc,
    SimInvoice,
    SimNode,
    SimPayment,
)

logger = logging.getLogger(__name__)
BLOCK_PADDING = 3  # routing.BlockPadding: extra blocks LND adds to the final hop's CLTV


class _Terms:
    """What the payer needs from an invoice, from the registry or a decode."""

    __slots__ = ("amount_msat", "expires_at", "payee", "invoice", "payment_hash", "currency")

    def __init__(
        self,
        amount_msat: int,
        expires_at: int,
        payee: SimNode | None,
        invoice: SimInvoice | None,
        payment_hash: bytes,
        currency: str,
    ) -> None:
        self.amount_msat, self.expires_at, self.payee = amount_msat, expires_at, payee
        self.invoice, self.payment_hash, self.currency = invoice, payment_hash, currency


class PaymentEngine:
    # The network state this mixin works on, set by `Network` (lightning/simnet/network.py).
    currency: str
    network_name: str
    fee_base_msat: int
    fee_ppm: int
    height: int
    by_pubkey: dict[str, SimNode]
    by_request: dict[str, tuple[SimNode, SimInvoice]]
    routing_fees_msat: int
    changes: int

    def accept_htlc(self, node: SimNode, invoice: SimInvoice, htlc: SimHtlc) -> None:
        raise NotImplementedError  # Network's

    def terms_of(self, payment_request: str) -> _Terms:
        found = self.by_request.get(payment_request) or self.by_request.get(payment_request.lower())
        if found is not None:
            payee, inv = found
            return _Terms(inv.value_msat, inv.creation_date + inv.expiry, payee, inv, inv.r_hash, self.currency)
        try:
            decoded = decode_invoice(payment_request)
        except InvoiceInvalid as exc:
            raise SimError(f"invalid payment request: {exc.message}") from exc
        return _Terms(
            decoded.amount_msat,
            decoded.expires_at,
            self.by_pubkey.get(decoded.payee_pubkey_hex),
            None,
            bytes.fromhex(decoded.payment_hash_hex),
            decoded.currency,
        )

    def start_payment(self, payer: SimNode, request: router_pb2.SendPaymentRequest) -> tuple[SimPayment, _Terms]:
        """Validate and record a payment (IN_FLIGHT); `deliver` moves it on."""
        if not request.payment_request:
            raise SimError("payment_request is required (simnet does not route by destination)")
        terms = self.terms_of(request.payment_request)
        if terms.currency != self.currency:
            raise SimError(f"invoice not for current active network '{self.network_name}'")
        if terms.expires_at < time.time():
            raise SimError(f"invoice expired. Valid until {time.ctime(terms.expires_at)}")
        amount_msat = _amount_msat(terms.amount_msat, request)
        _refuse_duplicate(payer.payments.get(terms.payment_hash))
        payer.payment_index += 1
        payment = SimPayment(
            payment_hash=terms.payment_hash,
            value_msat=amount_msat,
            fee_msat=0,
            payer=payer,
            payment_request=request.payment_request,
            payment_index=payer.payment_index,
        )
        payer.payments[terms.payment_hash] = payment
        self.changes += 1
        return payment, terms

    def deliver(self, payer: SimNode, payment: SimPayment, terms: _Terms, fee_limit_msat: int) -> None:
        self.changes += 1
        if payer.stick_next_payment:
            payer.stick_next_payment = False
            payment.stuck = True
            payment.deliver = (terms, fee_limit_msat)
            return
        if payer.fail_next_payment:
            reason, payer.fail_next_payment = payer.fail_next_payment, ""
            self.payment_failed(payment, reason)
            return
        reason = self._route_failure(payer, payment, terms, fee_limit_msat)
        if reason:
            self.payment_failed(payment, reason)
            return
        payee, invoice = terms.payee, terms.invoice
        # _route_failure refused a payment without a reachable payee or an open invoice.
        assert payee is not None
        assert invoice is not None
        payment.fee_msat = self.route_fee_msat(payment.value_msat)
        payment.locked_msat = payment.value_msat + payment.fee_msat
        payer.balance_msat -= payment.locked_msat
        htlc = SimHtlc(
            amt_msat=payment.value_msat,
            accept_height=self.height,
            expiry_height=self.height + invoice.cltv_expiry + BLOCK_PADDING,
            payer=payment,
        )
        self.accept_htlc(payee, invoice, htlc)

    def route_fee_msat(self, amount_msat: int) -> int:
        return self.fee_base_msat + amount_msat * self.fee_ppm // 1_000_000

    def _route_failure(self, payer: SimNode, payment: SimPayment, terms: _Terms, fee_limit_msat: int) -> str:
        payee = terms.payee
        if payee is None or payee is payer or not payee.online:
            return "FAILURE_REASON_NO_ROUTE"
        if self.route_fee_msat(payment.value_msat) > fee_limit_msat:
            return "FAILURE_REASON_NO_ROUTE"  # LND finds no route within the fee limit
        if payer.balance_msat < payment.value_msat + self.route_fee_msat(payment.value_msat):
            return "FAILURE_REASON_INSUFFICIENT_BALANCE"
        invoice = terms.invoice
        if invoice is None or invoice.state != INVOICE_OPEN or payment.value_msat < invoice.value_msat:
            return "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS"
        return ""

    def payment_succeeded(self, payment: SimPayment, preimage: bytes) -> None:
        payment.status, payment.preimage = PAYMENT_SUCCEEDED, preimage
        if payment.locked_msat:  # the fee went to the route's nodes, which simnet does not model
            self.routing_fees_msat += payment.fee_msat
        payment.locked_msat = 0
        self.changes += 1
        _payer(payment).notify_payment(payment)

    def payment_failed(self, payment: SimPayment, reason: str) -> None:
        # Funds are locked only once an HTLC was placed; a failure gives them back.
        _payer(payment).balance_msat += payment.locked_msat
        payment.locked_msat = 0
        self.changes += 1
        payment.status = PAYMENT_FAILED
        payment.failure_reason = cast(ln.PaymentFailureReason, ln.PaymentFailureReason.Value(reason))
        _payer(payment).notify_payment(payment)

    def resolve_stuck(self, payer: SimNode, payment_hash: bytes, *, outcome: str, reason: str = "") -> SimPayment:
        """Control endpoint: continue a stuck payment ("deliver") or fail it."""
        payment = payer.payments.get(payment_hash)
        if payment is None or not payment.stuck:
            raise SimError("no stuck payment with that hash", code="NOT_FOUND")
        payment.stuck = False
        if outcome == "deliver" and payment.deliver is not None:
            terms, fee_limit_msat = payment.deliver
            self.deliver(payer, payment, cast(_Terms, terms), fee_limit_msat)
        else:
            self.payment_failed(payment, reason or "FAILURE_REASON_TIMEOUT")
        return payment


def _payer(payment: SimPayment) -> SimNode:
    assert payment.payer is not None  # every payment made here has its payer
    return payment.payer


def _amount_msat(invoice_msat: int, request: router_pb2.SendPaymentRequest) -> int:
    if request.amt and request.amt_msat:
        raise SimError("amt and amt_msat are mutually exclusive")
    given = request.amt * 1000 or request.amt_msat
    if invoice_msat == 0 and not given:
        raise SimError("amount must be specified when paying a zero amount invoice")
    if invoice_msat and given:
        raise SimError("amount must not be specified when paying a non-zero amount invoice")
    return invoice_msat or given


def _refuse_duplicate(previous: SimPayment | None) -> None:
    if previous is None or previous.status == PAYMENT_FAILED:
        return
    if previous.status == PAYMENT_SUCCEEDED:
        raise SimError("invoice is already paid", code="ALREADY_EXISTS")
    raise SimError("payment is in transition", code="ALREADY_EXISTS")
