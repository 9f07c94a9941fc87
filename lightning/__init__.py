"""Lightning adapter: the LND client, its in-memory fake, invoice rules and LNURL.

`get_lightning_client()` returns the process-wide client chosen by
`settings.LIGHTNING_BACKEND` (a dotted path). The cache is cleared when that setting (or
an LND connection setting) changes, so `override_settings` in tests picks a new client.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING

# gRPC's EventEngine client hands every call's I/O to its own threads: measured here, a unary
# LND call cost ~245 µs of CPU and 4 context switches; on the calling thread's own polling
# (the runtime gRPC had before it) ~200 µs and 1 (docs/PERFORMANCE.md). gRPC reads this once,
# when `grpc` is first imported, so it is set here, before this package's modules import it; an
# operator's own GRPC_EXPERIMENTS wins (docs/OPERATIONS.md).
GRPC_EXPERIMENTS_DEFAULT = "-event_engine_client"
os.environ.setdefault("GRPC_EXPERIMENTS", GRPC_EXPERIMENTS_DEFAULT)

if TYPE_CHECKING:
    from lightning.base import LightningClient

RESET_ON_SETTINGS = frozenset(
    {
        "LIGHTNING_BACKEND",
        "LND_GRPC_HOST",
        "LND_CERT_FILE",
        "LND_MACAROON_FILE",
        "LND_CALL_TIMEOUT_SECONDS",
    }
)


@lru_cache(maxsize=1)
def get_lightning_client() -> LightningClient:
    from django.conf import settings
    from django.utils.module_loading import import_string

    client: LightningClient = import_string(settings.LIGHTNING_BACKEND)()
    return client


def reset_lightning_client(**kwargs: object) -> None:
    """`setting_changed` receiver (also usable directly): forget the cached client."""
    if kwargs.get("setting") not in (None, *RESET_ON_SETTINGS):
        return
    if get_lightning_client.cache_info().currsize:
        client = get_lightning_client()
        close = getattr(client, "close", None)
        if callable(close):
            close()
    get_lightning_client.cache_clear()
