"""What the node publishes on its own (38385, 0, 10002) and the bridge's periodic jobs."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from mostro_site.config import clear_node_config_cache
from mostro_site.models import NodeSettings
from nostrbridge import jobs, node_announcements
from nostrbridge.models import InboundEvent, InboundStatus, OutboundDelivery, OutboundMessage, OutboundStatus
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.nip01 import Event
from nostrbridge.protocol.published_events import INFO_KIND, METADATA_KIND, RELAY_LIST_KIND

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_config():
    clear_node_config_cache()
    yield
    clear_node_config_cache()


def events_of(kind: int) -> list[Event]:
    rows = OutboundMessage.objects.filter(kind=kind).order_by("pk").values_list("event_json", flat=True)
    return [Event.from_json(row) for row in rows]


def tag(event: Event, name: str) -> list[str]:
    return next(t for t in event.tags if t[0] == name)


def test_info_event_carries_the_live_settings_and_is_not_repeated_within_the_interval():
    now = int(time.time())
    first = node_announcements.info_event_enqueue(lnd=None, min_interval_s=300, now=now)
    repeat = node_announcements.info_event_enqueue(lnd=None, min_interval_s=300, now=now + 10)
    NodeSettings.objects.create(pow_bits=3, name="Example Mostro")
    clear_node_config_cache()
    changed = node_announcements.info_event_enqueue(lnd=None, min_interval_s=300, now=now + 10)

    assert first is not None
    assert repeat is None
    assert changed is not None
    old, new = events_of(INFO_KIND)
    assert (tag(old, "d"), tag(old, "pow"), tag(old, "protocol_version")) == (
        ["d", node_pubkey()],
        ["pow", "0"],
        ["protocol_version", "2"],
    )
    assert (tag(new, "pow"), tag(new, "y")) == (["pow", "3"], ["y", "mostro", "Example Mostro"])
    assert new.created_at > old.created_at
    assert changed.d_tag == node_pubkey()


def test_info_event_is_republished_once_the_interval_has_passed():
    now = int(time.time())
    node_announcements.info_event_enqueue(lnd=None, min_interval_s=300, now=now)
    assert node_announcements.info_event_enqueue(lnd=None, min_interval_s=300, now=now + 301) is not None


def test_info_event_includes_lnd_identity_when_lnd_answers():
    lnd = node_announcements.lnd_status()  # the fake Lightning backend of the test settings

    node_announcements.info_event_enqueue(lnd=lnd, min_interval_s=0)

    (event,) = events_of(INFO_KIND)
    assert tag(event, "lnd_version") == ["lnd_version", lnd.version]
    assert tag(event, "lnd_networks") == ["lnd_networks", ",".join(lnd.networks)]


def test_metadata_is_published_only_when_the_operator_set_a_profile():
    assert node_announcements.metadata_enqueue() is None
    NodeSettings.objects.create(name="Example Mostro", website="https://mostro.example")
    clear_node_config_cache()

    assert node_announcements.metadata_enqueue() is not None
    assert node_announcements.metadata_enqueue() is None  # same content just queued

    (event,) = events_of(METADATA_KIND)
    assert json.loads(event.content) == {"name": "Example Mostro", "website": "https://mostro.example"}


def test_relay_list_names_the_connected_relays_and_changes_go_out_at_once():
    now = int(time.time())
    assert node_announcements.relay_list_enqueue(relays=[], min_interval_s=55, now=now) is None
    node_announcements.relay_list_enqueue(relays=["ws://a", "ws://b"], min_interval_s=55, now=now)
    node_announcements.relay_list_enqueue(relays=["ws://a", "ws://b"], min_interval_s=55, now=now + 1)
    node_announcements.relay_list_enqueue(relays=["ws://a"], min_interval_s=55, now=now + 2)

    assert [e.tags for e in events_of(RELAY_LIST_KIND)] == [[["r", "ws://a"], ["r", "ws://b"]], [["r", "ws://a"]]]


def test_publish_relay_list_job_uses_what_a_running_bridge_reports(settings):
    from nostrbridge.models import RelayHealth

    settings.MOSTRO_RELAYS = ["ws://a", "ws://b/", "ws://c"]
    RelayHealth.objects.create(relay_url="ws://a", connected=True)
    RelayHealth.objects.create(relay_url="ws://b", connected=True)
    RelayHealth.objects.create(relay_url="ws://c", connected=False)

    assert jobs.publish_relay_list() is True
    assert [e.tags for e in events_of(RELAY_LIST_KIND)] == [[["r", "ws://a"], ["r", "ws://b/"]]]


# -- maintenance ----------------------------------------------------------------------------
def test_prune_deletes_old_handled_rows_but_keeps_parked_and_recent_ones():
    old = timezone.now() - timedelta(days=8)
    for index, status in enumerate(
        [InboundStatus.DONE, InboundStatus.DROPPED, InboundStatus.PARKED, InboundStatus.DONE]
    ):
        InboundEvent.objects.create(
            event_id=f"{index:064x}", kind=14, pubkey="a" * 64, event_created_at=1, raw="{}", status=status
        )
    InboundEvent.objects.exclude(event_id=f"{3:064x}").update(received_at=old)

    assert jobs.prune_inbox() == 2
    assert sorted(InboundEvent.objects.values_list("status", flat=True)) == [InboundStatus.DONE, InboundStatus.PARKED]


def test_prune_outbox_deletes_old_sent_rows_only():
    old = timezone.now() - timedelta(days=31)
    rows = {}
    for index, status in enumerate([OutboundStatus.SENT, OutboundStatus.PARKED, OutboundStatus.PENDING]):
        rows[status] = OutboundMessage.objects.create(event_id=f"{index:064x}", kind=14, event_json="{}", status=status)
    OutboundMessage.objects.create(
        event_id=f"{9:064x}", kind=14, event_json="{}", status=OutboundStatus.SENT, sent_at=timezone.now()
    )
    OutboundMessage.objects.filter(pk__in=[r.pk for r in rows.values()]).update(sent_at=old)
    OutboundDelivery.objects.create(message=rows[OutboundStatus.SENT], relay_url="ws://r", accepted=True)

    assert jobs.prune_outbox() == 1
    assert sorted(OutboundMessage.objects.values_list("event_id", flat=True)) == [
        f"{1:064x}",
        f"{2:064x}",
        f"{9:064x}",
    ]
    assert OutboundDelivery.objects.count() == 0


def test_retry_outbox_counts_what_the_publisher_still_owes(monkeypatch):
    woken = []
    monkeypatch.setattr(jobs, "wake", woken.append)
    node_announcements.relay_list_enqueue(relays=["ws://a"], min_interval_s=0)
    node_announcements.info_event_enqueue(lnd=None, min_interval_s=0)
    OutboundMessage.objects.filter(kind=INFO_KIND).update(
        status=OutboundStatus.SENT, next_attempt_at=None, sent_at=timezone.now()
    )

    assert jobs.retry_outbox() == 1
    assert woken == ["mostro-outbox"]
