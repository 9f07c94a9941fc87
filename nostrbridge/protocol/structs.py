"""Payload structs of mostro-core 0.14 (docs/PROTOCOL.md §Payloads), with their canonical field order.

Field names are the wire names (so `amount` is sats and `fiat_amount` is whole fiat units,
as on the wire). Each struct has `from_value` (strict, raises `MessageParseError`) and
`to_json` (canonical serde_json text).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from nostrbridge.protocol.enums import DisputeInitiator, Kind, Status
from nostrbridge.protocol.wirefields import (
    Field,
    compile_struct_reader,
    compile_struct_writer,
    enum_reader,
    list_reader,
    list_writer,
    read_bool,
    read_f64,
    read_i64,
    read_str,
    read_u32,
    read_u64,
    read_uuid,
    write_bool,
    write_f64,
    write_int,
    write_str,
    write_uuid,
)


class _Struct:
    """Shared parse/serialize plumbing driven by the subclass's `FIELDS`."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[Field, ...]]
    # The field names when serde's `deny_unknown_fields` applies, else None.
    ALLOWED_FIELDS: ClassVar[frozenset[str] | None] = None

    @classmethod
    def from_value(cls, value: Any, where: str | None = None) -> Any:
        try:
            reader = _READERS[cls]
        except KeyError:  # first use: the final (slots) class exists only after @dataclass
            reader = _READERS[cls] = compile_struct_reader(cls, cls.FIELDS, cls.ALLOWED_FIELDS)
        return reader(value, where or cls.__name__)

    def to_json(self) -> str:
        cls = type(self)
        try:
            writer = _WRITERS[cls]
        except KeyError:
            writer = _WRITERS[cls] = compile_struct_writer(cls.FIELDS)
        text: str = writer(self)
        return text


# `read_struct` / `write_struct` unrolled per struct class (see `compile_struct_reader`).
_READERS: dict[type, Any] = {}
_WRITERS: dict[type, Any] = {}


def _nested(cls: type[_Struct]) -> tuple[Any, Any]:
    return cls.from_value, cls.to_json


@dataclass(slots=True, kw_only=True)
class SmallOrder(_Struct):
    """The order as carried in messages; `deny_unknown_fields` on the Rust side."""

    id: uuid.UUID | None = None
    kind: Kind | None = None
    status: Status | None = None
    amount: int
    fiat_code: str
    min_amount: int | None = None
    max_amount: int | None = None
    fiat_amount: int
    payment_method: str
    premium: int
    buyer_trade_pubkey: str | None = None
    seller_trade_pubkey: str | None = None
    buyer_invoice: str | None = None
    created_at: int | None = None
    expires_at: int | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("id", read_uuid, write_uuid, optional=True, omit_none=True),
        Field("kind", enum_reader(Kind), write_str, optional=True),
        Field("status", enum_reader(Status), write_str, optional=True),
        Field("amount", read_i64, write_int),
        Field("fiat_code", read_str, write_str),
        Field("min_amount", read_i64, write_int, optional=True),
        Field("max_amount", read_i64, write_int, optional=True),
        Field("fiat_amount", read_i64, write_int),
        Field("payment_method", read_str, write_str),
        Field("premium", read_i64, write_int),
        Field("buyer_trade_pubkey", read_str, write_str, optional=True, omit_none=True),
        Field("seller_trade_pubkey", read_str, write_str, optional=True, omit_none=True),
        Field("buyer_invoice", read_str, write_str, optional=True, omit_none=True),
        Field("created_at", read_i64, write_int, optional=True),
        Field("expires_at", read_i64, write_int, optional=True),
    )
    ALLOWED_FIELDS: ClassVar[frozenset[str] | None] = frozenset(f.name for f in FIELDS)


SECONDS_PER_DAY = 86_400


def day_start(unix_seconds: int) -> int:
    """The start of the UTC day of a unix time (`t − t % 86400`); before the epoch clamps to 0."""
    unix_seconds = max(0, unix_seconds)
    return unix_seconds - unix_seconds % SECONDS_PER_DAY


def _write_since(value: int) -> str:
    # Always written as its UTC day, whoever set it: a second-precision date would link the
    # trade keys of one user (mostro-core `serialize_since`).
    return write_int(day_start(value))


@dataclass(slots=True, kw_only=True)
class UserInfo(_Struct):
    """Reputation summary; `rating` is the only float on the wire.

    `since` (mostro-core 0.15, docs/PROTOCOL.md §Payloads) is the day the user's record starts,
    omitted when absent; `operating_days` is deprecated but still sent.
    """

    rating: float
    reviews: int
    operating_days: int
    since: int | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("rating", read_f64, write_f64),
        Field("reviews", read_i64, write_int),
        Field("operating_days", read_u64, write_int),
        Field("since", read_u64, _write_since, optional=True, omit_none=True),
    )


@dataclass(slots=True, kw_only=True)
class Peer(_Struct):
    pubkey: str
    reputation: UserInfo | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("pubkey", read_str, write_str),
        Field("reputation", *_nested(UserInfo), optional=True),
    )


@dataclass(slots=True, kw_only=True)
class PaymentFailedInfo(_Struct):
    payment_attempts: int
    payment_retries_interval: int  # seconds (the book says minutes; the daemon uses seconds)

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("payment_attempts", read_u32, write_int),
        Field("payment_retries_interval", read_u32, write_int),
    )


@dataclass(slots=True, kw_only=True)
class RestoredOrder(_Struct):
    order_id: uuid.UUID
    trade_index: int
    status: str
    # mostro-core 0.15 (mostrod #966): the other party's trade key, always written (null until
    # someone took the order); a reply from an older node without it parses as None.
    counterparty_trade_pubkey: str | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("order_id", read_uuid, write_uuid),
        Field("trade_index", read_i64, write_int),
        Field("status", read_str, write_str),
        Field("counterparty_trade_pubkey", read_str, write_str, optional=True),
    )


@dataclass(slots=True, kw_only=True)
class RestoredDispute(_Struct):
    dispute_id: uuid.UUID
    order_id: uuid.UUID
    trade_index: int
    status: str
    initiator: DisputeInitiator | None = None
    solver_pubkey: str | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("dispute_id", read_uuid, write_uuid),
        Field("order_id", read_uuid, write_uuid),
        Field("trade_index", read_i64, write_int),
        Field("status", read_str, write_str),
        Field("initiator", enum_reader(DisputeInitiator), write_str, optional=True),
        Field("solver_pubkey", read_str, write_str, optional=True),
    )


@dataclass(slots=True, kw_only=True)
class RestoreData(_Struct):
    orders: list[RestoredOrder]
    disputes: list[RestoredDispute]

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("orders", list_reader(RestoredOrder.from_value), list_writer(RestoredOrder.to_json)),
        Field("disputes", list_reader(RestoredDispute.from_value), list_writer(RestoredDispute.to_json)),
    )


@dataclass(slots=True, kw_only=True)
class BondResolution(_Struct):
    slash_seller: bool
    slash_buyer: bool

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("slash_seller", read_bool, write_bool),
        Field("slash_buyer", read_bool, write_bool),
    )


@dataclass(slots=True, kw_only=True)
class BondPayoutRequest(_Struct):
    order: SmallOrder
    slashed_at: int

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("order", *_nested(SmallOrder)),
        Field("slashed_at", read_i64, write_int),
    )


@dataclass(slots=True, kw_only=True)
class CashuLockProof(_Struct):
    token: str
    mint_url: str
    buyer_pubkey: str
    seller_pubkey: str
    mostro_pubkey: str
    fee_token: str | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("token", read_str, write_str),
        Field("mint_url", read_str, write_str),
        Field("buyer_pubkey", read_str, write_str),
        Field("seller_pubkey", read_str, write_str),
        Field("mostro_pubkey", read_str, write_str),
        Field("fee_token", read_str, write_str, optional=True, omit_none=True),
    )


@dataclass(slots=True, kw_only=True)
class ReputationExportRequest(_Struct):
    """`export-reputation` payload (docs/PROTOCOL.md §Reputation): the destination identity and an
    optional rebind authorisation, a kind-38388 event serialised as a JSON string."""

    destination: str
    rebind: str | None = None

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("destination", read_str, write_str),
        Field("rebind", read_str, write_str, optional=True),
    )


@dataclass(slots=True, kw_only=True)
class CashuProofSignature(_Struct):
    secret: str
    signature: str

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("secret", read_str, write_str),
        Field("signature", read_str, write_str),
    )


@dataclass(slots=True, kw_only=True)
class SolverDisputeInfo(_Struct):
    """Dispute details sent to the solver in `admin-took-dispute`; every field is always written."""

    id: uuid.UUID
    kind: str
    status: str
    hash: str | None = None
    preimage: str | None = None
    order_previous_status: str
    initiator_pubkey: str
    buyer_pubkey: str | None = None
    seller_pubkey: str | None = None
    initiator_full_privacy: bool
    counterpart_full_privacy: bool
    initiator_info: UserInfo | None = None
    counterpart_info: UserInfo | None = None
    premium: int
    payment_method: str
    amount: int
    fiat_amount: int
    fee: int
    routing_fee: int
    buyer_invoice: str | None = None
    invoice_held_at: int
    taken_at: int
    created_at: int

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field("id", read_uuid, write_uuid),
        Field("kind", read_str, write_str),
        Field("status", read_str, write_str),
        Field("hash", read_str, write_str, optional=True),
        Field("preimage", read_str, write_str, optional=True),
        Field("order_previous_status", read_str, write_str),
        Field("initiator_pubkey", read_str, write_str),
        Field("buyer_pubkey", read_str, write_str, optional=True),
        Field("seller_pubkey", read_str, write_str, optional=True),
        Field("initiator_full_privacy", read_bool, write_bool),
        Field("counterpart_full_privacy", read_bool, write_bool),
        Field("initiator_info", *_nested(UserInfo), optional=True),
        Field("counterpart_info", *_nested(UserInfo), optional=True),
        Field("premium", read_i64, write_int),
        Field("payment_method", read_str, write_str),
        Field("amount", read_i64, write_int),
        Field("fiat_amount", read_i64, write_int),
        Field("fee", read_i64, write_int),
        Field("routing_fee", read_i64, write_int),
        Field("buyer_invoice", read_str, write_str, optional=True),
        Field("invoice_held_at", read_i64, write_int),
        Field("taken_at", read_i64, write_int),
        Field("created_at", read_i64, write_int),
    )
