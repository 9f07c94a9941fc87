"""Asyncio Nostr relay client (pure asyncio + websockets; no Django imports here)."""

from nostrbridge.relays.frames import PublishResult, RelayHealth
from nostrbridge.relays.pool import DEFAULT_MAX_MESSAGE_BYTES, RelayPool, normalize_url

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "PublishResult", "RelayHealth", "RelayPool", "normalize_url"]
