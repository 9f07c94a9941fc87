"""The LND node this Mostro node trades on: recorded on first contact, compared afterwards.

Escrows, payouts and dev-fee payments live on one LND node. A node that suddenly answers with
another identity (a changed LND_GRPC_HOST, a swapped certificate and macaroon, a node rebuilt
from a seed without its channel state) must stop the node's readiness before it accepts trades
it cannot finish. The record lives in `ops.RecordedLightningNode` (one row) until issue 17's
boot guard keeps its own; `manage.py doctor --accept-lnd-identity` records a deliberate change.
"""

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from mostro_site.ops.models import RecordedLightningNode

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdentityVerdict:
    matches: bool
    recorded_now: bool
    recorded_pubkey: str


def lnd_identity_verify(*, pubkey: str, alias: str = "", network: str = "") -> IdentityVerdict:
    """Compare LND's answer with the record; record it if there is none yet."""
    recorded, created = RecordedLightningNode.objects.filter(pk=1).first(), False
    if recorded is None:  # read first: on SQLite a transaction takes the write lock at BEGIN
        with transaction.atomic():
            recorded, created = RecordedLightningNode.objects.get_or_create(
                pk=1,
                defaults={"pubkey": pubkey, "alias": alias[:100], "network": network, "recorded_at": timezone.now()},
            )
    if created:
        logger.info("recorded the LND node identity %s (%s, %s)", pubkey, alias, network)
    elif recorded.pubkey != pubkey:
        logger.error("LND answers as %s but this node trades on %s", pubkey, recorded.pubkey)
    return IdentityVerdict(matches=recorded.pubkey == pubkey, recorded_now=created, recorded_pubkey=recorded.pubkey)


def lnd_identity_accept(*, pubkey: str, alias: str = "", network: str = "") -> None:
    """Record the current LND identity, replacing the previous one (an operator's decision)."""
    with transaction.atomic():
        RecordedLightningNode.objects.update_or_create(
            pk=1, defaults={"pubkey": pubkey, "alias": alias[:100], "network": network, "recorded_at": timezone.now()}
        )
    logger.warning("LND node identity set to %s (%s, %s) by an operator", pubkey, alias, network)
