"""The event loop of the node's long-running commands (`mostro_site.config.event_loop`)."""

import asyncio
import logging
import subprocess
import sys

import pytest
import uvloop
from django.core import checks
from django.test import override_settings

from mostro_site.checks import check_mostro_settings
from mostro_site.config import event_loop
from mostro_site.config.event_loop import (
    LOOP_COMMANDS,
    install_event_loop,
    install_for_command,
    log_event_loop,
    running_loop_name,
)
from tests.relays.net import REPO_ROOT


@pytest.fixture(autouse=True)
def default_policy():
    """Each test starts and ends on Python's default policy: other tests' loops are asyncio's."""
    asyncio.set_event_loop_policy(None)
    yield
    asyncio.set_event_loop_policy(None)


def _new_loop_name() -> str:
    loop = asyncio.new_event_loop()
    try:
        return running_loop_name(loop)
    finally:
        loop.close()


@pytest.mark.parametrize(("written", "read"), [(None, "uvloop"), ("asyncio", "asyncio"), (" UVLoop ", "uvloop")])
def test_the_choice_defaults_to_uvloop(written, read, monkeypatch):
    if written is None:
        monkeypatch.delenv("MOSTRO_EVENT_LOOP", raising=False)
    else:
        monkeypatch.setenv("MOSTRO_EVENT_LOOP", written)
    assert event_loop.event_loop_choice() == read


def test_uvloop_makes_uvloops_and_asyncio_asyncios():
    assert install_event_loop("uvloop") == "uvloop"
    assert type(asyncio.get_event_loop_policy()) is uvloop.EventLoopPolicy
    assert _new_loop_name() == "uvloop"

    assert install_event_loop("asyncio") == "asyncio"
    assert type(asyncio.get_event_loop_policy()) is asyncio.DefaultEventLoopPolicy
    assert _new_loop_name() == "asyncio"


def test_uvloop_missing_falls_back_to_asyncio(monkeypatch):
    install_event_loop("uvloop")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    assert install_event_loop("uvloop") == "asyncio"
    assert _new_loop_name() == "asyncio"


@pytest.mark.parametrize("command", sorted(LOOP_COMMANDS))
def test_the_loop_commands_get_the_configured_loop(command, monkeypatch):
    monkeypatch.delenv("MOSTRO_EVENT_LOOP", raising=False)
    assert install_for_command(["manage.py", command, "--grace", "5"]) == "uvloop"
    assert _new_loop_name() == "uvloop"
    monkeypatch.setenv("MOSTRO_EVENT_LOOP", "asyncio")
    assert install_for_command(["manage.py", command]) == "asyncio"
    assert _new_loop_name() == "asyncio"


@pytest.mark.parametrize(
    ("argv", "choice"),
    [
        (["manage.py", "migrate"], "uvloop"),
        (["manage.py", "qcluster"], "uvloop"),  # no loop of its own
        (["manage.py"], "uvloop"),
        (["manage.py", "mostrod"], "libuv"),  # refused by mostro.E031 once Django loads
    ],
)
def test_other_commands_and_a_bad_word_install_nothing(argv, choice, monkeypatch):
    monkeypatch.setenv("MOSTRO_EVENT_LOOP", choice)
    assert install_for_command(argv) is None
    assert type(asyncio.get_event_loop_policy()) is asyncio.DefaultEventLoopPolicy


def _logged_for_a_new_loop(caplog) -> list[tuple[str, str]]:
    loop = asyncio.new_event_loop()
    caplog.clear()
    try:
        with caplog.at_level(logging.INFO, logger=event_loop.__name__):
            log_event_loop(loop)
    finally:
        loop.close()
    return [(r.levelname, r.getMessage()) for r in caplog.records]


def test_the_running_loop_is_logged_and_a_mismatch_warned(monkeypatch, caplog):
    monkeypatch.setenv("MOSTRO_EVENT_LOOP", "uvloop")
    assert _logged_for_a_new_loop(caplog) == [
        ("INFO", "event loop: asyncio"),
        ("WARNING", "event loop: uvloop configured (MOSTRO_EVENT_LOOP), running on asyncio"),
    ]
    install_event_loop("uvloop")
    assert _logged_for_a_new_loop(caplog) == [("INFO", "event loop: uvloop")]


@pytest.mark.parametrize(("value", "refused"), [("uvloop", False), ("asyncio", False), ("libuv", True), ("", True)])
def test_the_check_refuses_any_other_word(value, refused):
    with override_settings(MOSTRO_EVENT_LOOP=value):
        found = [(m.id, m.msg, m.level) for m in check_mostro_settings() if m.id == "mostro.E031"]
    expected = (f"MOSTRO_EVENT_LOOP={value!r} is neither uvloop nor asyncio.", checks.ERROR)
    assert found == ([("mostro.E031", *expected)] if refused else [])


@pytest.mark.parametrize(("choice", "loop"), [("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_manage_py_chooses_before_django_loads_daphnes_loop(choice, loop):
    # daphne (an installed app) makes the node's Twisted loop when Django imports the apps:
    # manage.py's own main, with the command run replaced by "load Django, name that loop".
    probe = (
        "import sys; sys.argv = ['manage.py', 'mostrod']\n"
        "import django.core.management as management\n"
        "def run(argv):\n"
        "    import django; django.setup(); import daphne.server\n"
        "    print(type(daphne.server.twisted_loop).__module__.split('.')[0])\n"
        "management.execute_from_command_line = run\n"
        "import manage; manage.main()\n"
    )
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "mostro_site.settings.test", "MOSTRO_EVENT_LOOP": choice}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == loop, result.stderr
