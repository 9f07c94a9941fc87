"""`user-info`, the reputation actions and their payloads, byte for byte against
docs/PROTOCOL.md §User-info, §Reputation and §Cant-do; `since` in the published events."""

from __future__ import annotations

import json

import pytest

from nostrbridge.protocol.enums import Action, CantDoReason, MessageType
from nostrbridge.protocol.info_event import NodeInfo, info_event_tags
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import (
    CantDoPayload,
    ReputationAttestationPayload,
    ReputationExportRequestPayload,
    UserInfoPayload,
)
from nostrbridge.protocol.published_events import (
    MakerReputation,
    PublisherSettings,
    build_rating_event,
    rating_tag_value,
)
from nostrbridge.protocol.structs import Peer, ReputationExportRequest, UserInfo, day_start

DEST = "b7eab0999542093c73c742f091d56403814c497e1e43ce00eba7a4303ec87e99"
DAY = 86_400

# The examples of docs/PROTOCOL.md §User-info, verbatim.
USER_INFO_REQUEST = (
    '{"restore":{"version":2,"request_id":123456,"trade_index":null,"action":"user-info","payload":null}}'
)
USER_INFO_REPLY = (
    '{"restore":{"version":2,"request_id":123456,"trade_index":null,"action":"user-info","payload":'
    '{"user_info":{"rating":4.8,"reviews":23,"operating_days":142,"since":1700784000}}}}'
)
# A refusal with a later reason (§Cant-do: every one parses), with a concrete order id.
MAINTENANCE_CANT_DO = (
    '{"cant-do":{"version":2,"request_id":12,"trade_index":null,"id":"c7dba9db-f13f-4c3f-a77f-3b82e43c2b1a",'
    '"action":"cant-do","payload":{"cant_do":"maintenance_mode"}}}'
)


@pytest.mark.parametrize("text", [USER_INFO_REQUEST, USER_INFO_REPLY, MAINTENANCE_CANT_DO])
def test_reference_examples_round_trip_byte_for_byte(text: str) -> None:
    message = Message.from_json(text)
    assert message.to_json() == text
    assert message.verify() is True


def test_user_info_messages_built_from_the_structs() -> None:
    assert Message.new(Action.USER_INFO, type=MessageType.RESTORE, request_id=123456).to_json() == USER_INFO_REQUEST
    info = UserInfo(rating=4.8, reviews=23, operating_days=142, since=1700784000)
    reply = Message.new(Action.USER_INFO, type=MessageType.RESTORE, request_id=123456, payload=UserInfoPayload(info))
    assert reply.to_json() == USER_INFO_REPLY
    assert Message.from_json(MAINTENANCE_CANT_DO).payload == CantDoPayload(CantDoReason.MAINTENANCE_MODE)


def test_since_is_written_as_its_utc_day_and_omitted_when_absent() -> None:
    late = UserInfo(rating=4.5, reviews=10, operating_days=30, since=1700784000 + DAY - 1)
    assert late.to_json() == '{"rating":4.5,"reviews":10,"operating_days":30,"since":1700784000}'
    assert UserInfo(rating=0.0, reviews=0, operating_days=0).to_json() == (
        '{"rating":0.0,"reviews":0,"operating_days":0}'
    )
    # A peer that does not send it yet parses with since None; one that does, with its value.
    assert UserInfo.from_value({"rating": 4.5, "reviews": 10, "operating_days": 30}).since is None
    peer = Peer.from_value({"pubkey": "", "reputation": json.loads(late.to_json())})
    assert peer.reputation == UserInfo(rating=4.5, reviews=10, operating_days=30, since=1700784000)
    assert (day_start(-5), day_start(0), day_start(DAY + 1)) == (0, 0, DAY)


def test_export_and_import_messages() -> None:
    """§Reputation payloads in the `order` wrapper with no id; request_id echoed by the replies."""
    request = Message.new(
        Action.EXPORT_REPUTATION,
        request_id=4126,
        payload=ReputationExportRequestPayload(ReputationExportRequest(destination=DEST)),
    )
    assert request.to_json() == (
        '{"order":{"version":2,"request_id":4126,"trade_index":null,"action":"export-reputation","payload":'
        f'{{"reputation_export_request":{{"destination":"{DEST}","rebind":null}}}}}}}}'
    )
    attestation = '{"id":"a","kind":38388,"tags":[["z","reputation-attestation"]]}'
    exported = Message.new(
        Action.REPUTATION_EXPORTED, request_id=4126, payload=ReputationAttestationPayload(attestation)
    )
    assert exported.to_json() == (
        '{"order":{"version":2,"request_id":4126,"trade_index":null,"action":"reputation-exported","payload":'
        '{"reputation_attestation":"{\\"id\\":\\"a\\",\\"kind\\":38388,\\"tags\\":[[\\"z\\",'
        '\\"reputation-attestation\\"]]}"}}}'
    )
    imported = Message.new(Action.REPUTATION_IMPORTED, request_id=4127)
    assert imported.to_json() == (
        '{"order":{"version":2,"request_id":4127,"trade_index":null,"action":"reputation-imported","payload":null}}'
    )
    for message in (request, exported, imported):
        assert Message.from_json(message.to_json()) == message
        assert message.verify() is True
    with_rebind = ReputationExportRequest.from_value({"destination": DEST, "rebind": "{}"})
    assert with_rebind == ReputationExportRequest(destination=DEST, rebind="{}")


# --- §Reputation: `since` next to `days` -------------------------------------------------------------
def test_rating_tag_puts_since_in_sorted_key_order() -> None:
    reputation = MakerReputation(days=120, since=1700784000 + 5, total_rating=4.5, total_reviews=7)
    assert rating_tag_value(reputation) == (
        '["rating",{"days":120,"since":1700784000,"total_rating":4.5,"total_reviews":7}]'
    )
    # No record (full privacy): exactly the 0.18.5 text.
    assert rating_tag_value(MakerReputation()) == '["rating",{"days":0,"total_rating":0.0,"total_reviews":0}]'


def test_rating_event_puts_since_before_z_and_days_last(keys: dict[str, Keys]) -> None:
    settings = PublisherSettings(node_pubkey=keys["mostro-node"].public_key_hex)
    common = {
        "d_pubkey": DEST,
        "total_reviews": 8,
        "total_rating": 4.5625,
        "last_rating": 5,
        "max_rate": 5,
        "min_rate": 3,
        "days": 12,
        "settings": settings,
        "now": 1_700_000_000,
    }
    event = build_rating_event(keys["mostro-node"], since=1699000000 + 7, **common)
    assert [tag[0] for tag in event.tags] == [
        "d",
        "expiration",
        "total_reviews",
        "total_rating",
        "last_rating",
        "max_rate",
        "min_rate",
        "since",
        "z",
        "days",
    ]
    assert event.tag_value("since") == str(1699000000 - 1699000000 % DAY)
    assert "since" not in [tag[0] for tag in build_rating_event(keys["mostro-node"], **common).tags]


def _info(**reputation) -> NodeInfo:
    return NodeInfo(
        mostro_version="0.18.5",
        mostro_commit_hash="",
        max_order_amount_sats=1,
        min_order_amount_sats=1,
        expiration_hours=1,
        expiration_seconds=1,
        max_orders_per_response=1,
        fee=0.0,
        pow_bits=0,
        pow_first_contact_bits=0,
        protocol_version=2,
        hold_invoice_expiration_window_seconds=1,
        hold_invoice_cltv_delta_blocks=1,
        invoice_expiration_window_seconds=1,
        **reputation,
    )


@pytest.mark.parametrize(
    ("reputation", "expected"),
    [
        ({}, []),
        ({"reputation_issuer": DEST}, [["reputation_issuer", DEST]]),
        ({"reputation_import_issuers": ()}, [["reputation_import_issuers"]]),
        (
            {"reputation_issuer": "aa" * 32, "reputation_import_issuers": (DEST, "cc" * 32)},
            [["reputation_issuer", "aa" * 32], ["reputation_import_issuers", DEST, "cc" * 32]],
        ),
    ],
)
def test_info_event_reputation_tags_only_when_enabled(keys, reputation: dict, expected: list) -> None:
    tags = info_event_tags(_info(**reputation), settings=PublisherSettings(node_pubkey=DEST))
    bond_at = [tag[0] for tag in tags].index("bond_enabled")
    assert tags[bond_at + 1] == ["maintenance_mode", "false"]
    assert tags[bond_at + 2 :] == expected
