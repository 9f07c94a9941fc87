"""The node's safety-net polls come from the settings (docs/OPERATIONS.md §Idle wake-ups): the
bridge's inbox, outbox and configuration polls, and the embedded invoice watcher's poll; a poll
that would never wait refuses to start."""

import math

import pytest
from django.conf import settings
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from mostro_site.checks import check_mostro_settings
from mostro_site.config.env import env_bool_or_text, env_float_or_text
from mostro_site.runtime.node import NodeOptions, NodeRuntime
from nostrbridge.bridge import BridgeOptions
from nostrbridge.bridge.polls import poll_options
from nostrbridge.bridge.worker import BridgeWorker


def _runtime(**options) -> NodeRuntime:
    return NodeRuntime(NodeOptions(**options), write=lambda line: None, lightning=None, relays=(), protocol_version=2)


def test_defaults_are_the_bridges_own():
    defaults = BridgeOptions()
    built = _runtime()._bridge_options()
    assert (built.inbox_poll_s, built.publish_poll_s, built.config_poll_s) == (0.25, 1.0, 3.0)
    assert (defaults.inbox_poll_s, defaults.publish_poll_s, defaults.config_poll_s) == (0.25, 1.0, 3.0)


@override_settings(
    MOSTRO_BRIDGE_INBOX_POLL_SECONDS=2.5,
    MOSTRO_BRIDGE_PUBLISH_POLL_SECONDS=7.0,
    MOSTRO_BRIDGE_CONFIG_POLL_SECONDS=11.0,
)
def test_mostrods_bridge_takes_the_settings():
    assert poll_options() == {"inbox_poll_s": 2.5, "publish_poll_s": 7.0, "config_poll_s": 11.0}
    built = _runtime(cluster=False)._bridge_options()
    assert (built.inbox_poll_s, built.publish_poll_s, built.config_poll_s) == (2.5, 7.0, 11.0)
    assert built.periodic_jobs is True  # no cluster: the bridge runs the node-event jobs itself


def test_the_channels_worker_looks_for_ended_consumers_once_a_second():
    # asgiref's default 0.1 s woke an idle node's event loop ten times a second.
    assert BridgeWorker.application_checker_interval == 1.0


# --- a bad poll refuses to start (mostro.E020, E021; W003) ---------------------------------

POLL_SETTINGS = (
    "MOSTRO_BRIDGE_INBOX_POLL_SECONDS",
    "MOSTRO_BRIDGE_PUBLISH_POLL_SECONDS",
    "MOSTRO_BRIDGE_CONFIG_POLL_SECONDS",
    "MOSTRO_INVOICE_WATCHER_POLL_SECONDS",
    "MOSTRO_Q_POLL_SECONDS",
)
POLL_HINT = "Seconds between two polls, above 0 (docs/OPERATIONS.md §Idle wake-ups)."


def _overrides(name: str | None = None, value: object = None, **q_cluster) -> dict:
    """One poll setting (or Q_CLUSTER keys) replaced; MOSTRO_Q_POLL_SECONDS is Q_CLUSTER["poll"]."""
    # Loopback off: under override_settings its test-only warning (mostro.W001) would show.
    overrides: dict = {"Q_CLUSTER": {**settings.Q_CLUSTER, **q_cluster}, "MOSTRO_LNURL_ALLOW_LOOPBACK": False}
    if name == "MOSTRO_Q_POLL_SECONDS":
        overrides["Q_CLUSTER"]["poll"] = value
    elif name:
        overrides[name] = value
    return overrides


def _poll_messages(name: str | None = None, value: object = None, **q_cluster) -> list[tuple[str, str, str]]:
    """(id, message, hint) of every message of the settings check: the test settings give none."""
    with override_settings(**_overrides(name, value, **q_cluster)):
        return [(m.id, m.msg, m.hint) for m in check_mostro_settings()]


def test_the_default_polls_pass():
    assert _poll_messages() == []


@pytest.mark.parametrize("name", POLL_SETTINGS)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.0, "{name}=0.0 must be a finite number of seconds above 0."),
        (0, "{name}=0 must be a finite number of seconds above 0."),
        (-1.0, "{name}=-1.0 must be a finite number of seconds above 0."),
        (math.nan, "{name}=nan must be a finite number of seconds above 0."),
        (math.inf, "{name}=inf must be a finite number of seconds above 0."),
        ("abc", "{name}='abc' is not a number."),
        (True, "{name}=True is not a number."),
    ],
)
def test_a_poll_that_never_waits_is_refused(name, value, message):
    assert _poll_messages(name, value) == [("mostro.E020", message.format(name=name), POLL_HINT)]


@pytest.mark.parametrize("name", POLL_SETTINGS)
def test_a_poll_over_an_hour_is_only_warned_of(name):
    assert _poll_messages(name, 3600.0) == []
    assert _poll_messages(name, 3600.5) == [
        ("mostro.W003", f"{name}=3600.5 is over an hour between polls.", "Seconds, not milliseconds?")
    ]
    with override_settings(**_overrides(name, 3600.5)):
        assert [m.level for m in check_mostro_settings()] == [checks.WARNING]


def test_a_scheduler_neither_true_nor_false_is_refused():
    assert _poll_messages(scheduler=False) == []
    assert _poll_messages(scheduler="ture") == [
        ("mostro.E021", "MOSTRO_Q_SCHEDULER='ture' is neither true nor false.", "true or false.")
    ]


@pytest.mark.parametrize(
    ("written", "read"),
    [
        (None, 0.25),
        ("2.5", 2.5),
        ("0", 0.0),
        ("-1", -1.0),
        ("1e3", 1000.0),
        ("0.25s", 0.25),
        ("abc", "abc"),
        ("nan", "nan"),
        ("inf", "inf"),
    ],
)
def test_the_float_reader_keeps_what_it_cannot_read(monkeypatch, written, read):
    monkeypatch.delenv("MOSTRO_TEST_POLL_SECONDS", raising=False)
    if written is not None:
        monkeypatch.setenv("MOSTRO_TEST_POLL_SECONDS", written)
    assert env_float_or_text("MOSTRO_TEST_POLL_SECONDS", default=0.25) == read


@pytest.mark.parametrize(
    ("written", "read"),
    [
        (None, True),
        ("true", True),
        ("Yes", True),
        ("1", True),
        ("false", False),
        ("OFF", False),
        ("no", False),
        ("n", False),
        ("0", False),
        ("ture", "ture"),
        ("disabled", "disabled"),
    ],
)
def test_the_bool_reader_keeps_a_word_neither_true_nor_false(monkeypatch, written, read):
    monkeypatch.delenv("MOSTRO_TEST_SCHEDULER", raising=False)
    if written is not None:
        monkeypatch.setenv("MOSTRO_TEST_SCHEDULER", written)
    assert env_bool_or_text("MOSTRO_TEST_SCHEDULER", default=True) == read


@pytest.mark.parametrize("written", ["0", "-1", "nan", "inf", "soon"])
def test_the_watchers_poll_flag_refuses_a_poll_that_never_waits(written):
    with pytest.raises(CommandError, match="--poll-seconds"):
        call_command("invoice_watcher", "--poll-seconds", written)
