"""Nudges between processes of one machine (nostrbridge/wake.py): a process without the bridge's
wakers (the job cluster, the web) reaches them by a datagram the bridge's process listens for."""

import threading

import pytest

from nostrbridge import wake


def test_a_datagram_from_another_process_calls_the_bridges_wakers():
    woken = threading.Event()
    wake.register_waker(wake.OUTBOX_CHANNEL, woken.set)
    try:
        # What `wake(OUTBOX_CHANNEL)` sends from a process with no waker of its own.
        wake.machine_hint(wake.machine_address(wake.OUTBOX_CHANNEL))
        assert woken.wait(timeout=30)
    finally:
        wake.unregister_waker(wake.OUTBOX_CHANNEL, woken.set)


def test_a_failing_waker_does_not_stop_the_others_or_later_hints():
    woken = threading.Semaphore(0)

    def broken() -> None:
        raise RuntimeError("loop closed")

    wake.register_waker(wake.INBOX_CHANNEL, broken)
    wake.register_waker(wake.INBOX_CHANNEL, woken.release)
    try:
        address = wake.machine_address(wake.INBOX_CHANNEL)
        wake.machine_hint(address)
        assert woken.acquire(timeout=30)
        wake.machine_hint(address)
        assert woken.acquire(timeout=30)
    finally:
        wake.unregister_waker(wake.INBOX_CHANNEL, broken)
        wake.unregister_waker(wake.INBOX_CHANNEL, woken.release)


@pytest.mark.parametrize("channel", [wake.OUTBOX_CHANNEL, wake.INBOX_CHANNEL])
def test_without_a_local_waker_the_nudge_goes_to_this_machines_bridge(channel, monkeypatch, settings):
    settings.REDIS_URL = ""
    sent = []
    monkeypatch.setattr(wake, "machine_hint", sent.append)

    wake.wake(channel)

    assert sent == [wake.machine_address(channel)]


def test_a_local_waker_is_called_directly_and_local_only_channels_send_nothing(monkeypatch):
    sent, woken = [], []
    monkeypatch.setattr(wake, "machine_hint", sent.append)
    wake.register_waker(wake.OUTBOX_CHANNEL, lambda: woken.append("outbox"))
    try:
        wake.wake(wake.OUTBOX_CHANNEL)
        wake.wake(wake.INVOICES_CHANNEL)
        wake.wake(wake.SIDE_CHANNEL)
    finally:
        wake._local_wakers[wake.OUTBOX_CHANNEL].clear()
    assert (woken, sent) == (["outbox"], [])


def test_addresses_differ_by_channel_and_database(monkeypatch, settings):
    outbox = wake.machine_address(wake.OUTBOX_CHANNEL)
    assert outbox != wake.machine_address(wake.INBOX_CHANNEL)
    monkeypatch.setitem(settings.DATABASES["default"], "NAME", "another.db")
    assert wake.machine_address(wake.OUTBOX_CHANNEL) != outbox
