"""The intake's checked events: an event whose outer checks (strict parse with the id recomputed,
PoW, Schnorr signature) ran on the event loop is processed on that parsed `Event` in the database
thread, not parsed and verified a second time from its stored JSON; only an event stored from that
very object is, so a copy from another relay (same id, never checked itself) is checked afresh.
Real `orders` requests through the real dispatch, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from mostro_site.config import env_node_config
from nostrbridge import dispatch
from nostrbridge.bridge.coalesce import Coalescing
from nostrbridge.bridge.intake import CatchUp, Intake
from nostrbridge.bridge.intake_trip import store_process_claim
from nostrbridge.models import InboundEvent, InboundStatus, OutboundMessage
from nostrbridge.node_identity import node_pubkey
from nostrbridge.outbox_rounds import PublishPolicy
from nostrbridge.protocol import inbound
from nostrbridge.protocol.nip01 import Event, leading_zero_bits
from tests.nostrbridge.test_bridge_units import orders_event

pytestmark = pytest.mark.django_db(transaction=True)


class Checks:
    """Counts the database thread's parses and signature checks (the intake's are not patched:
    it imported its own references to them)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.parsed: list[str] = []
        self.verified: list[str] = []
        parse, verify = inbound.parse_event, inbound.check_signature

        def counted_parse(raw: object) -> Event:
            event = parse(raw)  # type: ignore[arg-type]
            self.parsed.append(event.id)
            return event

        def counted_verify(event: Event) -> None:
            self.verified.append(event.id)
            verify(event)

        monkeypatch.setattr(inbound, "parse_event", counted_parse)
        monkeypatch.setattr(inbound, "check_signature", counted_verify)


def intake(batches: list[tuple[list, dict]]) -> Intake:
    async def store(batch: list[tuple[str, dict, bool]], checked: dict[str, tuple[dict, Event]]) -> int:
        batches.append((list(batch), checked))
        return 0

    config = env_node_config()
    return Intake(
        node_pubkey=node_pubkey(),
        catch_up=CatchUp(anchor=0, protocol_version=config.protocol_version),
        config=lambda: config,
        nudge=lambda: None,
        store=store,
        coalescing=Coalescing(),
    )


def process(batch: list[tuple[str, dict, bool]], checked: dict[str, tuple[dict, Event]]) -> tuple[int, int]:
    unclaimed, processed, _, _ = store_process_claim(
        batch,
        worker_id="w:1:a",
        stop=threading.Event(),
        network=None,
        publish=True,
        policy=PublishPolicy(),
        checked=checked,
    )
    return unclaimed, processed


def outcomes() -> list[tuple[str, str, str]]:
    return list(InboundEvent.objects.order_by("pk").values_list("event_id", "status", "drop_reason"))


async def test_the_intake_hands_over_the_events_it_checked_once_and_forgets_them():
    batches: list[tuple[list, dict]] = []
    probe = intake(batches)
    first, second = orders_event(), orders_event()
    copy = dict(first)  # the same event from another relay: skipped by id, never parsed itself

    for url, event in (("ws://a", first), ("ws://b", copy), ("ws://a", second)):
        await probe.on_event(url, event)
    await probe.flush()

    [(batch, checked)] = batches
    assert [event for _, event, _ in batch] == [first, copy, second]
    assert list(checked) == [first["id"], second["id"]]
    assert checked[first["id"]][0] is first
    assert checked[second["id"]][0] is second
    assert [(event.id, event.sig) for _, event in checked.values()] == [
        (first["id"], first["sig"]),
        (second["id"], second["sig"]),
    ]
    assert probe._checked == {}  # nothing kept once handed over
    assert probe.take_checked(batch) == {}


def test_rows_stored_from_checked_events_are_not_parsed_or_verified_again(monkeypatch):
    first, second = orders_event(), orders_event()
    checked = {event["id"]: (event, inbound.parse_event(event)) for event in (first, second)}
    checks = Checks(monkeypatch)

    assert process([("ws://a", first, False), ("ws://a", second, False)], checked) == (0, 2)

    assert (checks.parsed, checks.verified) == ([], [])
    assert outcomes() == [
        (first["id"], InboundStatus.DONE, "cant-do not_found"),
        (second["id"], InboundStatus.DONE, "cant-do not_found"),
    ]
    assert list(OutboundMessage.objects.order_by("pk").values_list("recipient_pubkey", "action")) == [
        (first["pubkey"], "cant-do"),
        (second["pubkey"], "cant-do"),
    ]


def test_a_row_stored_from_an_unchecked_copy_is_checked_afresh(monkeypatch):
    checked_event, unchecked = orders_event(), orders_event()
    copy = dict(checked_event)  # equal, but not the object the intake checked
    forged = {**unchecked, "sig": "00" * 64}  # no entry at all: its signature fails in dispatch
    checked = {checked_event["id"]: (checked_event, inbound.parse_event(checked_event))}
    checks = Checks(monkeypatch)

    # The copy comes first, so it is the object stored for that id.
    assert process([("ws://b", copy, False), ("ws://a", checked_event, False), ("ws://a", forged, False)], checked) == (
        0,
        2,
    )

    assert checks.parsed == [copy["id"], forged["id"]]
    assert checks.verified == [copy["id"], forged["id"]]
    assert outcomes() == [
        (copy["id"], InboundStatus.DONE, "cant-do not_found"),
        (forged["id"], InboundStatus.DROPPED, "BadSignature: event signature does not verify"),
    ]
    assert list(OutboundMessage.objects.values_list("recipient_pubkey", flat=True)) == [copy["pubkey"]]


def test_a_checked_event_still_meets_the_freshness_check():
    stale = orders_event(created_at=1_000)
    checked = {stale["id"]: (stale, inbound.parse_event(stale))}

    assert process([("ws://a", stale, False)], checked) == (0, 1)

    [(event_id, status, reason)] = outcomes()
    assert (event_id, status) == (stale["id"], InboundStatus.DROPPED)
    assert reason == f"StaleMessage: message created at 1000 is older than {inbound.FRESHNESS_WINDOW_SECONDS} s"
    assert OutboundMessage.objects.count() == 0


def test_a_checked_event_still_meets_the_proof_of_work_the_node_asks_now(monkeypatch):
    event = orders_event()
    while leading_zero_bits(event["id"]) >= 8:  # one random id in 256 meets 8 bits by chance
        event = orders_event()
    checked = {event["id"]: (event, inbound.parse_event(event))}
    config = replace(env_node_config(), pow_bits=8)
    monkeypatch.setattr(dispatch, "node_config", lambda: config)

    assert process([("ws://a", event, False)], checked) == (0, 1)

    assert outcomes() == [
        (event["id"], InboundStatus.DROPPED, "InsufficientPow: event id has fewer than 8 leading zero bits")
    ]
    assert OutboundMessage.objects.count() == 0
