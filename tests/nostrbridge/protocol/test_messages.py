"""Message model: canonical round trip, enum strings, strict parser, verify (docs/PROTOCOL.md §Messages, §Verify)."""

from __future__ import annotations

import json
import uuid

import pytest

from nostrbridge.protocol.enums import (
    Action,
    CantDoReason,
    DisputeInitiator,
    DisputeStatus,
    Kind,
    MessageType,
    Status,
)
from nostrbridge.protocol.errors import MessageParseError, ProtocolError
from nostrbridge.protocol.jsonwire import rust_display_float, serde_float
from nostrbridge.protocol.messages import Message, MessageKind
from nostrbridge.protocol.payloads import (
    AmountPayload,
    BondPayoutRequestPayload,
    BondResolutionPayload,
    CantDoPayload,
    CashuLockProofPayload,
    CashuSignaturesPayload,
    DisputePayload,
    IdsPayload,
    NextTradePayload,
    OrderPayload,
    OrdersPayload,
    PaymentFailedPayload,
    PaymentRequestPayload,
    PeerPayload,
    RatingUserPayload,
    ReputationAttestationPayload,
    ReputationExportRequestPayload,
    RestoreDataPayload,
    TextMessagePayload,
    UserInfoPayload,
)
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
    UserInfo,
)
from tests.nostrbridge.protocol.conftest import MOSTRO_VECTORS

CANONICAL = MOSTRO_VECTORS["canonical_messages"]

# docs/PROTOCOL.md §Messages, in declaration order.
ACTIONS = """new-order take-sell take-buy pay-invoice pay-bond-invoice fiat-sent fiat-sent-ok release released
cancel canceled cooperative-cancel-initiated-by-you cooperative-cancel-initiated-by-peer dispute-initiated-by-you
dispute-initiated-by-peer cooperative-cancel-accepted buyer-invoice-accepted bond-invoice-accepted
purchase-completed bond-payout-completed bond-slashed hold-invoice-payment-accepted hold-invoice-payment-settled
hold-invoice-payment-canceled waiting-seller-to-pay waiting-buyer-invoice add-invoice add-bond-invoice
buyer-took-order rate rate-user rate-received cant-do dispute admin-cancel admin-canceled admin-settle
admin-settled admin-add-solver admin-take-dispute admin-took-dispute payment-failed invoice-updated send-dm
trade-pubkey restore-session last-trade-index orders add-cashu-escrow cashu-escrow-locked
cashu-pm-signature""".split()
# After 0.18.5 (docs/PROTOCOL.md §User-info, §Reputation).
NEW_ACTIONS = "user-info export-reputation reputation-exported import-reputation reputation-imported".split()
STATUSES = """active canceled canceled-by-admin settled-by-admin completed-by-admin dispute expired fiat-sent
settled-hold-invoice pending success waiting-buyer-invoice waiting-payment waiting-taker-bond
cooperatively-canceled in-progress waiting-maker-bond""".split()
CANT_DO_REASONS = """invalid_signature invalid_trade_index invalid_amount invalid_invoice invalid_payment_request
invalid_peer invalid_rating invalid_text_message invalid_order_kind invalid_order_status invalid_pubkey
invalid_parameters invalid_payload order_already_canceled cant_create_user is_not_your_order
not_allowed_by_status out_of_range_fiat_amount out_of_range_sats_amount price_too_stale is_not_your_dispute
dispute_taken_by_admin not_authorized dispute_creation_error not_found invalid_dispute_status invalid_action
pending_order_exists invalid_fiat_currency too_many_requests invalid_cashu_token cashu_mint_unavailable
invalid_mint_url cashu_escrow_not_locked cashu_signature_missing""".split()
# docs/PROTOCOL.md §Cant-do, every one of them.
NEW_CANT_DO_REASONS = """maintenance_mode reputation_identity_required not_eligible_for_reputation_export
reputation_bound_to_other_identity invalid_reputation_rebind invalid_reputation_attestation
untrusted_reputation_issuer expired_reputation_attestation reputation_identity_mismatch
reputation_already_imported payer_not_declared invalid_payment_hash""".split()

ORDER_ID = "c7dba9db-f13f-4c3f-a77f-3b82e43c2b1a"


# --- canonical serialization ---------------------------------------------------------


def with_counterparty(text: str, *peers: str | None) -> str:
    """A 0.14 restore reply as mostro-core 0.15 writes it: `counterparty_trade_pubkey` after each
    restored order's status (docs/PROTOCOL.md §Restore-session)."""
    for status, peer in zip(("active", "pending"), peers, strict=True):
        value = "null" if peer is None else f'"{peer}"'
        text = text.replace(f'"status":"{status}"}}', f'"status":"{status}","counterparty_trade_pubkey":{value}}}', 1)
    return text


@pytest.mark.parametrize("label", CANONICAL)
def test_canonical_message_round_trips_byte_for_byte(label: str) -> None:
    expected = CANONICAL[label]
    if label == "F05_restore_resp":  # the only message whose shape grew after 0.14 (a null field)
        expected = with_counterparty(expected, None, None)
    assert Message.from_json(CANONICAL[label]).to_json() == expected


def test_restored_orders_carry_the_counterparty_trade_key() -> None:
    peer = "b7eab0999542093c73c742f091d56403814c497e1e43ce00eba7a4303ec87e99"
    upstream = with_counterparty(CANONICAL["F05_restore_resp"], peer, None)
    message = Message.from_json(upstream)
    assert [o.counterparty_trade_pubkey for o in message.payload.data.orders] == [peer, None]
    assert message.to_json() == upstream


def test_there_are_81_canonical_messages() -> None:
    assert len(CANONICAL) == 81


# Node messages that fail mostro-core's own verify() (docs/PROTOCOL.md §Verify).
FAILS_VERIFY = {
    "A04_add_invoice_to_buyer",
    "A07_taker_reputation_to_seller",
    "B06_add_invoice_to_buyer",
    "B08_taker_reputation_to_buyer",
    "C04_add_invoice_to_buyer",
    "F05_restore_resp",
    "F09_admin_add_solver_resp",
}


@pytest.mark.parametrize("label", CANONICAL)
def test_canonical_message_verify(label: str) -> None:
    assert Message.from_json(CANONICAL[label]).verify() is (label not in FAILS_VERIFY)


# --- enumerations -----------------------------------------------------------------


def test_actions_in_declaration_order() -> None:
    assert [action.value for action in Action] == ACTIONS + NEW_ACTIONS
    assert (len(ACTIONS), len(NEW_ACTIONS)) == (51, 5)


@pytest.mark.parametrize("wire", ACTIONS)
def test_action_wire_string_parses(wire: str) -> None:
    message = Message.from_value({"order": {"version": 2, "id": ORDER_ID, "action": wire, "payload": None}})
    assert message.action is Action(wire)
    assert f'"action":"{wire}"' in message.to_json()


def test_statuses_in_declaration_order() -> None:
    assert [status.value for status in Status] == STATUSES
    assert len(STATUSES) == 17


@pytest.mark.parametrize("wire", STATUSES)
def test_status_wire_string_parses_in_small_order(wire: str) -> None:
    order = SmallOrder.from_value(
        {"status": wire, "amount": 0, "fiat_code": "VES", "fiat_amount": 1, "payment_method": "x", "premium": 0}
    )
    assert order.status is Status(wire)
    assert f'"status":"{wire}"' in order.to_json()


def test_cant_do_reasons_in_declaration_order() -> None:
    assert [reason.value for reason in CantDoReason] == CANT_DO_REASONS + NEW_CANT_DO_REASONS
    assert (len(CANT_DO_REASONS), len(NEW_CANT_DO_REASONS)) == (35, 12)


@pytest.mark.parametrize("wire", CANT_DO_REASONS + NEW_CANT_DO_REASONS)
def test_cant_do_reason_round_trips(wire: str) -> None:
    message = Message.cant_do(CantDoReason(wire), request_id=7, id=uuid.UUID(ORDER_ID))
    expected = (
        f'{{"cant-do":{{"version":2,"request_id":7,"trade_index":null,"id":"{ORDER_ID}","action":"cant-do",'
        f'"payload":{{"cant_do":"{wire}"}}}}}}'
    )
    assert message.to_json() == expected
    assert Message.from_json(expected).payload == CantDoPayload(CantDoReason(wire))


@pytest.mark.parametrize("kebab", ["not-allowed-by-status", "invalid-trade-index", "NOT_FOUND"])
def test_cant_do_reason_other_spellings_fail(kebab: str) -> None:
    with pytest.raises(MessageParseError):
        Message.from_value({"cant-do": {"version": 2, "action": "cant-do", "payload": {"cant_do": kebab}}})


def test_small_enums() -> None:
    assert [k.value for k in Kind] == ["buy", "sell"]
    assert [s.value for s in DisputeStatus] == [
        "initiated",
        "in-progress",
        "seller-refunded",
        "settled",
        "released",
        "cooperatively-canceled",
    ]
    assert [i.value for i in DisputeInitiator] == ["buyer", "seller"]
    assert [t.value for t in MessageType] == ["order", "dispute", "cant-do", "rate", "dm", "restore"]


# --- constructors and stamping ---------------------------------------------------------


def test_cant_do_constructor_matches_vector() -> None:
    message = Message.cant_do(CantDoReason.NOT_ALLOWED_BY_STATUS, request_id=2, id=uuid.UUID(ORDER_ID))
    assert message.to_json() == CANONICAL["F01_cant_do"]


def test_new_constructor_and_version_stamp() -> None:
    message = Message.new(Action.TAKE_SELL, request_id=2, trade_index=1, id=uuid.UUID(ORDER_ID))
    assert message.to_json() == CANONICAL["A03_take_sell_req"]
    stamped = message.with_version(1)
    assert stamped.kind.version == 1
    assert message.kind.version == 2
    assert stamped.to_json() == CANONICAL["A03_take_sell_req"].replace('"version":2', '"version":1')


def test_user_info_float_formatting() -> None:
    peer = Peer(pubkey="", reputation=UserInfo(rating=14 / 3, reviews=3, operating_days=1))
    assert PeerPayload(peer).to_json() == (
        '{"peer":{"pubkey":"","reputation":{"rating":4.666666666666667,"reviews":3,"operating_days":1}}}'
    )


@pytest.mark.parametrize(
    ("value", "serde", "rust"),
    [
        (0.0, "0.0", "0"),
        (-0.0, "-0.0", "-0"),
        (4.5, "4.5", "4.5"),
        (5.0, "5.0", "5"),
        (4.4375, "4.4375", "4.4375"),
        (0.006, "0.006", "0.006"),
        (14 / 3, "4.666666666666667", "4.666666666666667"),
        (1e15, "1000000000000000.0", "1000000000000000"),
        (1e16, "1e16", "10000000000000000"),
        (1.5e20, "1.5e20", "150000000000000000000"),
        (1e-5, "0.00001", "0.00001"),
        (1e-7, "1e-7", "0.0000001"),
        (1.25e-7, "1.25e-7", "0.000000125"),
        (123456.789, "123456.789", "123456.789"),
    ],
)
def test_float_formats(value: float, serde: str, rust: str) -> None:
    assert serde_float(value) == serde
    assert rust_display_float(value) == rust


# --- parser strictness (docs/PROTOCOL.md §Messages) ------------------------------------------------


def _kind(**fields: object) -> dict:
    body = {"version": 2, "request_id": 1, "trade_index": None, "id": ORDER_ID, "action": "take-sell", "payload": None}
    body.update(fields)
    return {"order": {k: v for k, v in body.items() if v is not KeyError}}


def _order(**fields: object) -> dict:
    order = {
        "kind": "sell",
        "status": "pending",
        "amount": 0,
        "fiat_code": "VES",
        "fiat_amount": 100,
        "payment_method": "face to face",
        "premium": 1,
        "created_at": 0,
        "expires_at": None,
    }
    order.update(fields)
    body = {k: v for k, v in order.items() if v is not KeyError}
    return _kind(action="new-order", id=KeyError, payload={"order": body})


REJECTED = {
    "zero-keys": {},
    "two-keys": {"order": _kind()["order"], "dispute": _kind()["order"]},
    "unknown-type": {"trade": _kind()["order"]},
    "not-object": [1],
    "body-not-object": {"order": []},
    "missing-version": _kind(version=KeyError),
    "missing-action": _kind(action=KeyError),
    "version-256": _kind(version=256),
    "version-negative": _kind(version=-1),
    "version-string": _kind(version="2"),
    "version-bool": _kind(version=True),
    "version-float": _kind(version=2.0),
    "request-id-string": _kind(request_id="123456"),
    "request-id-above-u64": _kind(request_id=2**64),
    "request-id-negative": _kind(request_id=-1),
    "trade-index-above-i64": _kind(trade_index=2**63),
    "unknown-action": _kind(action="take"),
    "action-wrong-case": _kind(action="Take-Sell"),
    "malformed-uuid": _kind(id="c7dba9db-f13f-4c3f-a77f-3b82e43c2b1"),
    "uuid-misplaced-hyphen": _kind(id="c7dba9dbf-13f-4c3f-a77f-3b82e43c2b1a"),
    "uuid-non-hex": _kind(id="g7dba9db-f13f-4c3f-a77f-3b82e43c2b1a"),
    "uuid-as-number": _kind(id=12),
    "payload-string": _kind(payload="dispute"),
    "payload-two-keys": _kind(payload={"amount": 1, "rating_user": 2}),
    "payload-empty-object": _kind(payload={}),
    "payload-unknown-variant": _kind(payload={"invoice": "lnbc"}),
    "payment-request-2-elements": _kind(action="add-invoice", payload={"payment_request": [None, "lnbc1"]}),
    "payment-request-4-elements": _kind(action="add-invoice", payload={"payment_request": [None, "lnbc1", None, 1]}),
    "payment-request-amount-float": _kind(action="add-invoice", payload={"payment_request": [None, "lnbc1", 1.5]}),
    "dispute-bare-string": _kind(payload={"dispute": "efc75871-2568-40b9-a6ee-c382d4d6de01"}),
    "next-trade-index-above-u32": _kind(action="release", payload={"next_trade": ["ab", 2**32]}),
    "next-trade-one-element": _kind(action="release", payload={"next_trade": ["ab"]}),
    "rating-user-300": _kind(action="rate-user", payload={"rating_user": 300}),
    "rating-user-bool": _kind(action="rate-user", payload={"rating_user": True}),
    "amount-string": _kind(payload={"amount": "15"}),
    "text-message-number": _kind(payload={"text_message": 5}),
    "ids-not-array": _kind(action="orders", payload={"ids": ORDER_ID}),
    "ids-bad-uuid": _kind(action="orders", payload={"ids": ["x"]}),
    "order-unknown-field": _order(extra=1),
    "order-typo-field": _order(fiat_ammount=1),
    "order-kind-capitalized": _order(kind="Sell"),
    "order-unknown-status": _order(status="open"),
    "order-premium-float": _order(premium=1.5),
    "order-amount-null": _order(amount=None),
    "order-missing-fiat-code": _order(fiat_code=KeyError),
    "order-missing-payment-method": _order(payment_method=KeyError),
    "order-amount-above-i64": _order(amount=2**63),
    "peer-missing-pubkey": _kind(payload={"peer": {"reputation": None}}),
    "user-info-missing-reviews": _kind(
        payload={"peer": {"pubkey": "", "reputation": {"rating": 1, "operating_days": 1}}}
    ),
    "user-info-rating-string": _kind(
        payload={"peer": {"pubkey": "", "reputation": {"rating": "1", "reviews": 0, "operating_days": 0}}}
    ),
    "user-info-days-negative": _kind(
        payload={"peer": {"pubkey": "", "reputation": {"rating": 1, "reviews": 0, "operating_days": -1}}}
    ),
    "payment-failed-negative": _kind(
        action="payment-failed", payload={"payment_failed": {"payment_attempts": -1, "payment_retries_interval": 1}}
    ),
    "bond-resolution-missing": _kind(action="admin-settle", payload={"bond_resolution": {"slash_seller": True}}),
    "bond-resolution-int": _kind(
        action="admin-settle", payload={"bond_resolution": {"slash_seller": 1, "slash_buyer": False}}
    ),
    "restore-dispute-bad-initiator": _kind(
        action="restore-session",
        payload={
            "restore_data": {
                "orders": [],
                "disputes": [
                    {
                        "dispute_id": ORDER_ID,
                        "order_id": ORDER_ID,
                        "trade_index": 1,
                        "status": "x",
                        "initiator": "maker",
                    }
                ],
            }
        },
    ),
    "cashu-signature-missing-field": _kind(
        action="cashu-pm-signature", payload={"cashu_signatures": [{"secret": "s"}]}
    ),
}


@pytest.mark.parametrize("value", REJECTED.values(), ids=REJECTED.keys())
def test_parser_rejects(value: object) -> None:
    with pytest.raises(MessageParseError):
        Message.from_value(value)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"order":{"version":2,"version":2,"action":"cancel"}}',
        '{"order":{"version":2,"action":"cancel","payload":null}} trailing',
        '{"order":{"version":NaN,"action":"cancel"}}',
        '{"order":{"version":2,"action":"cancel","payload":{"text_message":"\\ud800"}}}',
    ],
    ids=["not-json", "duplicate-field", "trailing-data", "nan", "lone-surrogate"],
)
def test_from_json_rejects(text: str) -> None:
    with pytest.raises(MessageParseError):
        Message.from_json(text)


def test_lone_surrogate_is_rejected_by_content_decoding() -> None:
    from nostrbridge.protocol.transport import decode_content

    body = f'"version":2,"action":"cancel","id":"{ORDER_ID}","payload":{{"text_message":"\\ud800"}}'
    text = '[{"order":{' + body + "}},null]"
    with pytest.raises(MessageParseError):
        decode_content(text, 2)


@pytest.mark.parametrize(
    "form",
    [
        ORDER_ID.upper(),
        ORDER_ID.replace("-", ""),
        ORDER_ID.replace("-", "").upper(),
        "{" + ORDER_ID + "}",
        "urn:uuid:" + ORDER_ID,
    ],
)
def test_uuid_forms_accepted_and_serialized_lowercase_hyphenated(form: str) -> None:
    message = Message.from_value(_kind(id=form))
    assert message.id == uuid.UUID(ORDER_ID)
    assert f'"id":"{ORDER_ID}"' in message.to_json()


def test_unknown_message_kind_fields_are_ignored_and_dropped() -> None:
    value = _kind(request_id=2, trade_index=1, pubkey="ab" * 32)
    assert Message.from_value(value).to_json() == CANONICAL["A03_take_sell_req"]


def test_missing_optional_fields_become_null() -> None:
    message = Message.from_value({"order": {"version": 2, "action": "cancel", "id": ORDER_ID}})
    assert message.to_json() == (
        f'{{"order":{{"version":2,"request_id":null,"trade_index":null,"id":"{ORDER_ID}","action":"cancel",'
        '"payload":null}}'
    )


def test_small_order_presence_rules() -> None:
    order = SmallOrder(amount=1, fiat_code="USD", fiat_amount=2, payment_method="x", premium=0)
    assert order.to_json() == (
        '{"kind":null,"status":null,"amount":1,"fiat_code":"USD","min_amount":null,"max_amount":null,'
        '"fiat_amount":2,"payment_method":"x","premium":0,"created_at":null,"expires_at":null}'
    )


def test_peer_without_reputation_and_int_rating() -> None:
    message = Message.from_value(_kind(action="fiat-sent-ok", payload={"peer": {"pubkey": "ab"}}))
    assert '"payload":{"peer":{"pubkey":"ab","reputation":null}}' in message.to_json()
    message = Message.from_value(
        _kind(payload={"peer": {"pubkey": "", "reputation": {"rating": 4, "reviews": 1, "operating_days": 2}}})
    )
    assert '"reputation":{"rating":4.0,"reviews":1,"operating_days":2}' in message.to_json()


def test_cant_do_null_reason_parses() -> None:
    message = Message.from_value({"cant-do": {"version": 2, "action": "cant-do", "payload": {"cant_do": None}}})
    assert message.payload == CantDoPayload(None)
    assert message.verify()


def test_strings_escape_like_serde_json() -> None:
    text = 'a"b\\c\nd\x01e/é\x7f'
    message = Message.new(Action.ADMIN_ADD_SOLVER, id=uuid.UUID(ORDER_ID), payload=TextMessagePayload(text))
    assert '"text_message":"a\\"b\\\\c\\nd\\u0001e/é\x7f"' in message.to_json()
    assert Message.from_json(message.to_json()) == message


def test_parse_error_is_a_protocol_error() -> None:
    assert issubclass(MessageParseError, ProtocolError)
    with pytest.raises(MessageParseError, match="payload"):
        Message.from_value(_kind(payload={"amount": "x"}))


# --- verify() matrix (docs/PROTOCOL.md §Verify) ---------------------------------------------------

SMALL = SmallOrder(amount=0, fiat_code="VES", fiat_amount=1, payment_method="x", premium=0)
PAYLOADS = {
    "none": None,
    "order": OrderPayload(SMALL),
    "payment_request": PaymentRequestPayload(None, "lnbc1", None),
    "text_message": TextMessagePayload("x"),
    "peer": PeerPayload(Peer(pubkey="")),
    "rating_user": RatingUserPayload(5),
    "amount": AmountPayload(1),
    "dispute": DisputePayload(uuid.UUID(ORDER_ID), None),
    "cant_do": CantDoPayload(CantDoReason.NOT_FOUND),
    "next_trade": NextTradePayload("ab", 1),
    "payment_failed": PaymentFailedPayload(PaymentFailedInfo(payment_attempts=1, payment_retries_interval=1)),
    "restore_data": RestoreDataPayload(RestoreData(orders=[], disputes=[])),
    "ids": IdsPayload([uuid.UUID(ORDER_ID)]),
    "orders": OrdersPayload([SMALL]),
    "bond_resolution": BondResolutionPayload(BondResolution(slash_seller=False, slash_buyer=False)),
    "bond_payout_request": BondPayoutRequestPayload(BondPayoutRequest(order=SMALL, slashed_at=1)),
    "cashu_lock_proof": CashuLockProofPayload(
        CashuLockProof(token="t", mint_url="m", buyer_pubkey="b", seller_pubkey="s", mostro_pubkey="n")
    ),
    "cashu_signatures": CashuSignaturesPayload([CashuProofSignature(secret="s", signature="g")]),
    "user_info": UserInfoPayload(UserInfo(rating=0.0, reviews=0, operating_days=0)),
    "reputation_export_request": ReputationExportRequestPayload(ReputationExportRequest(destination="ab")),
    "reputation_attestation": ReputationAttestationPayload("{}"),
}
ANY_BUT_BOND = set(PAYLOADS) - {"bond_resolution", "bond_payout_request"}
RULES: dict[str, tuple[bool, set[str]]] = {
    "new-order": (False, {"order"}),
    "pay-invoice": (True, {"payment_request"}),
    "pay-bond-invoice": (True, {"payment_request"}),
    "add-invoice": (True, {"payment_request"}),
    "add-bond-invoice": (True, {"bond_payout_request", "payment_request"}),
    "admin-settle": (True, {"none", "bond_resolution"}),
    "admin-cancel": (True, {"none", "bond_resolution"}),
    "add-cashu-escrow": (True, {"cashu_lock_proof"}),
    "cashu-pm-signature": (True, {"cashu_signatures"}),
    "last-trade-index": (False, {"none"}),
    "restore-session": (False, {"none"}),
    "payment-failed": (True, {"payment_failed"}),
    "rate-user": (False, {"rating_user"}),
    "cant-do": (False, {"cant_do"}),
    "orders": (False, {"ids", "orders"}),
    # The requests take any payload: their handlers answer a wrong one with invalid_payload.
    "export-reputation": (False, set(PAYLOADS)),
    "import-reputation": (False, set(PAYLOADS)),
    "reputation-exported": (False, {"reputation_attestation"}),
    "reputation-imported": (False, {"none"}),
}


@pytest.mark.parametrize("action", [a for a in ACTIONS + NEW_ACTIONS if a != "user-info"])
def test_verify_matrix(action: str) -> None:
    id_required, allowed = RULES.get(action, (True, ANY_BUT_BOND))
    outcome = {
        (has_id, payload): MessageKind(
            version=2, id=uuid.UUID(ORDER_ID) if has_id else None, action=Action(action), payload=PAYLOADS[payload]
        ).verify()
        for has_id in (True, False)
        for payload in PAYLOADS
    }
    expected = {
        (has_id, payload): (has_id or not id_required) and payload in allowed
        for has_id in (True, False)
        for payload in PAYLOADS
    }
    assert outcome == expected


def test_user_info_verifies_only_without_id_in_the_restore_wrapper() -> None:
    """The request (payload null) and the reply (user_info) verify; an id or another payload does
    not, nor another wrapper than `restore` (docs/PROTOCOL.md §User-info)."""
    outcome = {
        (has_id, payload): MessageKind(
            version=2, id=uuid.UUID(ORDER_ID) if has_id else None, action=Action.USER_INFO, payload=PAYLOADS[payload]
        ).verify()
        for has_id in (True, False)
        for payload in PAYLOADS
    }
    assert {key for key, ok in outcome.items() if ok} == {(False, "none"), (False, "user_info")}
    for wrapper in MessageType:
        message = Message.new(Action.USER_INFO, type=wrapper, request_id=1)
        assert message.verify() is (wrapper == MessageType.RESTORE), wrapper


def test_verify_rejects_empty_cashu_signatures() -> None:
    kind = MessageKind(
        version=2, id=uuid.UUID(ORDER_ID), action=Action.CASHU_PM_SIGNATURE, payload=CashuSignaturesPayload([])
    )
    assert not kind.verify()


@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_every_payload_variant_round_trips(payload: str) -> None:
    message = Message.new(Action.SEND_DM, id=uuid.UUID(ORDER_ID), payload=PAYLOADS[payload])
    assert Message.from_json(message.to_json()) == message
    assert json.loads(message.to_json())["order"]["payload"] == (
        None if payload == "none" else json.loads(PAYLOADS[payload].to_json())
    )


def test_string_ids_serialize_canonically() -> None:
    message = Message.new(Action.CANCEL, id=ORDER_ID.upper().replace("-", ""))  # type: ignore[arg-type]
    assert f'"id":"{ORDER_ID}"' in message.to_json()
    order = SmallOrder(id=ORDER_ID.upper(), amount=1, fiat_code="X", fiat_amount=1, payment_method="x", premium=0)  # type: ignore[arg-type]
    assert order.to_json().startswith(f'{{"id":"{ORDER_ID}",')
