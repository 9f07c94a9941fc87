"""`import-reputation` through the pipeline (docs/PROTOCOL.md §Import-reputation): the merge, the record,
the republished rating event, every refusal in mostrod's order proving nothing changed, and the
unique constraints under a concurrent import."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from mostro_site.models import ReputationImport
from nostrbridge.models import OutboundMessage
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.nip01 import Event, sign_event
from nostrbridge.protocol.payloads import ReputationAttestationPayload, ReputationExportRequestPayload
from nostrbridge.protocol.reputation import build_attestation
from nostrbridge.protocol.structs import ReputationExportRequest
from orders.models import Trader
from orders.services import reputation_import as import_module
from tests.orders.reputation_support import (
    ISSUER,
    OTHER_ISSUER,
    outbox,
    rated,
    reputation,  # noqa: F401 - fixture
    state,
    trust,
)
from tests.orders.services.support import cant_do_json
from tests.trade.harness import TradeClient, deliver

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node", "reputation")]

SINCE = 1_696_204_800
DAY = 86_400


def attestation(
    destination: str, subject: str = "acct-1", *, issuer: Keys = OTHER_ISSUER, created_at=None, lifetime=7 * DAY
) -> str:
    return build_attestation(
        issuer,
        destination=destination,
        subject=subject,
        reviews=214,
        average=4.87,
        since=SINCE,
        created_at=int(time.time()) if created_at is None else created_at,
        lifetime_seconds=lifetime,
    ).to_json()


def send_import(client: TradeClient, text: str | None = None, *, payload="attestation", request_id=7):
    if payload == "attestation":
        payload = ReputationAttestationPayload(text or attestation(client.identity.public_key_hex))
    return client.send(Action.IMPORT_REPUTATION, index=1, trade_index=None, request_id=request_id, payload=payload)


def refused(client: TradeClient, reason: str, text: str | None = None, **kwargs) -> None:
    before, rows = state(), len(outbox())
    replies = send_import(client, text, **kwargs)
    assert [(r.recipient, r.message.to_json()) for r in replies] == [
        (client.pubkey(1), cant_do_json(reason, request_id=7))
    ]
    assert (state(), len(outbox())) == (before, rows + 1)


def rating_events() -> list[Event]:
    return [Event.from_json(row.event_json) for row in OutboundMessage.objects.filter(kind=38384).order_by("pk")]


def test_an_import_merges_records_confirms_and_republishes_the_rating_event():
    alice = TradeClient("alice")
    identity = alice.identity.public_key_hex
    rated(identity, votes=(4, 5))  # 2.0, then 2.0 + (5 − 2.0)/2 = 3.5
    text = attestation(identity)

    replies = send_import(alice, text)

    assert [(r.recipient, r.message.to_json()) for r in replies] == [
        (
            alice.pubkey(1),
            '{"order":{"version":2,"request_id":7,"trade_index":null,"action":"reputation-imported","payload":null}}',
        )
    ]
    record = Trader.objects.get(pk=identity)
    assert (record.total_reviews, record.total_rating) == (216, (3.5 * 2 + 4.87 * 214) / 216)
    assert (record.last_rating, record.max_rating, record.min_rating) == (5, 5, 4)  # set already: kept
    assert (record.seeded_reviews, record.seeded_rating_sum) == (214, 4.87 * 214)
    assert (record.native_reviews, record.native_rating_sum) == (2, 9.0)
    assert int(record.created_at.timestamp()) == SINCE  # the earliest date wins
    [row] = ReputationImport.objects.values(
        "issuer_name", "issuer_key", "subject", "identity_pubkey", "trade_pubkey", "reviews", "rating_hundredths"
    )
    assert row == {
        "issuer_name": "lnp2pbot",
        "issuer_key": OTHER_ISSUER.public_key_hex,
        "subject": "acct-1",
        "identity_pubkey": identity,
        "trade_pubkey": alice.pubkey(1),
        "reviews": 214,
        "rating_hundredths": 487,
    }
    [event] = rating_events()
    expiration = int(event.tag_value("expiration"))
    assert event.tags == [
        ["d", alice.pubkey(1)],  # the importing trade key (§Import-reputation)
        ["expiration", str(expiration)],
        ["total_reviews", "216"],
        ["total_rating", repr((3.5 * 2 + 4.87 * 214) / 216)],
        ["last_rating", "5"],
        ["max_rate", "5"],
        ["min_rate", "4"],
        ["since", str(SINCE)],
        ["z", "rating"],
        ["days", str((int(time.time()) - SINCE) // DAY)],
    ]


def test_an_identity_new_here_gets_a_record():
    bob = TradeClient("bob")
    send_import(bob)
    record = Trader.objects.get(pk=bob.identity.public_key_hex)
    assert (record.total_reviews, record.total_rating, record.last_rating, record.max_rating, record.min_rating) == (
        214,
        4.87,
        5,
        5,
        5,
    )
    assert (record.native_reviews, record.native_rating, record.last_trade_index) == (0, 0.0, 0)


def test_a_source_backs_one_identity_and_an_identity_imports_one_account_per_issuer():
    alice, bob = TradeClient("alice"), TradeClient("bob")
    send_import(alice)
    before = Trader.objects.get(pk=alice.identity.public_key_hex).total_reviews
    refused(alice, "reputation_already_imported", attestation(alice.identity.public_key_hex))
    refused(bob, "reputation_already_imported", attestation(bob.identity.public_key_hex))  # same subject
    refused(alice, "reputation_already_imported", attestation(alice.identity.public_key_hex, "acct-2"))
    assert Trader.objects.get(pk=alice.identity.public_key_hex).total_reviews == before == 214
    # Another issuer is another source.
    third = Keys.from_hex("7c" * 32)
    trust("other-mostro", third.public_key_hex)
    send_import(alice, attestation(alice.identity.public_key_hex, issuer=third))
    assert Trader.objects.get(pk=alice.identity.public_key_hex).total_reviews == 428


def test_a_rotated_issuer_key_cannot_reopen_an_imported_account():
    rotated = Keys.from_hex("7d" * 32)
    trust("rotating", Keys.from_hex("7e" * 32).public_key_hex, rotated.public_key_hex)
    alice = TradeClient("alice")
    send_import(alice, attestation(alice.identity.public_key_hex, issuer=Keys.from_hex("7e" * 32)))
    refused(alice, "reputation_already_imported", attestation(alice.identity.public_key_hex, issuer=rotated))


def test_a_concurrent_import_of_the_same_source_merges_once(monkeypatch):
    """The competitor commits between the checks and the insert: the unique constraint decides."""
    alice, bob = TradeClient("alice"), TradeClient("bob")
    real = import_module.trusted_issuer_keys
    competitor = alice.build(
        Action.IMPORT_REPUTATION,
        index=1,
        trade_index=None,
        payload=ReputationAttestationPayload(attestation(alice.identity.public_key_hex)),
    )

    def trust_list_then_competitor():
        keys = real()
        if not ReputationImport.objects.exists():
            deliver(competitor)
        return keys

    monkeypatch.setattr(import_module, "trusted_issuer_keys", trust_list_then_competitor)
    replies = send_import(bob, attestation(bob.identity.public_key_hex))
    assert [r.message.to_json() for r in replies] == [cant_do_json("reputation_already_imported", request_id=7)]
    assert [r.action for r in alice.replies()] == ["reputation-imported"]
    assert list(ReputationImport.objects.values_list("identity_pubkey", flat=True)) == [alice.identity.public_key_hex]
    assert not Trader.objects.filter(pk=bob.identity.public_key_hex).exists()


# --- refusals, in the order of §Import-reputation ------------------------------------------------------------
def test_import_disabled_is_invalid_action(settings):
    settings.MOSTRO_REPUTATION_IMPORT_ENABLED = False
    refused(TradeClient("alice"), "invalid_action", payload=None)


@pytest.mark.parametrize(
    "payload", [None, ReputationExportRequestPayload(ReputationExportRequest(destination="ab" * 32))]
)
def test_a_wrong_payload_is_invalid_payload_even_in_full_privacy(payload):
    refused(TradeClient("carol", full_privacy=True), "invalid_payload", payload=payload)


def test_full_privacy_is_refused_before_the_attestation_is_read():
    refused(TradeClient("carol", full_privacy=True), "reputation_identity_required", "not an event")


def _tampered(text: str) -> str:
    return text.replace('"reviews","214"', '"reviews","215"')


STRANGER = Keys.from_hex("7f" * 32)  # an issuer in no trust entry
ELSEWHERE = Keys.from_hex("7a" * 32).public_key_hex  # another identity
INVALID, EXPIRED = "invalid_reputation_attestation", "expired_reputation_attestation"


def _aged(pk: str, seconds: int, **kwargs) -> str:
    return attestation(pk, created_at=int(time.time()) + seconds, **kwargs)


@pytest.mark.parametrize(
    ("_case", "make", "reason"),
    [
        ("not an event", lambda pk: "not an event", INVALID),
        ("tampered", lambda pk: _tampered(attestation(pk)), INVALID),
        ("from the future", lambda pk: _aged(pk, 400), INVALID),
        ("expired", lambda pk: _aged(pk, -8 * DAY), EXPIRED),
        # The clock is checked before the trust list: this issuer is untrusted too.
        ("expired and untrusted", lambda pk: _aged(pk, -8 * DAY, issuer=STRANGER), EXPIRED),
        ("untrusted", lambda pk: attestation(pk, issuer=STRANGER), "untrusted_reputation_issuer"),
        # The trust list is checked before the identity match.
        (
            "untrusted, another identity",
            lambda pk: attestation(ELSEWHERE, issuer=STRANGER),
            "untrusted_reputation_issuer",
        ),
        ("for another identity", lambda pk: attestation(ELSEWHERE), "reputation_identity_mismatch"),
    ],
)
def test_each_check_refuses_with_its_reason(_case, make, reason):
    alice = TradeClient("alice")
    rated(alice.identity.public_key_hex)
    refused(alice, reason, make(alice.identity.public_key_hex))


def test_a_lifetime_over_the_nodes_cap_is_invalid(settings):
    settings.MOSTRO_REPUTATION_IMPORT_MAX_LIFETIME_SECONDS = DAY
    alice = TradeClient("alice")
    refused(alice, "invalid_reputation_attestation", attestation(alice.identity.public_key_hex, lifetime=DAY + 1))


def test_the_nodes_own_issuer_key_is_never_trusted():
    """Even if it reached the trust list (the operator page and the boot check refuse it)."""
    trust("myself", ISSUER.public_key_hex)
    alice = TradeClient("alice")
    refused(alice, "untrusted_reputation_issuer", attestation(alice.identity.public_key_hex, issuer=ISSUER))


def test_an_attestation_signed_for_another_kind_is_invalid():
    alice = TradeClient("alice")
    good = Event.from_json(attestation(alice.identity.public_key_hex))
    other = sign_event(OTHER_ISSUER, kind=1, content="", tags=good.tags, created_at=good.created_at)
    refused(alice, "invalid_reputation_attestation", other.to_json())


def test_since_is_kept_when_the_record_is_older():
    alice = TradeClient("alice")
    record = rated(alice.identity.public_key_hex)
    older = datetime.fromtimestamp(SINCE, tz=UTC) - timedelta(days=400)
    Trader.objects.filter(pk=record.pk).update(created_at=older)
    send_import(alice)
    assert Trader.objects.get(pk=record.pk).created_at == older
