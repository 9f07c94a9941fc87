"""The Lightning node as LND reports it, for the dashboard and the startup banner.

Called outside any transaction (LndClient refuses network calls inside one) and never
raises for an unreachable node: the dashboard shows "unavailable" instead.
"""

import logging
from dataclasses import dataclass

from lightning import get_lightning_client
from lightning.errors import LightningError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LightningStatus:
    available: bool
    alias: str = ""
    pubkey: str = ""
    network: str = ""
    block_height: int = 0
    synced_to_chain: bool = False
    version: str = ""
    channel_balance_sats: int | None = None  # None: the backend does not report it
    error: str = ""


def lightning_status(client=None) -> LightningStatus:
    client = client or get_lightning_client()
    try:
        info = client.get_info()
    except LightningError as exc:
        logger.warning("lightning node unavailable for the status view: %s", exc.message)
        return LightningStatus(available=False, error=exc.message)
    balance = None
    channel_balance = getattr(client, "channel_balance_sats", None)
    if callable(channel_balance):
        try:
            balance = channel_balance()
        except LightningError as exc:
            logger.warning("lightning channel balance unavailable: %s", exc.message)
    return LightningStatus(
        available=True,
        alias=info.alias,
        pubkey=info.pubkey,
        network=info.network,
        block_height=info.block_height,
        synced_to_chain=info.synced_to_chain,
        version=info.version,
        channel_balance_sats=balance,
    )
