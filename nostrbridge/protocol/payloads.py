"""Payload variants: the externally tagged, snake_case union of docs/PROTOCOL.md §Payloads.

Each variant has `TAG` (its key on the wire), `read` (strict parse of the value) and
`value_json` (canonical value text). Tuple variants keep serde's exact arity.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.structs import (
    BondPayoutRequest,
    BondResolution,
    CashuLockProof,
    CashuProofSignature,
    PaymentFailedInfo,
    Peer,
    ReputationExportRequest,
    RestoreData,
    SmallOrder,
    SolverDisputeInfo,
    UserInfo,
)
from nostrbridge.protocol.wirefields import (
    enum_reader,
    fail,
    list_reader,
    list_writer,
    read_i64,
    read_str,
    read_u8,
    read_u32,
    read_uuid,
    tuple_items,
    write_int,
    write_str,
    write_uuid,
)


class Payload:
    """Base of the payload variants; `TAG` is the variant's key on the wire."""

    __slots__ = ()
    TAG: ClassVar[str]

    @classmethod
    def read(cls, value: Any, where: str) -> Payload:
        raise NotImplementedError

    def value_json(self) -> str:
        raise NotImplementedError

    def to_json(self) -> str:
        return f'{{"{self.TAG}":{self.value_json()}}}'


def _optional_order(value: Any, where: str) -> SmallOrder | None:
    return None if value is None else SmallOrder.from_value(value, where)


@dataclass(slots=True)
class OrderPayload(Payload):
    order: SmallOrder
    TAG: ClassVar[str] = "order"

    @classmethod
    def read(cls, value: Any, where: str) -> OrderPayload:
        return cls(SmallOrder.from_value(value, where))

    def value_json(self) -> str:
        return self.order.to_json()


@dataclass(slots=True)
class PaymentRequestPayload(Payload):
    """`[order|null, invoice_or_ln_address, amount|null]`: always three elements."""

    order: SmallOrder | None
    invoice: str
    amount: int | None = None
    TAG: ClassVar[str] = "payment_request"

    @classmethod
    def read(cls, value: Any, where: str) -> PaymentRequestPayload:
        order, invoice, amount = tuple_items(value, 3, where)
        return cls(
            _optional_order(order, f"{where}[0]"),
            read_str(invoice, f"{where}[1]"),
            None if amount is None else read_i64(amount, f"{where}[2]"),
        )

    def value_json(self) -> str:
        order = "null" if self.order is None else self.order.to_json()
        amount = "null" if self.amount is None else write_int(self.amount)
        return f"[{order},{write_str(self.invoice)},{amount}]"


@dataclass(slots=True)
class TextMessagePayload(Payload):
    text: str
    TAG: ClassVar[str] = "text_message"

    @classmethod
    def read(cls, value: Any, where: str) -> TextMessagePayload:
        return cls(read_str(value, where))

    def value_json(self) -> str:
        return write_str(self.text)


@dataclass(slots=True)
class PeerPayload(Payload):
    peer: Peer
    TAG: ClassVar[str] = "peer"

    @classmethod
    def read(cls, value: Any, where: str) -> PeerPayload:
        return cls(Peer.from_value(value, where))

    def value_json(self) -> str:
        return self.peer.to_json()


@dataclass(slots=True)
class RatingUserPayload(Payload):
    rating: int  # u8 on the wire; 1..5 is enforced by the handler, not the parser
    TAG: ClassVar[str] = "rating_user"

    @classmethod
    def read(cls, value: Any, where: str) -> RatingUserPayload:
        return cls(read_u8(value, where))

    def value_json(self) -> str:
        return write_int(self.rating)


@dataclass(slots=True)
class AmountPayload(Payload):
    amount: int  # fiat amount chosen when taking a range order
    TAG: ClassVar[str] = "amount"

    @classmethod
    def read(cls, value: Any, where: str) -> AmountPayload:
        return cls(read_i64(value, where))

    def value_json(self) -> str:
        return write_int(self.amount)


@dataclass(slots=True)
class DisputePayload(Payload):
    """`[dispute_id, SolverDisputeInfo|null]`: always two elements."""

    dispute_id: uuid.UUID
    info: SolverDisputeInfo | None = None
    TAG: ClassVar[str] = "dispute"

    @classmethod
    def read(cls, value: Any, where: str) -> DisputePayload:
        dispute_id, info = tuple_items(value, 2, where)
        return cls(
            read_uuid(dispute_id, f"{where}[0]"),
            None if info is None else SolverDisputeInfo.from_value(info, f"{where}[1]"),
        )

    def value_json(self) -> str:
        info = "null" if self.info is None else self.info.to_json()
        return f"[{write_uuid(self.dispute_id)},{info}]"


_read_cant_do_reason = enum_reader(CantDoReason)


@dataclass(slots=True)
class CantDoPayload(Payload):
    reason: CantDoReason | None
    TAG: ClassVar[str] = "cant_do"

    @classmethod
    def read(cls, value: Any, where: str) -> CantDoPayload:
        return cls(None if value is None else _read_cant_do_reason(value, where))

    def value_json(self) -> str:
        return "null" if self.reason is None else write_str(self.reason)


@dataclass(slots=True)
class NextTradePayload(Payload):
    """`[trade_pubkey, trade_index]` for the child order of a range order."""

    trade_pubkey: str
    trade_index: int
    TAG: ClassVar[str] = "next_trade"

    @classmethod
    def read(cls, value: Any, where: str) -> NextTradePayload:
        pubkey, index = tuple_items(value, 2, where)
        return cls(read_str(pubkey, f"{where}[0]"), read_u32(index, f"{where}[1]"))

    def value_json(self) -> str:
        return f"[{write_str(self.trade_pubkey)},{write_int(self.trade_index)}]"


@dataclass(slots=True)
class PaymentFailedPayload(Payload):
    info: PaymentFailedInfo
    TAG: ClassVar[str] = "payment_failed"

    @classmethod
    def read(cls, value: Any, where: str) -> PaymentFailedPayload:
        return cls(PaymentFailedInfo.from_value(value, where))

    def value_json(self) -> str:
        return self.info.to_json()


@dataclass(slots=True)
class RestoreDataPayload(Payload):
    data: RestoreData
    TAG: ClassVar[str] = "restore_data"

    @classmethod
    def read(cls, value: Any, where: str) -> RestoreDataPayload:
        return cls(RestoreData.from_value(value, where))

    def value_json(self) -> str:
        return self.data.to_json()


@dataclass(slots=True)
class BondResolutionPayload(Payload):
    resolution: BondResolution
    TAG: ClassVar[str] = "bond_resolution"

    @classmethod
    def read(cls, value: Any, where: str) -> BondResolutionPayload:
        return cls(BondResolution.from_value(value, where))

    def value_json(self) -> str:
        return self.resolution.to_json()


@dataclass(slots=True)
class BondPayoutRequestPayload(Payload):
    request: BondPayoutRequest
    TAG: ClassVar[str] = "bond_payout_request"

    @classmethod
    def read(cls, value: Any, where: str) -> BondPayoutRequestPayload:
        return cls(BondPayoutRequest.from_value(value, where))

    def value_json(self) -> str:
        return self.request.to_json()


@dataclass(slots=True)
class CashuLockProofPayload(Payload):
    proof: CashuLockProof
    TAG: ClassVar[str] = "cashu_lock_proof"

    @classmethod
    def read(cls, value: Any, where: str) -> CashuLockProofPayload:
        return cls(CashuLockProof.from_value(value, where))

    def value_json(self) -> str:
        return self.proof.to_json()


@dataclass(slots=True)
class UserInfoPayload(Payload):
    """The `user-info` reply (docs/PROTOCOL.md §User-info)."""

    info: UserInfo
    TAG: ClassVar[str] = "user_info"

    @classmethod
    def read(cls, value: Any, where: str) -> UserInfoPayload:
        return cls(UserInfo.from_value(value, where))

    def value_json(self) -> str:
        return self.info.to_json()


@dataclass(slots=True)
class ReputationExportRequestPayload(Payload):
    request: ReputationExportRequest
    TAG: ClassVar[str] = "reputation_export_request"

    @classmethod
    def read(cls, value: Any, where: str) -> ReputationExportRequestPayload:
        return cls(ReputationExportRequest.from_value(value, where))

    def value_json(self) -> str:
        return self.request.to_json()


@dataclass(slots=True)
class ReputationAttestationPayload(Payload):
    """A kind-38388 attestation as the JSON string it travels in, passed on unchanged."""

    attestation_json: str
    TAG: ClassVar[str] = "reputation_attestation"

    @classmethod
    def read(cls, value: Any, where: str) -> ReputationAttestationPayload:
        return cls(read_str(value, where))

    def value_json(self) -> str:
        return write_str(self.attestation_json)


_read_ids = list_reader(read_uuid)
_write_ids = list_writer(write_uuid)
_read_orders = list_reader(SmallOrder.from_value)
_write_orders = list_writer(SmallOrder.to_json)
_read_signatures = list_reader(CashuProofSignature.from_value)
_write_signatures = list_writer(CashuProofSignature.to_json)


@dataclass(slots=True)
class IdsPayload(Payload):
    ids: list[uuid.UUID]
    TAG: ClassVar[str] = "ids"

    @classmethod
    def read(cls, value: Any, where: str) -> IdsPayload:
        return cls(_read_ids(value, where))

    def value_json(self) -> str:
        return _write_ids(self.ids)


@dataclass(slots=True)
class OrdersPayload(Payload):
    orders: list[SmallOrder]
    TAG: ClassVar[str] = "orders"

    @classmethod
    def read(cls, value: Any, where: str) -> OrdersPayload:
        return cls(_read_orders(value, where))

    def value_json(self) -> str:
        return _write_orders(self.orders)


@dataclass(slots=True)
class CashuSignaturesPayload(Payload):
    signatures: list[CashuProofSignature]
    TAG: ClassVar[str] = "cashu_signatures"

    @classmethod
    def read(cls, value: Any, where: str) -> CashuSignaturesPayload:
        return cls(_read_signatures(value, where))

    def value_json(self) -> str:
        return _write_signatures(self.signatures)


PAYLOAD_VARIANTS: dict[str, type[Payload]] = {
    variant.TAG: variant
    for variant in (
        OrderPayload,
        PaymentRequestPayload,
        TextMessagePayload,
        PeerPayload,
        RatingUserPayload,
        AmountPayload,
        DisputePayload,
        CantDoPayload,
        NextTradePayload,
        PaymentFailedPayload,
        RestoreDataPayload,
        IdsPayload,
        OrdersPayload,
        BondResolutionPayload,
        BondPayoutRequestPayload,
        CashuLockProofPayload,
        CashuSignaturesPayload,
        UserInfoPayload,
        ReputationExportRequestPayload,
        ReputationAttestationPayload,
    )
}


def read_payload(value: Any, where: str) -> Payload | None:
    if value is None:
        return None
    if type(value) is not dict or len(value) != 1:
        raise fail(where, "payload must be null or an object with exactly one key")
    ((tag, inner),) = value.items()
    variant = PAYLOAD_VARIANTS.get(tag)
    if variant is None:
        raise fail(where, f"unknown payload variant {tag!r:.40}")
    return variant.read(inner, f"{where}.{tag}")
