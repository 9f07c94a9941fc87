"""The Lightning client interface the services, jobs and the watcher program against.

Method names mirror LND's RPC verbs in snake_case. Every method is keyword-only, so a
call site reads like the RPC it makes. Implementations: `lightning.lnd.LndClient` (LND over
gRPC) and `lightning.fake.FakeLightningClient` (in memory, for unit tests).

Error contract (see `lightning.errors`): `LightningUnavailable` means nothing is known to
have happened; `LightningRejected` means the node refused. `send_payment` never reports a
payment as FAILED unless the node said so: a client-side timeout gives IN_FLIGHT or UNKNOWN.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from lightning.types import DecodedInvoice, HoldInvoice, InvoiceUpdate, NodeInfo, PaymentOutcome


@runtime_checkable
class LightningClient(Protocol):
    def get_info(self) -> NodeInfo: ...

    def add_hold_invoice(
        self,
        *,
        amount_sats: int,
        preimage: bytes,
        memo: str,
        cltv_expiry: int,
        expiry_seconds: int | None = None,
    ) -> HoldInvoice:
        """Create a hold invoice locked to sha256(preimage). The preimage never leaves
        the daemon until `settle_invoice`. `expiry_seconds=None` keeps LND's default."""
        ...

    def settle_invoice(self, *, preimage: bytes) -> None: ...

    def cancel_invoice(self, *, payment_hash: bytes) -> None:
        """Idempotent for an already canceled invoice (as LND); raises
        `AlreadySettledOrCanceled` for a settled one."""
        ...

    def lookup_invoice(self, *, payment_hash: bytes) -> InvoiceUpdate: ...

    def subscribe_single_invoice(self, *, payment_hash: bytes) -> AsyncIterator[InvoiceUpdate]:
        """Async stream: the current state first, then every change until a final state."""
        ...

    def send_payment(
        self,
        *,
        payment_request: str,
        max_fee_sats: int,
        timeout_seconds: int,
        amount_sats: int | None = None,
    ) -> PaymentOutcome:
        """Pay and wait for a final outcome, up to a client deadline a little longer than
        `timeout_seconds`. Returns SUCCEEDED/FAILED when the node says so, else IN_FLIGHT
        or UNKNOWN. `amount_sats` only for zero-amount invoices."""
        ...

    def track_payment(self, *, payment_hash: bytes, wait_seconds: float = 0.0) -> PaymentOutcome:
        """The node's view of a payment; UNKNOWN when the node has no record of it. With
        `wait_seconds` > 0, follow the payment until it is final or that time has passed."""
        ...

    def add_invoice(
        self, *, amount_sats: int, memo: str = "", expiry_seconds: int | None = None, cltv_expiry: int = 0
    ) -> HoldInvoice:
        """A regular invoice (the node keeps the preimage); `amount_sats=0` for amountless."""
        ...

    def decode_pay_req(self, *, payment_request: str) -> DecodedInvoice: ...
