"""The LND node this Mostro node trades on: recorded on first contact, compared afterwards.

Escrows, payouts and dev-fee payments live on one LND node. A node that suddenly answers with
another identity (a changed LND_GRPC_HOST, a swapped certificate and macaroon, a node rebuilt
from a seed without its channel state) must stop the node's readiness before it accepts trades
it cannot finish. The record lives in `ops.RecordedLightningNode` (one row), shared by readiness
and the boot guard (`lnd_node_guard`, mostrod's `node_identity_guard`, docs/OPERATIONS.md
"Changing the Lightning node"); `manage.py doctor --accept-lnd-identity` records a deliberate change.
"""

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from mostro_site.ops.models import RecordedLightningNode
from orders.selectors import DrainCounters, drain_counters

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


class NodeChangeRefused(Exception):
    """LND answers with another identity while escrow is open on the recorded node."""

    def __init__(self, *, recorded_pubkey: str, pubkey: str, counters: DrainCounters) -> None:
        self.recorded_pubkey, self.pubkey, self.counters = recorded_pubkey, pubkey, counters
        super().__init__(
            f"LND answers as {pubkey} but this node's escrow is on {recorded_pubkey} "
            f"({counters.escrowed_orders} escrowed orders, {counters.inflight_payouts} payouts and "
            f"{counters.inflight_dev_fees} dev-fee payments in flight). Point LND_GRPC_HOST back at that "
            "node, or drain first (manage.py maintenance on, wait for `drained: yes`); "
            "LND_ALLOW_NODE_CHANGE=true starts anyway."
        )


@dataclass(frozen=True)
class GuardVerdict:
    outcome: str  # "recorded", "same", "changed" (drained: new key stored), "overridden"
    recorded_pubkey: str


def lnd_node_guard(*, pubkey: str, alias: str = "", network: str = "", allow_change: bool) -> GuardVerdict:
    """The boot guard (docs/OPERATIONS.md): nothing recorded → record; same key → go on; another
    key → record it if nothing is tied to the old node, else refuse (`NodeChangeRefused`) unless
    `allow_change` (LND_ALLOW_NODE_CHANGE), which only logs and keeps the old record, so readiness
    keeps saying the node answers with another identity until `doctor --accept-lnd-identity`."""
    verdict = lnd_identity_verify(pubkey=pubkey, alias=alias, network=network)
    if verdict.recorded_now:
        return GuardVerdict("recorded", pubkey)
    if verdict.matches:
        return GuardVerdict("same", pubkey)
    counters = drain_counters()
    if counters.drained:
        lnd_identity_accept(pubkey=pubkey, alias=alias, network=network)
        logger.warning(
            "LND node changed from %s to %s with nothing in flight: recorded", verdict.recorded_pubkey, pubkey
        )
        return GuardVerdict("changed", pubkey)
    refusal = NodeChangeRefused(recorded_pubkey=verdict.recorded_pubkey, pubkey=pubkey, counters=counters)
    if not allow_change:
        raise refusal
    logger.error("LND_ALLOW_NODE_CHANGE=true: starting anyway. %s", refusal)
    return GuardVerdict("overridden", verdict.recorded_pubkey)
