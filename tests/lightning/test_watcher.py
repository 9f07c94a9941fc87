"""InvoiceWatcher against the simulated network (restart, resubscription) and the fake."""

import asyncio

from lightning.fake import FakeLightningClient
from lightning.types import InvoiceState
from lightning.watcher import InvoiceWatcher
from tests.lightning.helpers import new_hold_invoice, pay_in_background, wait_for_state


class Recorder:
    def __init__(self) -> None:
        self.updates = []
        self.changed = asyncio.Event()

    async def __call__(self, update) -> None:
        self.updates.append(update)
        self.changed.set()

    async def wait_for(self, state, count=1):
        async with asyncio.timeout(5.0):
            while sum(1 for u in self.updates if u.state is state) < count:
                self.changed.clear()
                await self.changed.wait()

    def states(self):
        return [u.state for u in self.updates]


async def test_watcher_follows_open_accepted_settled(nodes):
    mostro, alice, _ = nodes
    preimage, hold = new_hold_invoice(mostro, 7_000)
    recorder = Recorder()
    watcher = InvoiceWatcher(mostro, recorder, hashes=lambda: [hold.payment_hash_hex])
    await watcher.start()
    await recorder.wait_for(InvoiceState.OPEN)

    payment = pay_in_background(alice, hold.payment_request)
    await recorder.wait_for(InvoiceState.ACCEPTED)
    await asyncio.to_thread(mostro.settle_invoice, preimage=preimage)
    await recorder.wait_for(InvoiceState.SETTLED)
    await asyncio.sleep(0.05)

    assert recorder.states() == [InvoiceState.OPEN, InvoiceState.ACCEPTED, InvoiceState.SETTLED]
    assert recorder.updates[1].amount_paid_sats == 7_000
    assert watcher.watched == frozenset()  # final state: the stream is dropped
    assert payment.result(timeout=5).preimage_hex == preimage.hex()
    await watcher.stop()
    await mostro.aclose()


async def test_watcher_resubscribes_after_node_restart(nodes, simnet):
    mostro, alice, _ = nodes
    preimage, hold = new_hold_invoice(mostro, 8_000)
    payment = pay_in_background(alice, hold.payment_request)
    wait_for_state(mostro, hold.payment_hash_hex, InvoiceState.ACCEPTED)
    recorder = Recorder()
    watcher = InvoiceWatcher(mostro, recorder, initial_backoff_seconds=0.05)
    watcher.add(hold.payment_hash_hex)
    await recorder.wait_for(InvoiceState.ACCEPTED)

    # when: LND restarts, cutting every stream, and is down for a moment
    await asyncio.to_thread(simnet.control.restart, "mostro", 0.3)
    # then: the watcher resubscribes and LND replays the current state
    await recorder.wait_for(InvoiceState.ACCEPTED, count=2)
    # and a brand-new watcher (a restarted daemon) sees ACCEPTED at once
    fresh = Recorder()
    second = InvoiceWatcher(mostro, fresh, hashes=lambda: [hold.payment_hash_hex])
    await second.start()
    await fresh.wait_for(InvoiceState.ACCEPTED)

    await asyncio.to_thread(mostro.settle_invoice, preimage=preimage)
    await recorder.wait_for(InvoiceState.SETTLED)
    await fresh.wait_for(InvoiceState.SETTLED)
    assert recorder.states() == [InvoiceState.ACCEPTED, InvoiceState.ACCEPTED, InvoiceState.SETTLED]
    assert fresh.states() == [InvoiceState.ACCEPTED, InvoiceState.SETTLED]
    assert payment.result(timeout=5).status == "SUCCEEDED"
    await watcher.stop()
    await second.stop()
    await mostro.aclose()


async def test_watcher_add_remove_stop_with_fake_client():
    fake = FakeLightningClient()
    _, first = new_hold_invoice(fake, 1_000)
    _, second = new_hold_invoice(fake, 2_000)
    recorder = Recorder()
    watcher = InvoiceWatcher(fake, recorder)
    watcher.add(first.payment_hash_hex)
    watcher.add(first.payment_hash_hex)  # already watched: no second stream
    watcher.add(second.payment_hash_hex)
    await recorder.wait_for(InvoiceState.OPEN, count=2)

    watcher.remove(second.payment_hash_hex)
    await asyncio.to_thread(fake.mark_accepted, first.payment_hash_hex)
    await recorder.wait_for(InvoiceState.ACCEPTED)
    await watcher.stop()

    assert watcher.watched == frozenset()
    assert [(u.payment_hash_hex, u.state) for u in recorder.updates] == [
        (first.payment_hash_hex, InvoiceState.OPEN),
        (second.payment_hash_hex, InvoiceState.OPEN),
        (first.payment_hash_hex, InvoiceState.ACCEPTED),
    ]


async def test_failing_callback_does_not_end_the_stream():
    fake = FakeLightningClient()
    _, hold = new_hold_invoice(fake, 1_000)
    seen = []

    async def flaky(update):
        seen.append(update.state)
        if update.state is InvoiceState.OPEN:
            raise RuntimeError("handler bug")

    watcher = InvoiceWatcher(fake, flaky)
    watcher.add(hold.payment_hash_hex)
    await asyncio.sleep(0.05)
    await asyncio.to_thread(fake.mark_accepted, hold.payment_hash_hex)
    await asyncio.sleep(0.05)
    await watcher.stop()
    assert seen == [InvoiceState.OPEN, InvoiceState.ACCEPTED]
