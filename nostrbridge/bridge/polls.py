"""The bridge's safety-net poll intervals from the settings (MOSTRO_BRIDGE_*_POLL_SECONDS), for
every process that builds a `BridgeOptions` (`mostrod`, `nostr_bridge`)."""

from typing import Any

from django.conf import settings


def poll_options() -> dict[str, Any]:
    """`BridgeOptions` keyword arguments: the inbox, outbox and configuration polls."""
    return {
        "inbox_poll_s": settings.MOSTRO_BRIDGE_INBOX_POLL_SECONDS,
        "publish_poll_s": settings.MOSTRO_BRIDGE_PUBLISH_POLL_SECONDS,
        "config_poll_s": settings.MOSTRO_BRIDGE_CONFIG_POLL_SECONDS,
    }
