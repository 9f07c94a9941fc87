"""Plain values returned by Lightning clients; nothing here imports gRPC or Django."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class InvoiceState(enum.StrEnum):
    """LND's Invoice.InvoiceState, same names."""

    OPEN = "OPEN"
    SETTLED = "SETTLED"
    CANCELED = "CANCELED"
    ACCEPTED = "ACCEPTED"


class PaymentStatus(enum.StrEnum):
    """LND's Payment.PaymentStatus, same names.

    Only SUCCEEDED and FAILED are final. UNKNOWN also covers "the client gave up waiting":
    it never means failed.
    """

    UNKNOWN = "UNKNOWN"
    IN_FLIGHT = "IN_FLIGHT"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    INITIATED = "INITIATED"

    @property
    def is_final(self) -> bool:
        return self in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED)


@dataclass(frozen=True, slots=True)
class HoldInvoice:
    payment_request: str
    payment_hash_hex: str
    add_index: int = 0
    payment_addr_hex: str = ""


@dataclass(frozen=True, slots=True)
class InvoiceUpdate:
    """One state of an invoice, as LookupInvoice or SubscribeSingleInvoice reports it."""

    payment_hash_hex: str
    state: InvoiceState
    amount_sats: int = 0
    amount_paid_sats: int = 0
    # Expiry heights of the accepted HTLCs; the escrow guardian acts on the lowest.
    htlc_expiry_heights: tuple[int, ...] = ()
    payment_request: str = ""
    memo: str = ""
    add_index: int = 0
    settle_index: int = 0
    cltv_expiry: int = 0
    creation_date: int = 0
    expiry_seconds: int = 0

    @property
    def lowest_htlc_expiry_height(self) -> int | None:
        return min(self.htlc_expiry_heights) if self.htlc_expiry_heights else None


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    status: PaymentStatus
    payment_hash_hex: str
    preimage_hex: str = ""
    fee_sats: int = 0
    amount_sats: int = 0
    # LND's FAILURE_REASON_* name when FAILED ("" otherwise).
    failure_reason: str = ""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    alias: str
    pubkey: str
    version: str
    commit_hash: str
    chains: tuple[str, ...]
    networks: tuple[str, ...]
    uris: tuple[str, ...]
    block_height: int
    synced_to_chain: bool = True

    @property
    def network(self) -> str:
        """The node's network: "mainnet", "testnet", "signet" or "regtest"."""
        return self.networks[0] if self.networks else ""


@dataclass(frozen=True, slots=True)
class DecodedInvoice:
    payment_request: str
    payment_hash_hex: str
    amount_msat: int
    network: str
    timestamp: int
    expiry_seconds: int
    min_final_cltv_expiry: int
    description: str = ""
    description_hash_hex: str = ""
    payee_pubkey_hex: str = ""
    payment_secret_hex: str = ""
    # The BOLT11 currency prefix ("bc", "tb", "tbs", "bcrt"); `network` is its meaning.
    currency: str = ""
    route_hints: tuple[Any, ...] = field(default=(), compare=False)

    @property
    def amount_sats(self) -> int:
        return self.amount_msat // 1000

    @property
    def expires_at(self) -> int:
        return self.timestamp + self.expiry_seconds
