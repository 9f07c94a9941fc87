"""Ninja schemas of the REST admin API (`<Entity>Out`, `<Entity>In`)."""

from datetime import datetime
from typing import TYPE_CHECKING, Literal, TypeAlias
from uuid import UUID

from ninja import Schema

from disputes.models import DisputeStatus

if TYPE_CHECKING:
    DisputeStatusLiteral: TypeAlias = str
else:
    DisputeStatusLiteral = Literal[tuple(DisputeStatus.values)]  # the model's choices, as an OpenAPI enum
PUBKEY_PATTERN = r"^[0-9a-f]{64}$"
FIAT_CODE_PATTERN = r"^[A-Za-z]{3,16}$"


class ErrorOut(Schema):
    code: str
    message: str


class ValidationErrorOut(ErrorOut):
    errors: list[dict] = []  # field-level details when the schema validation failed


class DisputeOut(Schema):
    id: UUID
    order_id: UUID
    status: str
    initiator: str
    initiator_pubkey: str
    order_previous_status: str
    solver_pubkey: str | None
    order_status: str
    fiat_code: str
    fiat_amount: int
    amount_sats: int
    created_at: datetime
    taken_at: datetime | None
    resolved_at: datetime | None


class DisputeListOut(Schema):
    count: int
    items: list[DisputeOut]


class ResolveIn(Schema):
    """The anti-abuse bond slash (docs/PROTOCOL.md §Bonds); omitted or both false: nobody is slashed."""

    slash_buyer: bool = False
    slash_seller: bool = False


class ResolutionOut(Schema):
    result: str  # settled | seller-refunded
    dispute: DisputeOut


class SolverIn(Schema):
    pubkey: str  # npub1… or 64 hex characters
    permission: Literal["read", "read-write"] = "read-write"


class SolverOut(Schema):
    pubkey: str
    npub: str
    permission: str


class SolverListOut(Schema):
    count: int
    items: list[SolverOut]


class RemovedOut(Schema):
    pubkey: str
    removed: bool
