"""`manage.py nostr_bridge` as real processes: killed mid-stream, stopped with SIGTERM, and two
of them sharing PostgreSQL + Redis. Each bridge has its own database and node key; the test
reads the database directly (sqlite3 / psycopg) and talks to the node through a real relay
with nostr-sdk."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from nostrbridge.node_identity import xonly_pubkey_hex
from tests.e2e.bridge_support import BridgeProcess, SdkMostroClient, bridge_env, manage

DATABASE_URL = os.environ.get("DATABASE_URL", "")
ON_POSTGRES = DATABASE_URL.startswith(("postgres://", "postgresql://"))


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated database file per session; each test copies it (migrate takes ~2 s)."""
    path = tmp_path_factory.mktemp("bridge-template") / "template.sqlite3"
    env = bridge_env(
        database_url=f"sqlite:///{path}", relays=["ws://127.0.0.1:9"], nsec_hex="2" * 64, var_dir=path.parent
    )
    manage(env, "migrate", "-v0")
    return path


@pytest.fixture
def node(tmp_path: Path, migrated_sqlite: Path, local_relay) -> Iterator[Node]:
    db = tmp_path / "bridge.sqlite3"
    shutil.copy(migrated_sqlite, db)
    return Node(tmp_path, f"sqlite:///{db}", [local_relay.url])


class Node:
    """A node key, a database and the env to run bridges on them."""

    def __init__(self, workdir: Path, database_url: str, relays: list[str], **extra: str):
        self.nsec = os.urandom(32).hex()
        self.pubkey = xonly_pubkey_hex(bytes.fromhex(self.nsec))
        self.database_url = database_url
        self.relays = relays
        self.env = bridge_env(database_url=database_url, relays=relays, nsec_hex=self.nsec, var_dir=workdir, **extra)
        self.workdir = workdir

    def bridge(self, name: str = "bridge") -> BridgeProcess:
        return BridgeProcess(self.env, self.workdir / f"{name}.log", "--publish-timeout", "2", "--grace", "10")

    def client(self, clients: int = 10) -> SdkMostroClient:
        return SdkMostroClient(self.relays, self.pubkey, clients=clients)

    def query(self, sql: str) -> list[tuple]:
        if self.database_url.startswith("sqlite"):
            with sqlite3.connect(urlsplit(self.database_url).path) as db:
                return db.execute(sql).fetchall()
        import psycopg

        with psycopg.connect(self.database_url) as db:
            return db.execute(sql).fetchall()

    def inbound_statuses(self) -> dict[str, int]:
        return dict(self.query("SELECT status, COUNT(*) FROM nostrbridge_inboundevent GROUP BY status"))

    def reply_count(self) -> int:
        return self.query("SELECT COUNT(*) FROM nostrbridge_outboundmessage WHERE kind = 14")[0][0]


async def stream(client: SdkMostroClient, count: int, per_second: float) -> list[int]:
    sent = []
    for index in range(count):
        request_id, event = client.orders_request(client=index)
        await client.send(event)
        sent.append(request_id)
        await asyncio.sleep(1 / per_second)
    return sent


def answered_once(client: SdkMostroClient, requests: list[int]) -> bool:
    return all(len(client.replies.get(r, [])) == 1 for r in requests)


async def test_bridge_killed_mid_stream_loses_nothing_and_doubles_nothing(node: Node):
    bridge = node.bridge()
    await bridge.astart()
    client = node.client()
    await client.connect()

    sending = asyncio.create_task(stream(client, 150, per_second=50))
    await asyncio.sleep(1.2)
    killed = bridge.proc.pid
    bridge.kill()  # SIGKILL while events flow: handlers, intake buffer and publisher all cut off
    await asyncio.sleep(0.5)
    await bridge.astart()
    requests = await sending
    await client.wait_for(requests, timeout_s=45)
    await client.close()
    code, _ = await asyncio.to_thread(bridge.sigterm)

    assert answered_once(client, requests)
    assert node.inbound_statuses() == {"done": 150}
    assert node.reply_count() == 150
    assert code == 0
    handled_by = node.query(f"SELECT locked_by LIKE '%:{killed}:%', COUNT(*) FROM nostrbridge_inboundevent GROUP BY 1")
    assert dict(handled_by).keys() == {0, 1}  # both the killed and the restarted process did part of the work


async def test_sigterm_finishes_in_flight_work_and_the_next_start_takes_the_rest(node: Node):
    bridge = node.bridge()
    await bridge.astart()
    client = node.client()
    await client.connect()
    requests = [client.orders_request(client=i) for i in range(300)]
    await asyncio.gather(*(client.send(event) for _, event in requests))
    ids = [request_id for request_id, _ in requests]
    async with asyncio.timeout(30):
        while client.answered(ids) < 20:  # noqa: ASYNC110 — replies arrive through nostr-sdk
            await asyncio.sleep(0.01)

    code, output = await asyncio.to_thread(bridge.sigterm)

    assert (code, output.split()[-1]) == (0, "STOPPED")
    statuses = node.inbound_statuses()
    assert set(statuses) <= {"done", "received"}  # no lease left behind
    # every handled request's reply left with the stop, none is waiting in the outbox
    assert node.query("SELECT status, COUNT(*) FROM nostrbridge_outboundmessage WHERE kind = 14 GROUP BY status") == [
        ("sent", statuses["done"])
    ]

    await bridge.astart()
    await client.wait_for(ids, timeout_s=45)
    await client.close()
    await asyncio.to_thread(bridge.sigterm)
    assert answered_once(client, ids)
    assert node.inbound_statuses() == {"done": 300}


@pytest.fixture
def postgres_node(tmp_path: Path, local_relay) -> Iterator[Node]:
    import psycopg

    parts = urlsplit(DATABASE_URL)
    name = f"mostro_bridge_{uuid.uuid4().hex[:12]}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    redis = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    node = Node(tmp_path, urlunsplit(parts._replace(path=f"/{name}")), [local_relay.url], REDIS_URL=redis)
    try:
        manage(node.env, "migrate", "-v0")
        yield node
    finally:
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
@pytest.mark.skipif(not ON_POSTGRES, reason="needs PostgreSQL: run the suite with DATABASE_URL=postgres://...")
async def test_two_bridges_on_postgres_and_redis_process_every_event_once(postgres_node: Node):
    first, second = postgres_node.bridge("first"), postgres_node.bridge("second")
    await asyncio.gather(first.astart(), second.astart())
    client = postgres_node.client(clients=20)
    await client.connect()

    requests = [client.orders_request(client=i) for i in range(300)]
    await asyncio.gather(*(client.send(event) for _, event in requests))
    ids = [request_id for request_id, _ in requests]
    await client.wait_for(ids, timeout_s=60)
    await client.close()
    codes = await asyncio.gather(asyncio.to_thread(first.sigterm), asyncio.to_thread(second.sigterm))

    assert answered_once(client, ids)  # both bridges saw every event; one reply each
    assert postgres_node.inbound_statuses() == {"done": 300}
    assert postgres_node.reply_count() == 300
    assert [code for code, _ in codes] == [0, 0]
