"""Hold invoices committed by this process, handed to its invoice watcher (`orders.escrow_watcher`).

In `mostrod` the take, add-invoice and bond handlers run next to the watcher. After each commit
the new invoice's hash goes into a bounded queue and the watcher is nudged; it subscribes the
queued hashes without reading every watched invoice from the database, which it did at every
take (docs/PERFORMANCE.md). Whatever is not handed over this way (another process's invoices,
a queue that overflowed because no watcher runs here) the watcher's poll finds, as before.
"""

from collections import deque
from functools import partial

from nostrbridge.thread_connection import db_connection
from nostrbridge.wake import INVOICES_CHANNEL, wake_on_commit

# A process without a watcher (a bridge of its own) only ever fills it: the oldest hints drop out.
HANDOFF_LIMIT = 1000

_handed: deque[str] = deque(maxlen=HANDOFF_LIMIT)


def hold_invoice_follow_on_commit(*, payment_hash_hex: str) -> None:
    """After the caller's transaction commits: queue the hash, then nudge an in-process watcher."""
    db_connection().on_commit(partial(_handed.append, payment_hash_hex.lower()))  # transaction.on_commit's own call
    wake_on_commit(INVOICES_CHANNEL)


def hold_invoices_handed() -> list[str]:
    """The hashes queued since the last call, oldest first (thread-safe: deque's pops are atomic)."""
    taken = []
    while True:
        try:
            taken.append(_handed.popleft())
        except IndexError:
            return taken
