"""`import-reputation` (docs/PROTOCOL.md §Import-reputation): redeem an attestation another issuer signed.

Checks, in mostrod's order: import on (`invalid_action`); the payload (`invalid_payload`); an
identity proof (`reputation_identity_required`); the event and its clock
(`invalid_reputation_attestation` / `expired_reputation_attestation`); a trusted issuer that is
not this node's own issuer key (`untrusted_reputation_issuer`); addressed to the proved identity
(`reputation_identity_mismatch`); not imported before (`reputation_already_imported`, by the two
unique constraints). The import is recorded and merged in one transaction, confirmed with
`reputation-imported`, and the user's rating event (38384) is republished with the merged figures
under the importing trade key.
"""

import datetime as dt
import logging
import time

from django.db import IntegrityError, transaction

from mostro_site.config.reputation import reputation_settings, trusted_issuer_keys
from mostro_site.models import ReputationImport
from nostrbridge.context import Atomic
from nostrbridge.node_identity import reputation_issuer_keys
from nostrbridge.outbox import enqueue_message
from nostrbridge.protocol.enums import Action, CantDoReason
from nostrbridge.protocol.errors import CantDo
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.payloads import Payload, ReputationAttestationPayload
from nostrbridge.protocol.reputation import AttestationError, ReputationAttestation, parse_attestation
from orders.models import Trader
from orders.services.rating import RatingAggregate, publish_rating_event, reputation_merge, trader_rating_store
from orders.services.reputation_request import reputation_request_payload

logger = logging.getLogger(__name__)


def reputation_import(
    *,
    identity: str,
    sender: str,
    payload: Payload | None,
    request_id: int | None,
    atomic: Atomic = transaction.atomic,
    now: int | None = None,
) -> Trader:
    """Record and merge the attestation, reply, republish the rating event; return the trader."""
    config = reputation_settings()
    if not config.import_enabled:
        raise CantDo(CantDoReason.INVALID_ACTION)
    attestation_json = reputation_request_payload(
        payload=payload, payload_type=ReputationAttestationPayload, identity=identity, sender=sender
    ).attestation_json
    now = int(time.time()) if now is None else now
    try:
        attestation = parse_attestation(
            attestation_json, now=now, max_lifetime_seconds=config.import_max_lifetime_seconds
        )
    except AttestationError as exc:
        raise CantDo(exc.reason) from exc
    issuer_name = trusted_issuer_keys().get(attestation.issuer)
    own = reputation_issuer_keys()
    if issuer_name is None or (own is not None and attestation.issuer == own.public_key_hex):
        raise CantDo(CantDoReason.UNTRUSTED_REPUTATION_ISSUER)
    if attestation.destination != identity:
        raise CantDo(CantDoReason.REPUTATION_IDENTITY_MISMATCH)
    with atomic():
        trader = _record_and_merge(attestation, issuer_name=issuer_name, identity=identity, sender=sender)
        enqueue_message(recipient_pubkey=sender, message=Message.new(Action.REPUTATION_IMPORTED, request_id=request_id))
        # Keyed by the importing trade key, the user's own (§Import-reputation); its values are the merged ones.
        publish_rating_event(trader=trader, d_pubkey=sender, now=now)
    logger.info(
        "reputation: %s imported %s ratings from %s (attestation %s)",
        identity,
        attestation.reviews,
        issuer_name,
        attestation.id,
    )
    return trader


def _record_and_merge(attestation: ReputationAttestation, *, issuer_name: str, identity: str, sender: str) -> Trader:
    """Insert the import (unique per issuer and subject, and per issuer and identity) and merge it
    into the identity's record, creating the record for an identity new here (caller's transaction)."""
    try:
        # The unique constraints decide, also between concurrent imports; the savepoint keeps the
        # caller's transaction usable after a violation (PostgreSQL aborts it otherwise).
        with transaction.atomic():
            ReputationImport.objects.create(
                attestation_id=attestation.id,
                issuer_name=issuer_name,
                issuer_key=attestation.issuer,
                subject=attestation.subject,
                identity_pubkey=identity,
                trade_pubkey=sender,
                reviews=attestation.reviews,
                rating_hundredths=attestation.rating_hundredths,
                since=_utc(attestation.since),
                attested_at=_utc(attestation.created_at),
            )
    except IntegrityError as exc:
        raise CantDo(CantDoReason.REPUTATION_ALREADY_IMPORTED) from exc
    Trader.objects.get_or_create(pubkey=identity)
    trader = Trader.objects.select_for_update().get(pk=identity)
    rating = attestation.rating
    return trader_rating_store(
        identity=identity,
        aggregate=reputation_merge(RatingAggregate.of(trader), reviews=attestation.reviews, rating=rating),
        created_at=min(trader.created_at, _utc(attestation.since)),
        seeded_reviews=trader.seeded_reviews + attestation.reviews,
        seeded_rating_sum=trader.seeded_rating_sum + rating * attestation.reviews,
    )


def _utc(unix_seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix_seconds, tz=dt.UTC)
