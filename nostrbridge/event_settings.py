"""What every event the node publishes carries besides its content.

* `publisher_settings()`: the node's key, instance name, relays and the NIP-40 retention of
  each event kind (node configuration, read per call).
* The LND node's network: the `network` tag (38383 orders, 8383 dev-fee audit) and the chain
  an invoice must be for. Every process asks LND once, at start (`lnd_network_fetch()`, called
  by each entry point: `mostrod`, `nostr_bridge`, `invoice_watcher`, each job worker, a
  stand-alone web server); everything else reads the remembered value with `lnd_network()`,
  which never calls LND and so is safe inside a transaction. An event built while the value
  is unknown (LND did not answer at start) says `unknown`, as the daemon does when the node
  status is unavailable; the invoice checks, which cannot judge an invoice without it and
  run outside any transaction, ask LND again (`lnd_network_fetch()`, at most every
  NETWORK_RETRY_SECONDS).
"""

import logging
import threading
import time

from django.db import connection

from lightning import get_lightning_client
from lightning.errors import LightningError
from mostro_site.config import NodeConfig, node_config
from nostrbridge.node_identity import node_pubkey
from nostrbridge.protocol.published_events import PublisherSettings

logger = logging.getLogger(__name__)

UNKNOWN_NETWORK = "unknown"
# After a failed get_info, wait this long before asking LND again (a node that is down would
# otherwise be asked once per inbound message).
NETWORK_RETRY_SECONDS = 30.0

_network_lock = threading.Lock()
_network: str | None = None
_network_failed_at: float | None = None


def lnd_network_fetch() -> str:
    """LND's network ("regtest", …), asking LND unless already known. Never inside a transaction.

    Process start calls it (see the module docstring); after that it only reads, except while
    LND has not answered yet."""
    global _network, _network_failed_at
    if _network is not None:
        return _network
    if _in_transaction():
        return UNKNOWN_NETWORK
    with _network_lock:
        if _network is not None:
            return _network
        if _network_failed_at is not None and time.monotonic() - _network_failed_at < NETWORK_RETRY_SECONDS:
            return UNKNOWN_NETWORK
        try:
            info = get_lightning_client().get_info()
        except LightningError as exc:
            _network_failed_at = time.monotonic()
            logger.warning("LND get_info failed (%s); 38383 network tag is %s", exc.message, UNKNOWN_NETWORK)
            return UNKNOWN_NETWORK
        _network = ",".join(info.networks) or UNKNOWN_NETWORK
        _network_failed_at = None
        return _network


def invoice_network() -> str | None:
    """The chain an invoice must be for (LND's first network), None while LND has not answered.

    For the invoice checks before a payout or an escrow, which run outside any transaction."""
    network = lnd_network_fetch()
    return None if network == UNKNOWN_NETWORK else network.split(",")[0]


def _in_transaction() -> bool:
    # The atomic blocks a test case wraps around each test do not count (as in
    # lightning.lnd_errors.assert_not_in_transaction).
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def lnd_network() -> str:
    """The network remembered at start (`unknown` until LND answered); never calls LND."""
    return _network or UNKNOWN_NETWORK


def clear_network_cache() -> None:
    global _network, _network_failed_at
    with _network_lock:
        _network = None
        _network_failed_at = None


def publisher_settings(config: NodeConfig | None = None) -> PublisherSettings:
    config = config or node_config()
    return PublisherSettings(
        node_pubkey=node_pubkey(),
        instance_name=config.name,
        relays=config.relays,
        order_days=config.order_days,
        rating_days=config.rating_days,
        dispute_days=config.dispute_days,
        fee_audit_days=config.fee_audit_days,
    )
