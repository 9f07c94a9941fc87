"""Shared helpers for the Lightning tests."""

from __future__ import annotations

import concurrent.futures
import os
import time

from lightning.types import HoldInvoice, InvoiceState, InvoiceUpdate

_pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="test-payer")


def pay_in_background(client, payment_request: str, *, max_fee_sats: int = 100, timeout_seconds: int = 30):
    """Start a payment that blocks (a hold invoice); returns a Future of its PaymentOutcome."""
    return _pool.submit(
        client.send_payment, payment_request=payment_request, max_fee_sats=max_fee_sats, timeout_seconds=timeout_seconds
    )


def wait_for_state(client, payment_hash_hex: str, state: InvoiceState, timeout: float = 5.0) -> InvoiceUpdate:
    deadline = time.monotonic() + timeout
    while True:
        update = client.lookup_invoice(payment_hash=bytes.fromhex(payment_hash_hex))
        if update.state is state or time.monotonic() > deadline:
            return update
        time.sleep(0.01)


def new_hold_invoice(client, amount_sats: int = 10_000, **kwargs) -> tuple[bytes, HoldInvoice]:
    preimage = os.urandom(32)
    kwargs.setdefault("memo", "Escrow amount Order #test")
    kwargs.setdefault("cltv_expiry", 144)
    return preimage, client.add_hold_invoice(amount_sats=amount_sats, preimage=preimage, **kwargs)
