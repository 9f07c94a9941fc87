"""Send a payment, or ask about one, and classify what the node said (pure; no Django).

The one place that turns a client call and its errors into a `PaymentOutcome`, for the buyer
payout (`orders.services.payout`) and the dev fee (`devfee.services`). The rule of both: a
payment is FAILED only when the node says so (it refused to start it, or reports it failed);
any doubt — the node unreachable, a refused macaroon, a tracking error — leaves it undecided,
so the caller keeps its claim and asks the node again later (docs/PROTOCOL.md §Payout).
"""

from __future__ import annotations

import logging

from lightning.base import LightningClient
from lightning.errors import LightningError, LightningPermissionDenied, LightningRejected, PaymentAlreadyExists
from lightning.types import PaymentOutcome, PaymentStatus

logger = logging.getLogger(__name__)


def payment_send_classified(
    client: LightningClient,
    *,
    payment_request: str,
    payment_hash_hex: str,
    max_fee_sats: int,
    timeout_seconds: int,
    amount_sats: int | None = None,
) -> PaymentOutcome:
    """`send_payment` once. A payment the node already knows is tracked instead of resent."""
    try:
        return client.send_payment(
            payment_request=payment_request,
            max_fee_sats=max_fee_sats,
            timeout_seconds=timeout_seconds,
            amount_sats=amount_sats,
        )
    except PaymentAlreadyExists:
        return payment_track_classified(client, payment_hash_hex=payment_hash_hex)
    except LightningPermissionDenied as exc:
        logger.warning("payment %s: outcome unknown (%s)", payment_hash_hex[:16], exc)
        return PaymentOutcome(status=PaymentStatus.UNKNOWN, payment_hash_hex=payment_hash_hex)
    except LightningRejected as exc:
        # The node refused to start the payment: nothing left, a definite failure.
        return PaymentOutcome(
            status=PaymentStatus.FAILED, payment_hash_hex=payment_hash_hex, failure_reason=exc.message
        )
    except LightningError as exc:
        logger.warning("payment %s: outcome unknown (%s)", payment_hash_hex[:16], exc)
        return PaymentOutcome(status=PaymentStatus.UNKNOWN, payment_hash_hex=payment_hash_hex)


def payment_track_classified(client: LightningClient, *, payment_hash_hex: str) -> PaymentOutcome:
    """The node's view of a payment; IN_FLIGHT (undecided) when the node cannot be asked."""
    try:
        return client.track_payment(payment_hash=bytes.fromhex(payment_hash_hex))
    except LightningError as exc:
        logger.warning("payment %s: cannot track (%s)", payment_hash_hex[:16], exc)
        return PaymentOutcome(status=PaymentStatus.IN_FLIGHT, payment_hash_hex=payment_hash_hex)
