"""Support for the relay-bridge tests and benchmark.

* `SdkMostroClient`: Mostro clients built on nostr-sdk, the reference peer: kind-14 requests
  encrypted with nostr-sdk's NIP-44 and signed by its EventBuilder, replies read from a relay
  subscription and decrypted with nostr-sdk. Message JSON comes from our protocol package.
* `BridgeProcess`: `manage.py nostr_bridge` as a child process (its own database, key, relays).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import nostr_sdk as sdk

from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import IdsPayload
from tests.relays.net import REPO_ROOT, read_line, terminate


@dataclass
class Reply:
    event_id: str
    request_id: int | None
    action: str
    received_at: float
    body: dict = field(default_factory=dict, repr=False)


@dataclass
class SdkMostroClient:
    """`clients` simulated users (one trade key each) sharing one nostr-sdk relay connection."""

    relay_urls: list[str]
    node_pubkey: str
    clients: int = 1
    keys: list[sdk.Keys] = field(default_factory=list)
    replies: dict[int, list[Reply]] = field(default_factory=dict)
    sent_at: dict[int, float] = field(default_factory=dict)
    _next_request: int = 1

    async def connect(self) -> None:
        self.keys = self.keys or [sdk.Keys.generate() for _ in range(self.clients)]
        self._by_pubkey = {k.public_key().to_hex(): k for k in self.keys}
        self._node = sdk.PublicKey.parse(self.node_pubkey)
        self.client = sdk.ClientBuilder().notification_channel_size(100_000).build()
        for url in self.relay_urls:
            await self.client.add_relay(sdk.RelayUrl.parse(url))
        await self.client.connect()
        await self._wait_connected()
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read(self.client.notifications()))
        reply_filter = sdk.Filter().kind(sdk.Kind(14)).author(self._node).pubkeys([k.public_key() for k in self.keys])
        await self.client.subscribe(sdk.ReqTarget.auto([reply_filter]))

    async def _wait_connected(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            relays = await self.client.relays()
            if relays and all(r.status() == sdk.RelayStatus.CONNECTED for r in relays.values()):
                return
            await asyncio.sleep(0.02)
        raise TimeoutError("nostr-sdk client did not connect")

    async def close(self) -> None:
        self._reader.cancel()
        await self.client.shutdown()

    # -- requests ---------------------------------------------------------------------
    def orders_request(
        self, *, client: int = 0, order_id: uuid.UUID | None = None, created_at: int | None = None
    ) -> tuple[int, sdk.Event]:
        """An `orders` query; for an order nobody has, the node answers `cant-do not_found`."""
        request_id = self._next_request
        self._next_request += 1
        message = Message.new(Action.ORDERS, request_id=request_id, payload=IdsPayload([order_id or uuid.uuid4()]))
        keys = self.keys[client % len(self.keys)]
        content = sdk.nip44_encrypt(
            keys.secret_key(), self._node, f"[{message.to_json()},null,null]", sdk.Nip44Version.V2
        )
        tags = [sdk.Tag.parse(["p", self.node_pubkey]), sdk.Tag.parse(["expiration", str(int(time.time()) + 3600)])]
        builder = sdk.EventBuilder(sdk.Kind(14), content).tags(tags)
        if created_at is not None:
            builder = builder.custom_created_at(sdk.Timestamp.from_secs(created_at))
        return request_id, builder.finalize(keys)

    async def send(self, event: sdk.Event, *, relays: list[str] | None = None) -> None:
        target = sdk.SendEventTarget.to([sdk.RelayUrl.parse(u) for u in relays]) if relays else None
        await self.client.send_event(event, target=target) if target else await self.client.send_event(event)

    async def send_orders(self, count: int, *, relays: list[str] | None = None) -> list[int]:
        ids = []
        for i in range(count):
            request_id, event = self.orders_request(client=i)
            self.sent_at[request_id] = time.monotonic()
            await self.send(event, relays=relays)
            ids.append(request_id)
        return ids

    # -- replies ----------------------------------------------------------------------
    async def _read(self, stream: sdk.ClientNotificationStream) -> None:
        while (note := await stream.next()) is not None:
            if note.is_new_event():
                self._record(note.event)

    def _record(self, event: sdk.Event, arrived: float | None = None) -> None:
        recipient = next((t.to_vec()[1] for t in event.tags() if t.to_vec()[0] == "p"), "")
        keys = self._by_pubkey.get(recipient)
        if keys is None or event.author().to_hex() != self.node_pubkey:
            return
        plaintext = sdk.nip44_decrypt(keys.secret_key(), event.author(), event.content())
        body = next(iter(json.loads(plaintext)[0].values()))
        received_at = time.monotonic() if arrived is None else arrived
        reply = Reply(event.id().to_hex(), body.get("request_id"), body["action"], received_at, body)
        seen = self.replies.setdefault(reply.request_id, [])
        if all(r.event_id != reply.event_id for r in seen):  # the same event from two relays
            seen.append(reply)
        self._arrived.set()

    async def wait_for(self, request_ids: list[int], timeout_s: float = 20.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not all(r in self.replies for r in request_ids):
                self._arrived.clear()
                await self._arrived.wait()

    def answered(self, request_ids: list[int]) -> int:
        return sum(1 for r in request_ids if r in self.replies)

    def latency_s(self, request_id: int) -> float:
        return self.replies[request_id][0].received_at - self.sent_at[request_id]


async def fetch_node_events(relay_url: str, node_pubkey: str, kind: int, timeout_s: float = 3.0) -> list[dict]:
    client = sdk.Client()
    await client.add_relay(sdk.RelayUrl.parse(relay_url))
    await client.connect()
    try:
        query = sdk.Filter().kind(sdk.Kind(kind)).author(sdk.PublicKey.parse(node_pubkey))
        events = await client.fetch_events(sdk.ReqTarget.auto([query]), timedelta(seconds=timeout_s))
        return [json.loads(e.as_json()) for e in events]
    finally:
        await client.shutdown()


# -- the bridge as a child process ---------------------------------------------------------
def bridge_env(*, database_url: str, relays: list[str], nsec_hex: str, var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        DJANGO_SETTINGS_MODULE="mostro_site.settings.local",
        DJANGO_DEBUG="0",
        DATABASE_URL=database_url,
        MOSTRO_VAR_DIR=str(var_dir),
        MOSTRO_NSEC_PRIVKEY=nsec_hex,
        MOSTRO_RELAYS=",".join(relays),
        LIGHTNING_BACKEND="lightning.fake.FakeLightningClient",
        MOSTRO_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout_s: float = 120) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout_s
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


class BridgeProcess:
    def __init__(self, env: dict[str, str], log_path: Path, *args: str):
        self.env = env
        self.log_path = log_path
        self.args = args
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        cmd = [sys.executable, "manage.py", "nostr_bridge", *self.args]
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO_ROOT, env=self.env, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = read_line(self.proc, max(deadline - time.monotonic(), 0.01))
            if line.strip() == "READY":
                return
            if self.proc.poll() is not None:
                break
        self.kill()
        raise RuntimeError(f"bridge did not start:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        terminate(self.proc, hard=True)

    def sigterm(self, timeout_s: float = 30.0) -> tuple[int, str]:
        """Stop gracefully; return the exit code and what it printed after READY."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, out

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)
