"""`export-reputation` through the pipeline (docs/PROTOCOL.md §Export-reputation): the attestation, the
binding, every refusal in mostrod's order, each proving nothing changed."""

import time
from datetime import timedelta

import pytest

from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.payloads import (
    RatingUserPayload,
    ReputationAttestationPayload,
    ReputationExportRequestPayload,
)
from nostrbridge.protocol.reputation import build_rebind, parse_attestation
from nostrbridge.protocol.structs import ReputationExportRequest
from orders.models import Trader
from tests.foundation.factories import make_order
from tests.orders.reputation_support import (
    FIRST_TRADE,
    FIRST_TRADE_DAY,
    ISSUER,
    completed_trades,
    eligible,
    outbox,
    rated,
    reputation,  # noqa: F401 - fixture
    state,
)
from tests.orders.services.support import cant_do_json
from tests.trade.harness import TradeClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("node", "reputation")]

WEEK = 7 * 86_400


def export(client: TradeClient, destination: str | None = None, *, rebind: str | None = None, payload="request"):
    if payload == "request":
        request = ReputationExportRequest(destination=destination or client.identity.public_key_hex, rebind=rebind)
        payload = ReputationExportRequestPayload(request)
    return client.send(Action.EXPORT_REPUTATION, index=1, trade_index=None, request_id=11, payload=payload)


def attestation_of(reply) -> str:
    assert (reply.action, reply.message.request_id, reply.message.id) == ("reputation-exported", 11, None)
    assert isinstance(reply.payload, ReputationAttestationPayload)
    return reply.payload.attestation_json


def refused(client: TradeClient, reason: str, **kwargs) -> None:
    before, rows = state(), len(outbox())
    replies = export(client, **kwargs)
    assert [(r.recipient, r.message.to_json()) for r in replies] == [
        (client.pubkey(1), cant_do_json(reason, request_id=11))
    ]
    assert (state(), len(outbox())) == (before, rows + 1)


def test_exports_the_native_reputation_for_the_destination_and_binds_it():
    alice = TradeClient("alice")
    identity = alice.identity.public_key_hex
    eligible(identity)
    started = int(time.time())

    [reply] = export(alice)

    text = attestation_of(reply)
    assert reply.json == {
        "order": {
            "version": 2,
            "request_id": 11,
            "trade_index": None,
            "action": "reputation-exported",
            "payload": {"reputation_attestation": text},
        }
    }
    parsed = parse_attestation(text, now=started, max_lifetime_seconds=WEEK)
    assert (parsed.issuer, parsed.destination, parsed.subject) == (ISSUER.public_key_hex, identity, identity)
    # Native ratings 5, 4, 5, 5, 3: five of them, exact average 4.40 (the stored, damped one is 3.86…).
    assert (parsed.reviews, parsed.rating_text, parsed.since) == (5, "4.40", FIRST_TRADE_DAY)
    assert started <= parsed.created_at <= time.time()
    assert parsed.expiration == parsed.created_at + WEEK
    record = Trader.objects.get(pk=identity)
    today = parsed.created_at - parsed.created_at % 86_400
    assert (record.reputation_exported_to, int(record.reputation_exported_at.timestamp())) == (identity, today)
    # Asking again for the bound identity is how a lost or expired attestation is replaced.
    [again] = export(alice)
    assert parse_attestation(attestation_of(again), now=started, max_lifetime_seconds=WEEK).reviews == 5


def test_imported_ratings_never_count_or_travel():
    alice = TradeClient("alice")
    identity = alice.identity.public_key_hex
    completed_trades(identity)
    rated(identity, votes=(5, 5, 5, 5), seeded_reviews=0)
    Trader.objects.filter(pk=identity).update(total_reviews=204, seeded_reviews=200, seeded_rating_sum=600.0)
    refused(alice, "not_eligible_for_reputation_export")  # four native ratings, whatever was imported

    Trader.objects.filter(pk=identity).update(total_reviews=205, native_rating_sum=23.0)
    [reply] = export(alice)
    parsed = parse_attestation(attestation_of(reply), now=int(time.time()), max_lifetime_seconds=WEEK)
    assert (parsed.reviews, parsed.rating_text) == (5, "4.60")


def test_the_first_trade_is_dated_by_taken_at_else_created_at():
    alice = TradeClient("alice")
    identity = alice.identity.public_key_hex
    eligible(identity)
    early = FIRST_TRADE - timedelta(days=40)
    make_order(status="success", master_buyer_pubkey=identity, master_seller_pubkey=None, created_at=early)
    make_order(status="canceled", master_seller_pubkey=identity, taken_at=early - timedelta(days=90))
    [reply] = export(alice)
    since = parse_attestation(attestation_of(reply), now=int(time.time()), max_lifetime_seconds=WEEK).since
    assert since == FIRST_TRADE_DAY - 40 * 86_400


# --- refusals, in the order of §Export-reputation ------------------------------------------------------------
def test_export_disabled_or_without_its_key_is_invalid_action(settings):
    alice = TradeClient("alice")
    eligible(alice.identity.public_key_hex)
    settings.MOSTRO_REPUTATION_EXPORT_ENABLED = False
    refused(alice, "invalid_action", payload=None)  # before the payload is looked at
    settings.MOSTRO_REPUTATION_EXPORT_ENABLED = True
    settings.MOSTRO_REPUTATION_ISSUER_SK = ""
    refused(alice, "invalid_action")


@pytest.mark.parametrize("payload", [None, RatingUserPayload(5), ReputationAttestationPayload("{}")])
def test_a_wrong_payload_is_invalid_payload_even_in_full_privacy(payload):
    refused(TradeClient("carol", full_privacy=True), "invalid_payload", payload=payload)


def test_full_privacy_is_refused_before_the_destination():
    refused(TradeClient("carol", full_privacy=True), "reputation_identity_required", destination="not hex")


@pytest.mark.parametrize(
    "destination",
    ["ab", "B7EAB0999542093C73C742F091D56403814C497E1E43CE00EBA7A4303EC87E99", "ff" * 32, "npub1" + "q" * 58],
)
def test_a_bad_destination_is_invalid_payload_before_eligibility(destination):
    refused(TradeClient("eve"), "invalid_payload", destination=destination)  # eve has no record at all


@pytest.mark.parametrize(
    ("_case", "setup"),
    [
        ("no record", lambda pk: None),
        ("banned", lambda pk: eligible(pk, is_banned=True)),
        ("nine trades", lambda pk: (completed_trades(pk, 9), rated(pk))),
        ("four ratings", lambda pk: (completed_trades(pk), rated(pk, votes=(5, 5, 5, 5)))),
        ("no completed trade", lambda pk: rated(pk)),
    ],
)
def test_not_eligible(_case, setup):
    alice = TradeClient("alice")
    setup(alice.identity.public_key_hex)
    refused(alice, "not_eligible_for_reputation_export")


def test_an_account_bound_to_another_identity_is_refused():
    alice = TradeClient("alice")
    eligible(alice.identity.public_key_hex, reputation_exported_to="cc" * 32)
    refused(alice, "reputation_bound_to_other_identity")


# --- rebinding ----------------------------------------------------------------------------------
OLD, NEW = Keys.from_hex("71" * 32), Keys.from_hex("72" * 32)


def rebind(signer: Keys = OLD, *, issuer: str | None = None, new: str | None = None, created_at=None) -> str:
    return build_rebind(
        signer,
        issuer=issuer or ISSUER.public_key_hex,
        new_identity=new or NEW.public_key_hex,
        created_at=int(time.time()) if created_at is None else created_at,
    ).to_json()


def test_a_rebind_signed_by_the_bound_identity_moves_the_binding():
    alice = TradeClient("alice")
    eligible(alice.identity.public_key_hex, reputation_exported_to=OLD.public_key_hex)
    [reply] = export(alice, NEW.public_key_hex, rebind=rebind())
    parsed = parse_attestation(attestation_of(reply), now=int(time.time()), max_lifetime_seconds=WEEK)
    assert parsed.destination == NEW.public_key_hex
    assert Trader.objects.get(pk=alice.identity.public_key_hex).reputation_exported_to == NEW.public_key_hex
    # A replay of the same authorisation binds nothing new: the account is bound to NEW already.
    refused(alice, "reputation_bound_to_other_identity", destination=OLD.public_key_hex)


@pytest.mark.parametrize(
    ("_case", "authorisation"),
    [
        ("signed by another identity", lambda: rebind(Keys.from_hex("73" * 32))),
        ("for another issuer", lambda: rebind(issuer=Keys.from_hex("74" * 32).public_key_hex)),
        ("naming another destination", lambda: rebind(new=Keys.from_hex("75" * 32).public_key_hex)),
        ("expired", lambda: rebind(created_at=int(time.time()) - 3600 - 301)),
        ("not an event", lambda: "garbage"),
        ("an attestation", lambda: rebind().replace("reputation-rebind", "reputation-attestation")),
    ],
)
def test_an_invalid_rebind_is_refused(_case, authorisation):
    alice = TradeClient("alice")
    eligible(alice.identity.public_key_hex, reputation_exported_to=OLD.public_key_hex)
    refused(alice, "invalid_reputation_rebind", destination=NEW.public_key_hex, rebind=authorisation())
