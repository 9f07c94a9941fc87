"""The bond's hold invoice at LND: create, cancel (release), settle (slash).

Called outside any transaction, after the decision is stored (docs/PROTOCOL.md §Bonds). Each
call is idempotent at LND (an already canceled invoice cancels; an already settled one
settles), so the reconciliation job may repeat it after a crash.
"""

import hashlib
import logging
import secrets
from dataclasses import dataclass

from lightning import get_lightning_client
from lightning.errors import AlreadySettledOrCanceled, InvoiceNotFound, LightningError
from mostro_site.config import node_config

logger = logging.getLogger(__name__)


class BondHtlcError(Exception):
    """LND could not do it (unreachable, or the invoice is in the other final state)."""


@dataclass(frozen=True, slots=True)
class BondInvoice:
    payment_request: str
    payment_hash_hex: str
    preimage_hex: str


def bond_memo(order_id) -> str:
    return f"mostro bond order_id={order_id}"


def bond_invoice_create(*, order_id, amount_sats: int, expiry_seconds: int) -> BondInvoice:
    if amount_sats <= 0:
        raise BondHtlcError(f"refusing a bond of {amount_sats} sats for order {order_id}")
    preimage = secrets.token_bytes(32)
    payment_hash = hashlib.sha256(preimage).hexdigest()
    hold = get_lightning_client().add_hold_invoice(
        amount_sats=amount_sats,
        preimage=preimage,
        memo=bond_memo(order_id),
        cltv_expiry=node_config().hold_invoice_cltv_delta,
        expiry_seconds=expiry_seconds,
    )
    if hold.payment_hash_hex.lower() != payment_hash:
        raise BondHtlcError(f"LND returned hash {hold.payment_hash_hex} for a bond of order {order_id}")
    logger.info("bond hold invoice %s created for order %s (%s sats)", payment_hash, order_id, amount_sats)
    return BondInvoice(hold.payment_request, payment_hash, preimage.hex())


def bond_htlc_cancel(*, payment_hash_hex: str) -> None:
    """Release: cancel the HTLC. "Already canceled" and "unknown" count as done."""
    try:
        get_lightning_client().cancel_invoice(payment_hash=bytes.fromhex(payment_hash_hex))
    except InvoiceNotFound:
        logger.warning("bond invoice %s unknown to LND; nothing to cancel", payment_hash_hex)
    except AlreadySettledOrCanceled as exc:
        if exc.settled:
            raise BondHtlcError(f"bond invoice {payment_hash_hex} is already settled") from exc
    except LightningError as exc:
        raise BondHtlcError(f"canceling bond invoice {payment_hash_hex} failed: {exc.message}") from exc


def bond_htlc_settle(*, preimage_hex: str) -> None:
    """Slash: settle the HTLC into the node's wallet. "Already settled" counts as done."""
    try:
        get_lightning_client().settle_invoice(preimage=bytes.fromhex(preimage_hex))
    except AlreadySettledOrCanceled as exc:
        if not exc.settled:
            raise BondHtlcError("bond invoice was canceled before it could be settled") from exc
    except LightningError as exc:
        raise BondHtlcError(f"settling a bond failed: {exc.message}") from exc
