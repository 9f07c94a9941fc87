"""The relay bridge process: relay pool → durable inbox → Channels consumer → handlers, and the
outbox publisher. `run_bridge` is the entry point (`manage.py nostr_bridge`, `mostrod`)."""

from typing import Any

__all__ = ["Bridge", "BridgeOptions", "run_bridge"]


def __getattr__(name: str) -> Any:
    # Imported lazily: nostrbridge.bridge.worker imports this package's helpers, and the runner
    # (and the options, through the worker) imports the consumers.
    if name == "BridgeOptions":
        from nostrbridge.bridge import options

        return options.BridgeOptions
    if name in __all__:
        from nostrbridge.bridge import runner

        return getattr(runner, name)
    raise AttributeError(name)
