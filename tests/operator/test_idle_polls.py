"""The node's safety-net polls come from the settings (docs/OPERATIONS.md §Idle wake-ups): the
bridge's inbox, outbox and configuration polls, and the embedded invoice watcher's poll."""

from django.test import override_settings

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
