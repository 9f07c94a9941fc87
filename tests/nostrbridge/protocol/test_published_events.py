"""Published events (docs/PROTOCOL.md §Events): exact tags and ids from the builders."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid

import pytest

from nostrbridge.protocol.enums import DisputeStatus, Kind, Status
from nostrbridge.protocol.info_event import BondInfo, NodeInfo, build_info_event
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.nip01 import Event
from nostrbridge.protocol.published_events import (
    MakerReputation,
    MonotonicClock,
    OrderSnapshot,
    PublisherSettings,
    build_dev_fee_event,
    build_dispute_event,
    build_metadata_event,
    build_order_event,
    build_rates_event,
    build_rating_event,
    build_relay_list_event,
    order_event_tags,
    order_status_bucket,
    rating_tag_value,
)
from tests.nostrbridge.protocol.conftest import MOSTRO_VECTORS, ZERO_AUX

PUBLISHED = MOSTRO_VECTORS["published_events"]
NODE_PK = MOSTRO_VECTORS["keys"]["mostro-node"]["pk"]
SETTINGS = PublisherSettings(
    node_pubkey=NODE_PK,
    instance_name="  Example Mostro ",
    relays=("wss://relay.mostro.network", "wss://nos.lol"),
)
ORDER = OrderSnapshot(
    id=uuid.UUID("c7dba9db-f13f-4c3f-a77f-3b82e43c2b1a"),
    kind=Kind.SELL,
    status=Status.PENDING,
    fiat_code="VES",
    amount_sats=0,
    fiat_amount=100,
    payment_method="face to face,bank transfer",
    premium=1,
    expires_at=1700086400,
)
DAY = 86_400


def test_pending_order_event_matches_vector(node: Keys) -> None:
    event = build_order_event(
        ORDER,
        node,
        settings=SETTINGS,
        now=1700000000,
        network="mainnet",
        reputation=MakerReputation(days=120, total_rating=4.5, total_reviews=7),
        aux_rand=ZERO_AUX,
    )
    assert event is not None
    assert event.to_dict() == PUBLISHED["order_pending_38383"]


def test_in_progress_order_event_matches_vector(node: Keys) -> None:
    taken = dataclasses.replace(ORDER, status=Status.WAITING_BUYER_INVOICE, amount_sats=7851)
    event = build_order_event(taken, node, settings=SETTINGS, now=1700000060, network="mainnet", aux_rand=ZERO_AUX)
    assert event is not None
    assert event.to_dict() == PUBLISHED["order_in_progress_38383"]


def test_rating_event_matches_vector(node: Keys) -> None:
    event = build_rating_event(
        node,
        d_pubkey="b7eab0999542093c73c742f091d56403814c497e1e43ce00eba7a4303ec87e99",
        total_reviews=8,
        total_rating=4.4375,
        last_rating=5,
        max_rate=5,
        min_rate=3,
        days=120,
        settings=SETTINGS,
        now=1700001000,
        aux_rand=ZERO_AUX,
    )
    assert event.to_dict() == PUBLISHED["rating_38384"]


def test_dispute_event_matches_vector(node: Keys) -> None:
    # The vector's expiration is 90 days after 1700001000 while created_at is 1700000900.
    event = build_dispute_event(
        node,
        dispute_id=uuid.UUID("efc75871-2568-40b9-a6ee-c382d4d6de01"),
        status=DisputeStatus.INITIATED,
        initiator="buyer",
        dispute_created_at=1700000900,
        settings=SETTINGS,
        now=1700001000,
        created_at=1700000900,
        aux_rand=ZERO_AUX,
    )
    # The 0.18.5 vector, with the tag mostrod #1001 renamed `created_at` → `published_at`.
    vector = PUBLISHED["dispute_38386"]
    renamed = [["published_at", *tag[1:]] if tag[0] == "created_at" else tag for tag in vector["tags"]]
    assert renamed != vector["tags"]
    assert {k: v for k, v in event.to_dict().items() if k not in ("id", "sig")} == {
        k: v for k, v in vector.items() if k not in ("id", "sig", "tags")
    } | {"tags": renamed}
    assert event.verify()


def test_order_event_published_at_is_the_creation_time_in_every_revision(node: Keys) -> None:
    order = dataclasses.replace(ORDER, published_at=1700000000)
    pending = build_order_event(order, node, settings=SETTINGS, now=1700000100, network="regtest")
    taken = build_order_event(
        dataclasses.replace(order, status=Status.SUCCESS), node, settings=SETTINGS, now=1700000500, network="regtest"
    )
    for event in (pending, taken):
        names = [tag[0] for tag in event.tags]
        assert event.tags[names.index("expires_at") + 1] == ["published_at", "1700000000"]
        assert names.count("published_at") == 1
    assert "published_at" not in [
        tag[0] for tag in build_order_event(ORDER, node, settings=SETTINGS, now=1, network="x").tags
    ]


@pytest.mark.parametrize("label", PUBLISHED)
def test_published_vector_ids_recompute(label: str) -> None:
    event = Event.from_dict(PUBLISHED[label])
    assert event.compute_id() == PUBLISHED[label]["id"]
    assert event.verify()


BUCKETS = [
    (Status.PENDING, Kind.SELL, "pending"),
    (Status.WAITING_TAKER_BOND, Kind.BUY, "pending"),
    (Status.WAITING_MAKER_BOND, Kind.SELL, None),
    (Status.WAITING_BUYER_INVOICE, Kind.SELL, "in-progress"),
    (Status.WAITING_BUYER_INVOICE, Kind.BUY, None),
    (Status.WAITING_PAYMENT, Kind.BUY, "in-progress"),
    (Status.WAITING_PAYMENT, Kind.SELL, None),
    (Status.ACTIVE, Kind.SELL, None),
    (Status.FIAT_SENT, Kind.SELL, None),
    (Status.DISPUTE, Kind.BUY, None),
    (Status.SETTLED_HOLD_INVOICE, Kind.SELL, None),
    (Status.IN_PROGRESS, Kind.SELL, None),
    (Status.SETTLED_BY_ADMIN, Kind.SELL, None),
    (Status.SUCCESS, Kind.SELL, "success"),
    (Status.COMPLETED_BY_ADMIN, Kind.BUY, "completed-by-admin"),
    (Status.CANCELED, Kind.SELL, "canceled"),
    (Status.CANCELED_BY_ADMIN, Kind.SELL, "canceled"),
    (Status.COOPERATIVELY_CANCELED, Kind.BUY, "canceled"),
    (Status.EXPIRED, Kind.SELL, "canceled"),
]


@pytest.mark.parametrize(("status", "kind", "bucket"), BUCKETS)
def test_status_bucket(status: Status, kind: Kind, bucket: str | None) -> None:
    assert order_status_bucket(status, kind) == bucket
    snapshot = dataclasses.replace(ORDER, status=status, kind=kind)
    tags = order_event_tags(snapshot, settings=SETTINGS, now=1, network="regtest")
    assert (tags is None) is (bucket is None)


def test_every_status_has_a_bucket_rule() -> None:
    assert {status for status, _, _ in BUCKETS} == set(Status)


def _tags(order: OrderSnapshot, **kwargs: object) -> dict[str, list[str]]:
    tags = order_event_tags(order, settings=SETTINGS, now=1000, network=kwargs.pop("network", "testnet"), **kwargs)
    assert tags is not None
    return {tag[0]: tag[1:] for tag in tags}


def test_range_order_fa_has_two_values_only_while_pending() -> None:
    ranged = dataclasses.replace(ORDER, min_amount=10, max_amount=50, fiat_amount=0)
    assert _tags(ranged)["fa"] == ["10", "50"]
    assert _tags(dataclasses.replace(ranged, status=Status.WAITING_TAKER_BOND))["fa"] == ["10", "50"]
    taken = dataclasses.replace(ranged, status=Status.SUCCESS, fiat_amount=15)
    assert _tags(taken)["fa"] == ["15"]
    assert _tags(dataclasses.replace(ranged, max_amount=None))["fa"] == ["0"]


def test_payment_methods_split_without_trimming() -> None:
    assert _tags(dataclasses.replace(ORDER, payment_method="a, b,,c ,"))["pm"] == ["a", " b", "c "]


def test_rating_and_source_only_in_pending_revisions() -> None:
    pending = _tags(ORDER)
    assert pending["rating"] == ['["rating",{"days":0,"total_rating":0.0,"total_reviews":0}]']
    assert pending["source"] == [f"mostro:{ORDER.id}?relays=wss://relay.mostro.network,wss://nos.lol&mostro={NODE_PK}"]
    done = _tags(dataclasses.replace(ORDER, status=Status.CANCELED))
    assert "rating" not in done
    assert "source" not in done


def test_expiration_rule() -> None:
    assert _tags(ORDER)["expiration"] == ["1700086400"]
    assert _tags(dataclasses.replace(ORDER, expires_at=0))["expiration"] == [str(1000 + 30 * DAY)]
    assert _tags(dataclasses.replace(ORDER, status=Status.SUCCESS))["expiration"] == [str(1000 + 30 * DAY)]
    assert _tags(dataclasses.replace(ORDER, status=Status.SUCCESS))["expires_at"] == ["1700086400"]


def test_order_tag_order_and_unknown_network() -> None:
    tags = order_event_tags(dataclasses.replace(ORDER, status=Status.CANCELED), settings=SETTINGS, now=5, network=None)
    assert tags is not None
    assert [t[0] for t in tags] == [
        "d",
        "k",
        "f",
        "s",
        "amt",
        "fa",
        "pm",
        "premium",
        "network",
        "layer",
        "expires_at",
        "expiration",
        "y",
        "z",
    ]
    assert tags[8] == ["network", "unknown"]


def test_y_tag_without_name() -> None:
    assert PublisherSettings(node_pubkey=NODE_PK, instance_name="   ").y_tag() == ["y", "mostro"]


@pytest.mark.parametrize(
    ("rating", "expected"),
    [(0.0, "0.0"), (4.5, "4.5"), (5.0, "5.0"), (14 / 3, "4.666666666666667")],
)
def test_rating_tag_json(rating: float, expected: str) -> None:
    value = rating_tag_value(MakerReputation(days=3, total_rating=rating, total_reviews=2))
    assert value == f'["rating",{{"days":3,"total_rating":{expected},"total_reviews":2}}]'
    assert json.loads(value)[1]["total_rating"] == rating


@pytest.mark.parametrize(("value", "text"), [(5.0, "5"), (0.0, "0"), (2.5, "2.5"), (4.4375, "4.4375")])
def test_rating_event_total_rating_uses_rust_display(node: Keys, value: float, text: str) -> None:
    event = build_rating_event(
        node,
        d_pubkey="ab" * 32,
        total_reviews=1,
        total_rating=value,
        last_rating=5,
        max_rate=5,
        min_rate=5,
        days=0,
        settings=SETTINGS,
        now=10,
    )
    assert ["total_rating", text] in event.tags
    assert [t[0] for t in event.tags] == [
        "d",
        "expiration",
        "total_reviews",
        "total_rating",
        "last_rating",
        "max_rate",
        "min_rate",
        "z",
        "days",
    ]
    assert event.tags[1] == ["expiration", str(10 + 90 * DAY)]


INFO = NodeInfo(
    mostro_version="0.18.5",
    mostro_commit_hash="848ee3b",
    max_order_amount_sats=1_000_000,
    min_order_amount_sats=100,
    expiration_hours=24,
    expiration_seconds=900,
    fiat_currencies_accepted=("USD", "VES"),
    max_orders_per_response=10,
    fee=0.006,
    pow_bits=0,
    pow_first_contact_bits=4,
    protocol_version=2,
    hold_invoice_expiration_window_seconds=300,
    hold_invoice_cltv_delta_blocks=144,
    invoice_expiration_window_seconds=300,
    lnd_version="0.20.0-beta",
    lnd_node_pubkey="02ab",
    lnd_commit_hash="abc",
    lnd_node_alias="alias",
    lnd_chains=("bitcoin",),
    lnd_networks=("regtest",),
    lnd_uris=("02ab@127.0.0.1:9735",),
)


def test_info_event_tags_in_order(node: Keys) -> None:
    event = build_info_event(INFO, node, settings=SETTINGS, now=1700000000)
    assert event.kind == 38385
    assert event.content == ""
    assert event.created_at == 1700000000
    assert event.tags == [
        ["d", NODE_PK],
        ["mostro_version", "0.18.5"],
        ["mostro_commit_hash", "848ee3b"],
        ["max_order_amount", "1000000"],
        ["min_order_amount", "100"],
        ["expiration_hours", "24"],
        ["expiration_seconds", "900"],
        ["fiat_currencies_accepted", "USD,VES"],
        ["max_orders_per_response", "10"],
        ["fee", "0.006"],
        ["pow", "0"],
        ["pow_first_contact", "4"],
        ["protocol_version", "2"],
        ["hold_invoice_cltv_delta", "144"],
        ["lnd_version", "0.20.0-beta"],
        ["lnd_node_pubkey", "02ab"],
        ["lnd_commit_hash", "abc"],
        ["lnd_node_alias", "alias"],
        ["lnd_chains", "bitcoin"],
        ["lnd_networks", "regtest"],
        ["lnd_uris", "02ab@127.0.0.1:9735"],
        ["y", "mostro", "Example Mostro"],
        ["z", "info"],
        ["invoice_expiration_window", "300"],
        ["hold_invoice_expiration_window", "300"],
        ["bond_enabled", "false"],
        ["maintenance_mode", "false"],
    ]
    assert event.verify()


def test_info_event_maintenance_tag_true_and_nothing_else_changes(node: Keys) -> None:
    off = build_info_event(INFO, node, settings=SETTINGS, now=1).tags
    on = build_info_event(dataclasses.replace(INFO, maintenance_mode=True), node, settings=SETTINGS, now=1).tags
    assert on[-1] == ["maintenance_mode", "true"]
    assert on[:-1] == off[:-1]


def test_info_event_bond_tags_and_pow_advertising(node: Keys) -> None:
    bond = BondInfo(
        amount_pct=0.01,
        base_amount_sats=1000,
        apply_to="both",
        slash_on_waiting_timeout=True,
        slash_node_share_pct=1.0,
        payout_claim_window_days=7,
    )
    info = dataclasses.replace(INFO, bond=bond, fee=0.0, pow_bits=6, pow_first_contact_bits=4)
    tags = build_info_event(info, node, settings=SETTINGS, now=1).tags
    assert ["fee", "0"] in tags
    assert ["pow_first_contact", "6"] in tags
    assert tags[-8:] == [
        ["bond_enabled", "true"],
        ["maintenance_mode", "false"],
        ["bond_amount_pct", "0.01"],
        ["bond_base_amount_sats", "1000"],
        ["bond_apply_to", "both"],
        ["bond_slash_on_waiting_timeout", "true"],
        ["bond_slash_node_share_pct", "1"],
        ["bond_payout_claim_window_days", "7"],
    ]
    v1_node = dataclasses.replace(INFO, protocol_version=1, pow_bits=2, pow_first_contact_bits=9)
    assert ["pow_first_contact", "2"] in build_info_event(v1_node, node, settings=SETTINGS, now=1).tags


def test_dev_fee_event(node: Keys) -> None:
    event = build_dev_fee_event(
        node,
        order_id=ORDER.id,
        amount_sats=47,
        payment_hash="ab" * 32,
        destination="dev@mostro.network",
        network="mainnet",
        settings=SETTINGS,
        now=100,
    )
    assert event.kind == 8383
    assert event.tags == [
        ["order-id", str(ORDER.id)],
        ["amount", "47"],
        ["hash", "ab" * 32],
        ["destination", "dev@mostro.network"],
        ["network", "mainnet"],
        ["y", "mostro", "Example Mostro"],
        ["z", "dev-fee-payment"],
        ["expiration", str(100 + 365 * DAY)],
    ]


def test_rates_relay_list_and_metadata(node: Keys) -> None:
    rates = build_rates_event(
        node, rates={"USD": 65000.5, "VES": 2.5e9}, sources=["yadio", "coingecko"], update_interval_seconds=300, now=50
    )
    assert rates.kind == 30078
    assert rates.tags == [
        ["d", "mostro-rates"],
        ["published_at", "50"],
        ["source", "coingecko,yadio"],
        ["expiration", "650"],
    ]
    assert json.loads(rates.content) == {"BTC": {"USD": 65000.5, "VES": 2.5e9}}
    relays = build_relay_list_event(node, relays=["wss://a", "wss://b"], now=7)
    assert (relays.kind, relays.tags, relays.content) == (10002, [["r", "wss://a"], ["r", "wss://b"]], "")
    metadata = build_metadata_event(node, now=7, name="Mostro", picture="not a url", website="https://mostro.network")
    assert metadata is not None
    assert metadata.kind == 0
    assert metadata.content == '{"name":"Mostro","website":"https://mostro.network"}'
    assert build_metadata_event(node, now=7, picture="nope") is None


def test_monotonic_clock_per_kind_and_d() -> None:
    clock = MonotonicClock()
    assert [clock.next(38383, "a", 100) for _ in range(3)] == [100, 101, 102]
    assert clock.next(38383, "b", 100) == 100
    assert clock.next(38386, "a", 100) == 100
    assert clock.next(38383, "a", 500) == 500
    clock.forget(38383, "a")
    assert clock.next(38383, "a", 7) == 7


def test_monotonic_clock_is_thread_safe() -> None:
    clock = MonotonicClock()
    stamps: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(200):
            stamp = clock.next(38383, "x", 0)
            with lock:
                stamps.append(stamp)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(stamps) == list(range(800))
