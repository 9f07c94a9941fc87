"""The logical Mostro message (docs/PROTOCOL.md §Messages): `MessageKind` and `Message`.

`Message.from_value`/`from_json` implement the strict parser, `to_json` the canonical serde_json
form (what signatures cover), and `MessageKind.verify` the matrix (docs/PROTOCOL.md §Messages, §Verify).
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from nostrbridge.protocol.enums import Action, CantDoReason, MessageType
from nostrbridge.protocol.errors import MessageParseError
from nostrbridge.protocol.jsonwire import loads_strict
from nostrbridge.protocol.payloads import (
    BondPayoutRequestPayload,
    BondResolutionPayload,
    CantDoPayload,
    CashuLockProofPayload,
    CashuSignaturesPayload,
    IdsPayload,
    OrderPayload,
    OrdersPayload,
    Payload,
    PaymentFailedPayload,
    PaymentRequestPayload,
    RatingUserPayload,
    ReputationAttestationPayload,
    UserInfoPayload,
    read_payload,
)
from nostrbridge.protocol.wirefields import (
    enum_reader,
    fail,
    read_i64,
    read_u8,
    read_u64,
    read_uuid,
    write_int,
    write_uuid,
)

# --- MessageKind and Message -----------------------------------------------------------

_read_action = enum_reader(Action)
_ACTION_JSON = {action: f'"{action.value}"' for action in Action}


@dataclass(slots=True, kw_only=True)
class MessageKind:
    """The common body: fields in canonical order; `id` is omitted from JSON when None."""

    version: int
    request_id: int | None = None
    trade_index: int | None = None
    id: uuid.UUID | None = None
    action: Action
    payload: Payload | None = None

    @classmethod
    def from_value(cls, value: Any, where: str) -> MessageKind:
        # Unknown fields are ignored here (serde default); only SmallOrder denies them.
        if type(value) is not dict:
            raise fail(where, "expected an object")
        if "version" not in value or "action" not in value:
            raise fail(where, "`version` and `action` are required")
        request_id, trade_index, msg_id = value.get("request_id"), value.get("trade_index"), value.get("id")
        try:
            return cls(
                version=read_u8(value["version"], "version"),
                request_id=None if request_id is None else read_u64(request_id, "request_id"),
                trade_index=None if trade_index is None else read_i64(trade_index, "trade_index"),
                id=None if msg_id is None else read_uuid(msg_id, "id"),
                action=_read_action(value["action"], "action"),
                payload=read_payload(value.get("payload"), "payload"),
            )
        except MessageParseError as exc:
            raise fail(where, str(exc)) from None

    def to_json(self) -> str:
        request_id = "null" if self.request_id is None else write_int(self.request_id)
        trade_index = "null" if self.trade_index is None else write_int(self.trade_index)
        msg_id = "" if self.id is None else f'"id":{write_uuid(self.id)},'
        payload = "null" if self.payload is None else self.payload.to_json()
        return (
            f'{{"version":{write_int(self.version)},"request_id":{request_id},"trade_index":{trade_index},'
            f'{msg_id}"action":{_ACTION_JSON[self.action]},"payload":{payload}}}'
        )

    def verify(self) -> bool:
        """The id/payload consistency matrix of docs/PROTOCOL.md §Verify."""
        check = _VERIFY_RULES.get(self.action)
        return check is not None and check(self.id is not None, self.payload)


def _payload_is(*variants: type[Payload]) -> Any:
    return lambda payload: isinstance(payload, variants)


def _any_but_bond(payload: Payload | None) -> bool:
    return not isinstance(payload, BondResolutionPayload | BondPayoutRequestPayload)


def _nonempty_signatures(payload: Payload | None) -> bool:
    return isinstance(payload, CashuSignaturesPayload) and len(payload.signatures) > 0


_RULES_BY_ACTIONS: tuple[tuple[tuple[Action, ...], bool, Any], ...] = (
    # (actions, id required, payload predicate)
    ((Action.NEW_ORDER,), False, _payload_is(OrderPayload)),
    ((Action.PAY_INVOICE, Action.PAY_BOND_INVOICE, Action.ADD_INVOICE), True, _payload_is(PaymentRequestPayload)),
    ((Action.ADD_BOND_INVOICE,), True, _payload_is(BondPayoutRequestPayload, PaymentRequestPayload)),
    ((Action.ADMIN_SETTLE, Action.ADMIN_CANCEL), True, lambda p: p is None or isinstance(p, BondResolutionPayload)),
    ((Action.ADD_CASHU_ESCROW,), True, _payload_is(CashuLockProofPayload)),
    ((Action.CASHU_PM_SIGNATURE,), True, _nonempty_signatures),
    ((Action.LAST_TRADE_INDEX, Action.RESTORE_SESSION), False, lambda p: p is None),
    ((Action.PAYMENT_FAILED,), True, _payload_is(PaymentFailedPayload)),
    ((Action.RATE_USER,), False, _payload_is(RatingUserPayload)),
    ((Action.CANT_DO,), False, _payload_is(CantDoPayload)),
    ((Action.ORDERS,), False, _payload_is(IdsPayload, OrdersPayload)),
    # After 0.18.5 (docs/PROTOCOL.md §Verify; mostro-core's rows for them are not known).
    # The two requests take any payload here: their handlers answer a wrong one with
    # `invalid_payload` (§Export-reputation, §Import-reputation), which a drop would make unreachable.
    ((Action.EXPORT_REPUTATION, Action.IMPORT_REPUTATION), False, lambda p: True),
    ((Action.REPUTATION_EXPORTED,), False, _payload_is(ReputationAttestationPayload)),
    ((Action.REPUTATION_IMPORTED,), False, lambda p: p is None),
)
# No `id` allowed at all; `user-info` admits its reply's payload too (the intake takes only
# the request, `protocol.inbound.check_message`).
_NO_ID_RULES: tuple[tuple[tuple[Action, ...], Any], ...] = (
    ((Action.USER_INFO,), lambda p: p is None or isinstance(p, UserInfoPayload)),
)
_ANY_PAYLOAD_ACTIONS = (
    frozenset(Action)
    - {a for actions, _, _ in _RULES_BY_ACTIONS for a in actions}
    - {a for actions, _ in _NO_ID_RULES for a in actions}
)
# Actions that only travel in one wrapper (`Message.verify`).
_WRAPPER_OF = {Action.USER_INFO: MessageType.RESTORE}


def _rule(id_required: bool, predicate: Any) -> Any:
    return lambda has_id, payload: (has_id or not id_required) and predicate(payload)


def _no_id_rule(predicate: Any) -> Any:
    return lambda has_id, payload: not has_id and predicate(payload)


_VERIFY_RULES = (
    {
        action: _rule(id_required, predicate)
        for actions, id_required, predicate in _RULES_BY_ACTIONS
        for action in actions
    }
    | {action: _no_id_rule(predicate) for actions, predicate in _NO_ID_RULES for action in actions}
    | {action: _rule(True, _any_but_bond) for action in _ANY_PAYLOAD_ACTIONS}
)

_MESSAGE_TYPES = MessageType._value2member_map_
# '{"<type>":' per message type; a StrEnum member hashes like its value, so both look up.
_TYPE_PREFIX = {member: f'{{"{member.value}":' for member in MessageType}


@dataclass(slots=True)
class Message:
    """`{"<type>": MessageKind}`: exactly one top-level key naming the channel."""

    type: MessageType
    kind: MessageKind

    @classmethod
    def new(
        cls,
        action: Action,
        *,
        type: MessageType = MessageType.ORDER,
        version: int = 2,
        request_id: int | None = None,
        trade_index: int | None = None,
        id: uuid.UUID | None = None,
        payload: Payload | None = None,
    ) -> Message:
        kind = MessageKind(
            version=version, request_id=request_id, trade_index=trade_index, id=id, action=action, payload=payload
        )
        return cls(type, kind)

    @classmethod
    def cant_do(
        cls, reason: CantDoReason, *, request_id: int | None, id: uuid.UUID | None, version: int = 2
    ) -> Message:
        """The `cant-do` reply of docs/PROTOCOL.md §Cant-do: key `cant-do`, `trade_index` always null."""
        return cls.new(
            Action.CANT_DO,
            type=MessageType.CANT_DO,
            version=version,
            request_id=request_id,
            id=id,
            payload=CantDoPayload(reason),
        )

    @classmethod
    def from_value(cls, value: Any) -> Message:
        if type(value) is not dict or len(value) != 1:
            raise MessageParseError("message must be an object with exactly one key")
        ((key, inner),) = value.items()
        message_type = _MESSAGE_TYPES.get(key)
        if message_type is None:
            raise MessageParseError(f"unknown message type {key!r:.40}")
        return cls(message_type, MessageKind.from_value(inner, key))  # type: ignore[arg-type]

    @classmethod
    def from_json(cls, text: str | bytes) -> Message:
        return cls.from_value(loads_strict(text, MessageParseError))

    def to_json(self) -> str:
        """Canonical serde_json form: the bytes the trade signature and identity proof cover."""
        prefix = _TYPE_PREFIX.get(self.type) if type(self.type) in (MessageType, str) else None
        if prefix is None:  # not a message type: MessageType() raises as before
            prefix = f'{{"{MessageType(self.type).value}":'
        return prefix + self.kind.to_json() + "}"

    def verify(self) -> bool:
        """`MessageKind.verify`, plus the wrapper of actions that travel in only one."""
        wrapper = _WRAPPER_OF.get(self.kind.action)
        return (wrapper is None or self.type == wrapper) and self.kind.verify()

    def with_version(self, version: int) -> Message:
        """A copy stamped with the transport's protocol version (1 gift wrap, 2 kind 14)."""
        if self.kind.version == version:
            return self
        return Message(self.type, dataclasses.replace(self.kind, version=version))

    @property
    def action(self) -> Action:
        return self.kind.action

    @property
    def payload(self) -> Payload | None:
        return self.kind.payload

    @property
    def id(self) -> uuid.UUID | None:
        return self.kind.id

    @property
    def request_id(self) -> int | None:
        return self.kind.request_id

    @property
    def trade_index(self) -> int | None:
        return self.kind.trade_index
