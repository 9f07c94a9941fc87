"""Kind 38388 attestations and rebind authorisations (docs/PROTOCOL.md §Attestation): every rule,
in order, with the reason a destination answers; interop with nostr-sdk."""

from __future__ import annotations

import json

import nostr_sdk as sdk
import pytest

from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.nip01 import Event, sign_event
from nostrbridge.protocol.reputation import (
    ATTESTATION_LIFETIME_SECONDS,
    AttestationError,
    build_attestation,
    build_rebind,
    format_rating,
    parse_attestation,
    parse_rebind,
    rating_hundredths,
    round_half_away,
)

ISSUER = Keys.from_hex("11" * 32)
IDENTITY = Keys.from_hex("22" * 32)
NEW_IDENTITY = Keys.from_hex("33" * 32)
CREATED = 1_790_899_200
SINCE = 1_696_204_800
NOW = CREATED + 60
WEEK = ATTESTATION_LIFETIME_SECONDS
INVALID, EXPIRED = CantDoReason.INVALID_REPUTATION_ATTESTATION, CantDoReason.EXPIRED_REPUTATION_ATTESTATION


def good_tags(**changes: list[str] | None) -> list[list[str]]:
    tags = {
        "p": ["p", IDENTITY.public_key_hex],
        "subject": ["subject", "acct-1"],
        "reviews": ["reviews", "214"],
        "rating": ["rating", "4.87"],
        "since": ["since", str(SINCE)],
        "expiration": ["expiration", str(CREATED + WEEK)],
        "z": ["z", "reputation-attestation"],
    }
    for name, tag in changes.items():
        if tag is None:
            del tags[name]
        else:
            tags[name] = tag
    return list(tags.values())


def signed(tags: list[list[str]], *, kind: int = 38388, created_at: int = CREATED, keys: Keys = ISSUER) -> str:
    return sign_event(keys, kind=kind, content="", tags=tags, created_at=created_at).to_json()


def refused(text: str, *, now: int = NOW, max_lifetime: int = WEEK) -> CantDoReason:
    with pytest.raises(AttestationError) as caught:
        parse_attestation(text, now=now, max_lifetime_seconds=max_lifetime)
    return caught.value.reason


def test_a_built_attestation_has_the_builder_tag_order_and_parses_back() -> None:
    event = build_attestation(
        ISSUER,
        destination=IDENTITY.public_key_hex,
        subject=IDENTITY.public_key_hex,
        reviews=214,
        average=4.866574074074074,
        since=SINCE,
        created_at=CREATED,
        aux_rand=bytes(32),
    )
    assert (event.kind, event.content, event.pubkey) == (38388, "", ISSUER.public_key_hex)
    assert event.tags == [
        ["p", IDENTITY.public_key_hex],
        ["subject", IDENTITY.public_key_hex],
        ["reviews", "214"],
        ["rating", "4.87"],
        ["since", str(SINCE)],
        ["expiration", str(CREATED + WEEK)],
        ["z", "reputation-attestation"],
    ]
    parsed = parse_attestation(event.to_json(), now=NOW, max_lifetime_seconds=WEEK)
    assert (parsed.id, parsed.issuer, parsed.destination, parsed.subject) == (
        event.id,
        ISSUER.public_key_hex,
        IDENTITY.public_key_hex,
        IDENTITY.public_key_hex,
    )
    assert (parsed.reviews, parsed.rating_hundredths, parsed.rating_text, parsed.rating) == (214, 487, "4.87", 4.87)
    assert (parsed.since, parsed.created_at, parsed.expiration) == (SINCE, CREATED, CREATED + WEEK)


def test_nostr_sdk_verifies_ours_and_we_parse_nostr_sdks() -> None:
    ours = build_attestation(
        ISSUER,
        destination=IDENTITY.public_key_hex,
        subject="a",
        reviews=5,
        average=4.0,
        since=SINCE,
        created_at=CREATED,
    )
    assert sdk.Event.from_json(ours.to_json()).verify() is True
    builder = sdk.EventBuilder(sdk.Kind(38388), "").tags([sdk.Tag.parse(tag) for tag in good_tags()])
    theirs = builder.custom_created_at(sdk.Timestamp.from_secs(CREATED)).finalize(
        sdk.Keys(sdk.SecretKey.parse(ISSUER.secret_hex))
    )
    parsed = parse_attestation(theirs.as_json(), now=NOW, max_lifetime_seconds=WEEK)
    assert (parsed.id, parsed.reviews, parsed.rating_text) == (theirs.id().to_hex(), 214, "4.87")


@pytest.mark.parametrize(
    ("average", "text"),
    [
        (4.895, "4.89"),  # 489.49999999999994 in double precision
        (4.125, "4.13"),  # an exact half rounds away from zero, not to even
        (4.005, "4.01"),  # 400.5 exactly: away from zero
        (4.015, "4.01"),  # 401.49999999999994
        (4.866574074074074, "4.87"),
        (5.0, "5.00"),
        (0.5, "1.00"),  # a legacy average damped by the half-weighted first vote is clamped
        (7.2, "5.00"),
        (1.0, "1.00"),
    ],
)
def test_rating_rounds_the_double_half_away_and_clamps(average: float, text: str) -> None:
    assert format_rating(rating_hundredths(average)) == text


def test_rounding_helpers_edge_cases() -> None:
    assert (round_half_away(0.49999999999999994), round_half_away(2.5), round_half_away(-2.5)) == (0.0, 3.0, -3.0)
    assert rating_hundredths(float("nan")) is None
    assert rating_hundredths(float("inf")) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"reviews": ["reviews", "5"], "rating": ["rating", "1.00"]},  # floors
        {"rating": ["rating", "5.00"], "reviews": ["reviews", str(2**32 - 1)]},
        {"since": ["since", "1577836800"]},
        {"extra": ["unknown", "x"]},  # other tags are ignored
        {"subject": ["subject", "A_b-9" * 12 + "abcd"]},  # 64 characters
    ],
)
def test_accepted_edges(changes: dict) -> None:
    parse_attestation(signed(good_tags(**changes)), now=NOW, max_lifetime_seconds=WEEK)


def test_clock_edges_are_inclusive() -> None:
    text = signed(good_tags())
    parse_attestation(text, now=CREATED - 300, max_lifetime_seconds=WEEK)  # created 300 s ahead
    parse_attestation(text, now=CREATED + WEEK + 300, max_lifetime_seconds=WEEK)  # expired 300 s ago
    parse_attestation(text, now=NOW, max_lifetime_seconds=WEEK)  # lifetime exactly the cap


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"z": None}, INVALID),
        ({"z": ["z", "reputation-rebind"]}, INVALID),
        ({"p": None}, INVALID),
        ({"subject": None}, INVALID),
        ({"reviews": None}, INVALID),
        ({"rating": None}, INVALID),
        ({"since": None}, INVALID),
        ({"expiration": None}, INVALID),
        ({"p": ["p", IDENTITY.public_key_hex.upper()]}, INVALID),
        ({"p": ["p", "ff" * 32]}, INVALID),  # not a point on the curve
        ({"p": ["p"]}, INVALID),
        ({"subject": ["subject", ""]}, INVALID),
        ({"subject": ["subject", "a b"]}, INVALID),
        ({"subject": ["subject", "a" * 65]}, INVALID),
        ({"reviews": ["reviews", "4"]}, INVALID),
        ({"reviews": ["reviews", "05"]}, INVALID),
        ({"reviews": ["reviews", "+5"]}, INVALID),
        ({"reviews": ["reviews", " 5"]}, INVALID),
        ({"reviews": ["reviews", str(2**32)]}, INVALID),
        ({"reviews": ["reviews", "٥"]}, INVALID),  # a non-ASCII digit
        ({"rating": ["rating", "4.8"]}, INVALID),
        ({"rating": ["rating", "0.99"]}, INVALID),
        ({"rating": ["rating", "5.01"]}, INVALID),
        ({"rating": ["rating", "4,87"]}, INVALID),
        ({"since": ["since", str(SINCE + 1)]}, INVALID),
        ({"since": ["since", str(1577836800 - 86400)]}, INVALID),
        ({"since": ["since", str(CREATED + 86400)]}, INVALID),
        ({"expiration": ["expiration", str(CREATED)]}, INVALID),
        ({"expiration": ["expiration", str(CREATED + WEEK + 1)]}, INVALID),  # longer than the cap
    ],
)
def test_each_tag_rule_refuses_with_its_reason(changes: dict, reason: CantDoReason) -> None:
    assert refused(signed(good_tags(**changes))) == reason


def test_repeated_tags_are_refused() -> None:
    assert refused(signed([*good_tags(), ["reviews", "214"]])) == INVALID
    assert refused(signed([*good_tags(), ["z", "reputation-attestation"]])) == INVALID


def test_event_level_refusals() -> None:
    good = json.loads(signed(good_tags()))
    assert refused(signed(good_tags(), kind=38389)) == INVALID
    assert refused(json.dumps(good | {"sig": "00" * 64})) == INVALID
    assert refused(json.dumps(good | {"content": "tampered"})) == INVALID  # id no longer matches
    assert refused("not an event") == INVALID
    assert refused(json.dumps(good | {"id": good["id"].upper()})) == INVALID


def test_clock_refusals() -> None:
    text = signed(good_tags())
    assert refused(text, now=CREATED - 301) == INVALID  # dated in the future
    assert refused(text, now=CREATED + WEEK + 301) == EXPIRED
    assert refused(text, max_lifetime=WEEK - 1) == INVALID


def test_rule_order_decides_the_reason() -> None:
    """A bad tag is reported before the clock: an expired attestation with a bad rating is invalid."""
    text = signed(good_tags(rating=["rating", "9.99"]))
    assert refused(text, now=CREATED + 10 * WEEK) == INVALID


def test_builder_refuses_what_a_destination_refuses() -> None:
    base = {
        "destination": IDENTITY.public_key_hex,
        "subject": "s",
        "reviews": 5,
        "average": 4.0,
        "since": SINCE,
        "created_at": CREATED,
    }
    for change in (
        {"subject": ""},
        {"subject": "a b"},
        {"reviews": 4},
        {"reviews": 2**32},
        {"average": float("nan")},
        {"since": SINCE + 1},
        {"since": CREATED + 86400},
        {"lifetime_seconds": 0},
        {"lifetime_seconds": WEEK + 1},
        {"destination": "ab"},
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - each message names its own argument
            build_attestation(ISSUER, **(base | change))


# --- rebind authorisations --------------------------------------------------------------------
def rebind_json(**changes) -> str:
    tags = {
        "p": ["p", NEW_IDENTITY.public_key_hex],
        "issuer": ["issuer", ISSUER.public_key_hex],
        "expiration": ["expiration", str(CREATED + 3600)],
        "z": ["z", "reputation-rebind"],
    }
    for name, tag in changes.items():
        if tag is None:
            del tags[name]
        else:
            tags[name] = tag
    return signed(list(tags.values()), keys=IDENTITY)


def test_a_built_rebind_parses_back() -> None:
    event = build_rebind(
        IDENTITY, issuer=ISSUER.public_key_hex, new_identity=NEW_IDENTITY.public_key_hex, created_at=CREATED
    )
    assert event.tags == [
        ["p", NEW_IDENTITY.public_key_hex],
        ["issuer", ISSUER.public_key_hex],
        ["expiration", str(CREATED + 3600)],
        ["z", "reputation-rebind"],
    ]
    parsed = parse_rebind(event.to_json(), now=CREATED + 10)
    assert (parsed.bound_identity, parsed.new_identity, parsed.issuer) == (
        IDENTITY.public_key_hex,
        NEW_IDENTITY.public_key_hex,
        ISSUER.public_key_hex,
    )
    assert (parsed.created_at, parsed.expiration, parsed.id) == (CREATED, CREATED + 3600, event.id)
    with pytest.raises(ValueError, match="lifetime"):
        build_rebind(
            IDENTITY,
            issuer=ISSUER.public_key_hex,
            new_identity=NEW_IDENTITY.public_key_hex,
            created_at=CREATED,
            lifetime_seconds=3601,
        )


@pytest.mark.parametrize(
    ("changes", "now"),
    [
        ({"expiration": ["expiration", str(CREATED + 3601)]}, CREATED),  # longer than an hour
        ({"expiration": ["expiration", str(CREATED)]}, CREATED),
        ({}, CREATED + 3600 + 301),  # expired
        ({}, CREATED - 301),  # dated in the future
        ({"issuer": None}, CREATED),
        ({"issuer": ["issuer", "ab"]}, CREATED),
        ({"p": ["p", NEW_IDENTITY.public_key_hex.upper()]}, CREATED),
        ({"z": ["z", "reputation-attestation"]}, CREATED),
    ],
)
def test_rebind_refusals(changes: dict, now: int) -> None:
    with pytest.raises(AttestationError):
        parse_rebind(rebind_json(**changes), now=now)


def test_an_attestation_is_never_taken_for_a_rebind_or_the_reverse() -> None:
    with pytest.raises(AttestationError, match="`z`"):
        parse_rebind(signed(good_tags()), now=NOW)
    with pytest.raises(AttestationError, match="`z`"):
        parse_attestation(rebind_json(), now=CREATED, max_lifetime_seconds=WEEK)


def test_events_are_plain_nostr_events() -> None:
    event = Event.from_json(rebind_json())
    assert event.verify() is True
