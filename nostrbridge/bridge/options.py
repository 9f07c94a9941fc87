"""`BridgeOptions`: what a caller of `run_bridge` may set (`manage.py nostr_bridge`, `mostrod`,
the tests), with the defaults a production node runs on. The settings' poll intervals are read
by `nostrbridge.bridge.polls`."""

from dataclasses import dataclass, field
from typing import Any

from nostrbridge.bridge.lane import LANE_THREADS
from nostrbridge.bridge.worker import DEFAULT_CLAIM_BATCH
from nostrbridge.outbox_rounds import PublishPolicy

# A relay that drops the connection (restart, per-connection limits) is usually back at once;
# the first retry comes within 0.1 s, later ones back off exponentially with jitter.
DEFAULT_POOL_OPTIONS: dict[str, Any] = {"backoff_initial_s": 0.1}


@dataclass(frozen=True)
class BridgeOptions:
    relays: tuple[str, ...] | None = None  # None: node_config().relays, followed live
    worker_id: str | None = None
    channel_layer: Any = None  # None: the settings' layer if it reaches other processes (Redis)
    inbox_poll_s: float = 0.25  # safety-net poll of the inbox (nudges are hints)
    claim_batch: int = DEFAULT_CLAIM_BATCH
    # Threads of the network lane (0: every handler runs in the database thread, as before it).
    lane_threads: int = LANE_THREADS
    config_poll_s: float = 3.0  # pick up the operator's relay / protocol / info changes
    health_sync_s: float = 3.0
    publish: PublishPolicy = field(default_factory=PublishPolicy)
    publish_batch: int = 100
    publish_poll_s: float = 1.0  # safety-net poll of the outbox (commits nudge the publisher)
    node_events: bool = True  # 38385 / 0 at start and on settings changes; 10002 when the relay set changes
    # The periodic jobs of nostrbridge.jobs belong to qcluster (mostro_site/schedules.py); this runs
    # them on timers here instead, for a deployment without qcluster. Duplicates are harmless.
    periodic_jobs: bool = False
    pool: dict[str, Any] = field(default_factory=dict)  # RelayPool keyword arguments
    shutdown_timeout_s: float = 20.0
    stats_every_s: float = 60.0  # an INFO line with the counters (0: never)
