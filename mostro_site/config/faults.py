"""Named kill points for the fault suite (tests/chaos/, docs/RELIABILITY.md).

`MOSTRO_FAULT_KILL_AT=<name>` makes the process SIGKILL itself the first time it reaches
`kill_point("<name>")`: the crash a power cut or the OOM killer causes, at a moment a test
chooses instead of a moment a timer hopes for. Unset (every real deployment), a kill point is
one comparison with None: the variable is read once, at import.

The whole process group dies when this process leads its own session (`manage.py mostrod`
started with `start_new_session`, and the job-cluster workers it forks): the node goes down
as one, as with `kill -9` of a container. A process inside somebody else's session (a
`manage.py shell` a test ran) kills only itself, never its parent.
"""

import os
import signal

KILL_AT_ENV = "MOSTRO_FAULT_KILL_AT"
POINTS = frozenset(
    {
        "take-committed",  # the take's transaction committed; its replies not published yet
        "hold-accepted",  # LND reported the seller's HTLC; the order not yet `active`
        "release-settled",  # `settled-hold-invoice` committed, the hold invoice settled at LND, nothing after
        "payout-claimed",  # the payout's hash claimed and committed; nothing sent
        "payout-sent",  # LND answered the payout; the outcome not recorded
        "devfee-hash-stored",  # the dev fee's hash committed (`in-flight`); nothing sent
        "devfee-sent",  # LND answered the dev-fee payment; the outcome not recorded
        "solver-settled",  # a solver's settle: decision committed, hold invoice settled at LND, payout queued
        "solver-canceled",  # a solver's cancel: decision committed, hold invoice canceled at LND
        "bond-accepted",  # LND reported a bond's HTLC accepted; the bond not yet `locked`
        "bond-released",  # a released bond's HTLC canceled at LND; the confirmation not recorded
        "bond-slash-settled",  # a slashed bond's HTLC settled at LND; the confirmation not recorded
        "bond-payout-sent",  # LND answered a bond payout; the outcome not recorded
    }
)

_kill_at = os.environ.get(KILL_AT_ENV) or None


def kill_point(name: str) -> None:
    """SIGKILL here when `MOSTRO_FAULT_KILL_AT` names this point (see the module docstring)."""
    if _kill_at is None or name != _kill_at:
        return
    if os.getpgrp() == os.getsid(0):
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
