"""Nudges between the node's processes without Redis: `wake()` → the bridge's wake socket.

Without it, a reply written outside the bridge's process (a payout's `purchase-completed`, by
`mostrod`'s forked job worker) waited for the publisher's next poll (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from nostrbridge import outbox, wake
from nostrbridge.bridge.wake_socket import WakeSocket
from nostrbridge.models import OutboundMessage, OutboundStatus
from nostrbridge.outbox import enqueue_message
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.wake import INBOX_CHANNEL, INVOICES_CHANNEL, OUTBOX_CHANNEL
from tests.nostrbridge.bridge_helpers import (  # noqa: F401 — close_db_thread_connections is a fixture
    close_db_thread_connections,
    db_eventually,
    eventually,
    running_bridge,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def var_dir(settings, tmp_path_factory) -> Path:
    # A short path: a Unix socket's path is limited to ~107 bytes.
    path = tmp_path_factory.mktemp("w")
    settings.VAR_DIR = path
    settings.REDIS_URL = ""
    return path


def receiver(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


def datagrams(sock: socket.socket) -> list[bytes]:
    received = []
    while True:
        try:
            received.append(sock.recv(64))
        except BlockingIOError:
            return received


def test_wake_without_local_wakers_or_redis_sends_one_byte_per_nudge_to_the_bridge_socket(var_dir):
    sock = receiver(var_dir / "bridge-wake.sock")
    try:
        wake.wake(OUTBOX_CHANNEL)
        wake.wake(INBOX_CHANNEL)
        wake.wake(INVOICES_CHANNEL)  # the watcher is only nudged in its own process

        assert datagrams(sock) == [b"o", b"i"]
    finally:
        sock.close()


def test_the_socket_address_follows_the_var_directory(settings, tmp_path_factory, monkeypatch):
    """Joined once per directory (not at every nudge), a changed VAR_DIR is followed at once."""
    first, second = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    settings.REDIS_URL = ""
    sent: list[tuple[str, bytes]] = []
    monkeypatch.setattr(wake, "send_hint", lambda address, data: sent.append((address, data)))
    wake._socket_address.cache_clear()
    for var_dir in (first, first, second):
        settings.VAR_DIR = var_dir
        wake.wake(OUTBOX_CHANNEL)
    assert sent == [(str(first / "bridge-wake.sock"), b"o")] * 2 + [(str(second / "bridge-wake.sock"), b"o")]
    assert str(wake.wake_socket_path()) == sent[-1][0]
    assert (wake._socket_address.cache_info().hits, wake._socket_address.cache_info().misses) == (1, 2)


def test_wake_without_a_listening_bridge_is_silent(var_dir):
    wake.wake(OUTBOX_CHANNEL)  # no socket file: nothing raised, the bridge's poll finds the row

    assert list(var_dir.iterdir()) == []


def test_wake_with_a_local_waker_or_redis_sends_no_datagram(var_dir, settings, monkeypatch):
    sock = receiver(var_dir / "bridge-wake.sock")
    calls: list[str] = []
    local = lambda: calls.append("local")  # noqa: E731
    wake.register_waker(OUTBOX_CHANNEL, local)
    try:
        wake.wake(OUTBOX_CHANNEL)
        wake.unregister_waker(OUTBOX_CHANNEL, local)
        settings.REDIS_URL = "redis://127.0.0.1:6379/15"
        monkeypatch.setattr(wake, "_wake_remote", lambda channel: calls.append(f"redis {channel}"))
        wake.wake(INBOX_CHANNEL)

        assert calls == ["local", "redis mostro-inbox"]
        assert datagrams(sock) == []
    finally:
        wake.unregister_waker(OUTBOX_CHANNEL, local)
        sock.close()


async def test_wake_socket_runs_each_waker_once_for_the_datagrams_queued_since_its_last_read(var_dir):
    calls: list[str] = []
    path = var_dir / "bridge-wake.sock"
    listener = WakeSocket(path, {OUTBOX_CHANNEL: lambda: calls.append("o"), INBOX_CHANNEL: lambda: calls.append("i")})
    assert listener.open()
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        for code in (b"o", b"o", b"i", b"o", b"x"):  # b"x": unknown, ignored
            sender.sendto(code, str(path))
        await eventually(lambda: len(calls) == 2, timeout_s=5)
        await asyncio.sleep(0.05)  # nothing more arrives

        assert sorted(calls) == ["i", "o"]
    finally:
        sender.close()
        listener.close()
    assert not path.exists()


async def test_a_dead_bridges_socket_file_is_replaced_and_a_live_ones_left_alone(var_dir):
    path = var_dir / "bridge-wake.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(path))
    dead.close()  # the file stays behind, as after a crash
    calls: list[str] = []
    first = WakeSocket(path, {OUTBOX_CHANNEL: lambda: calls.append("first")})
    second = WakeSocket(path, {OUTBOX_CHANNEL: lambda: calls.append("second")})
    try:
        assert first.open() is True
        assert second.open() is False
        wake.wake(OUTBOX_CHANNEL)
        await eventually(lambda: calls == ["first"], timeout_s=5)

        assert (first.listening, second.listening, path.exists()) == (True, False, True)
    finally:
        second.close()
        first.close()
    assert not path.exists()


def reply_status(recipient: str) -> str:
    return OutboundMessage.objects.get(kind=14, recipient_pubkey=recipient).status


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_db_thread_connections")
async def test_a_reply_written_by_another_process_is_published_on_its_nudge_not_the_poll(
    local_relay, var_dir, settings, monkeypatch
):
    settings.MOSTRO_RELAYS = [local_relay.url]
    recipient = Keys.generate().public_key_hex
    message = Message.new(Action.PURCHASE_COMPLETED, request_id=None, payload=None)
    # Written as a job worker of mostrod writes it: no waker of this process is reached.
    monkeypatch.setattr(outbox, "_wake_publisher", lambda: None)
    async with running_bridge(publish_poll_s=60, inbox_poll_s=60, node_events=False):
        await sync_to_async(enqueue_message)(recipient_pubkey=recipient, message=message)
        await asyncio.sleep(0.3)
        assert await sync_to_async(reply_status)(recipient) == OutboundStatus.PENDING

        # The worker's commit hook: nostrbridge.wake.wake() in a process without wakers or Redis.
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "mostro_site.settings.test",
            "MOSTRO_VAR_DIR": str(var_dir),
            "REDIS_URL": "",
        }
        code = "import django; django.setup(); from nostrbridge.wake import wake; wake('mostro-outbox')"
        await asyncio.to_thread(subprocess.run, [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, check=True)

        await db_eventually(lambda: reply_status(recipient) == OutboundStatus.SENT, timeout_s=10)
