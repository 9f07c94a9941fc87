"""The event loop of the commands that run one: uvloop by default, Python's own on request.

`MOSTRO_EVENT_LOOP` = `uvloop` (the default) or `asyncio`. uvloop runs the loop's own work
(each iteration, callbacks, timers, socket transports, thread hand-offs) in C instead of
asyncio's Python: −4 to −5 % of mostrod's instructions a trade (docs/PERFORMANCE.md, twelfth
round). Nothing else changes: the same tasks, threads, transactions and wire bytes.

Why `manage.py` calls this before Django loads: daphne, an installed app, creates the Twisted
loop of the whole node when Django imports the apps, through the policy in force then.

Reads no Django setting (none exists yet when manage.py calls it): the value comes from the
process environment, then `.env`, as every setting's (`mostro_site.config.env`). A value that is
neither word installs nothing here; the system check `mostro.E031` then names it and the command
refuses to start.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence

from mostro_site.config import env as _env  # noqa: F401 - reads .env into the environment first

logger = logging.getLogger(__name__)

LOOP_VARIABLE = "MOSTRO_EVENT_LOOP"
CHOICES = ("uvloop", "asyncio")
DEFAULT_CHOICE = "uvloop"
# The management commands that run an asyncio loop for the life of the process.
LOOP_COMMANDS = frozenset({"mostrod", "nostr_bridge", "invoice_watcher"})


def event_loop_choice() -> str:
    """The configured loop, lower-cased; may be a word outside CHOICES (the check refuses it)."""
    return os.environ.get(LOOP_VARIABLE, DEFAULT_CHOICE).strip().lower()


def install_event_loop(choice: str) -> str:
    """Set this process's event loop policy; returns the loop its new loops will be.

    `uvloop` that cannot be imported (a platform without wheels) falls back to asyncio's own:
    the node logs the loop it runs on (`running_loop_name`)."""
    if choice != "uvloop":
        asyncio.set_event_loop_policy(None)  # Python's default policy
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        asyncio.set_event_loop_policy(None)
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def install_for_command(argv: Sequence[str]) -> str | None:
    """From `manage.py`: the configured loop for a command in LOOP_COMMANDS, nothing otherwise."""
    if len(argv) < 2 or argv[1] not in LOOP_COMMANDS or event_loop_choice() not in CHOICES:
        return None
    return install_event_loop(event_loop_choice())


def running_loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """`uvloop` or `asyncio`: the package the loop's class comes from."""
    return type(loop).__module__.split(".")[0]


def log_event_loop(loop: asyncio.AbstractEventLoop) -> None:
    """One line at start: the loop the process runs on, and a warning when it is not the one
    configured (uvloop not installed, or the loop made before `manage.py` could choose)."""
    running = running_loop_name(loop)
    logger.info("event loop: %s", running)
    if running != event_loop_choice():
        logger.warning("event loop: %s configured (MOSTRO_EVENT_LOOP), running on %s", event_loop_choice(), running)
