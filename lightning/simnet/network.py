"""The simulated network: nodes, a block clock, invoices (regular and hold) and their expiry.

Semantics follow LND 0.20 (see the package docstring for the list); payments live in
`payments.py`. Every method runs on the server's event loop.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import os
import time

from lightning.bolt11_encode import InvoiceTerms, encode_invoice
from lightning.simnet.model import (
    HTLC_CANCELED,
    HTLC_SETTLED,
    INVOICE_ACCEPTED,
    INVOICE_CANCELED,
    INVOICE_OPEN,
    INVOICE_SETTLED,
    SimError,
    SimHtlc,
    SimInvoice,
    SimNode,
)
from lightning.simnet.payments import PaymentEngine

logger = logging.getLogger(__name__)

DEFAULT_EXPIRY_SECONDS = 86_400  # LND's invoice expiry when none is given
DEFAULT_CLTV_EXPIRY = 80  # chainreg.DefaultBitcoinTimeLockDelta
MIN_CLTV_DELTA = 18  # routing.MinCLTVDelta
MAX_CLTV_DELTA = 65_535
MAX_MEMO_BYTES = 1024
# LND cancels an accepted hold invoice this many blocks before its lowest HTLC expires
# (lncfg.DefaultHoldInvoiceExpiryDelta = DefaultIncomingBroadcastDelta + 2).
HOLD_EXPIRY_DELTA = 12
START_HEIGHT = 500


class Network(PaymentEngine):
    def __init__(
        self, *, currency: str = "bcrt", network: str = "regtest", fee_base_msat: int = 1000, fee_ppm: int = 1000
    ) -> None:
        self.currency = currency
        self.network_name = network
        self.fee_base_msat = fee_base_msat
        self.fee_ppm = fee_ppm
        self.height = START_HEIGHT
        self.nodes: dict[str, SimNode] = {}
        self.by_pubkey: dict[str, SimNode] = {}
        # payment_request -> (payee, invoice): paying a simnet invoice never decodes it.
        self.by_request: dict[str, tuple[SimNode, SimInvoice]] = {}
        self._accepted_hold: set[tuple[str, bytes]] = set()
        self._expiry_heap: list[tuple[int, str, bytes]] = []
        # Conservation (checked when a saved state is loaded, lightning/simnet/persistence.py):
        # balances + amounts locked in HTLCs + routing fees paid == supply.
        self.supply_msat = 0
        self.routing_fees_msat = 0
        self.changes = 0  # bumped on every state change; the state file is written when it moved

    def add_node(self, node: SimNode) -> None:
        self.nodes[node.name] = node
        self.by_pubkey[node.pubkey_hex] = node
        self.supply_msat += node.balance_msat
        self.changes += 1

    def set_balance(self, node: SimNode, balance_msat: int) -> None:
        """Control API: sats added to (or taken from) the network, counted in the supply."""
        self.supply_msat += balance_msat - node.balance_msat
        node.balance_msat = balance_msat
        self.changes += 1

    def register_invoice(self, node: SimNode, invoice: SimInvoice) -> None:
        """Index an invoice (new, or loaded from the state file) for payers and the clocks."""
        node.invoices[invoice.r_hash] = invoice
        self.by_request[invoice.payment_request] = (node, invoice)
        if invoice.state == INVOICE_OPEN:
            heapq.heappush(self._expiry_heap, (invoice.creation_date + invoice.expiry, node.name, invoice.r_hash))
        if invoice.state == INVOICE_ACCEPTED:
            self._accepted_hold.add((node.name, invoice.r_hash))
        self.changes += 1

    def block_hash(self) -> str:
        return hashlib.sha256(f"simnet-block-{self.height}".encode()).hexdigest()

    # --- invoices -------------------------------------------------------------------------
    def add_invoice(
        self,
        node: SimNode,
        *,
        value_msat: int,
        memo: str,
        expiry: int,
        cltv_expiry: int,
        r_hash: bytes | None = None,
        preimage: bytes | None = None,
    ) -> SimInvoice:
        """Regular invoice when `r_hash` is None (the node knows the preimage), else hold."""
        _check_invoice_terms(value_msat, memo, cltv_expiry)
        is_hold = r_hash is not None
        if r_hash is None:
            preimage = preimage or os.urandom(32)
            r_hash = hashlib.sha256(preimage).digest()
        if len(r_hash) != 32:
            raise SimError(f"unable to parse hash: invalid length {len(r_hash)}, want 32")
        if r_hash in node.invoices:
            raise SimError("invoice with payment hash already exists")
        invoice = self._mint(
            node,
            value_msat,
            memo,
            expiry or DEFAULT_EXPIRY_SECONDS,
            cltv_expiry or DEFAULT_CLTV_EXPIRY,
            r_hash,
            preimage,
            is_hold,
        )
        self.register_invoice(node, invoice)
        node.notify_invoice(invoice)
        return invoice

    def _mint(
        self,
        node: SimNode,
        value_msat: int,
        memo: str,
        expiry: int,
        cltv: int,
        r_hash: bytes,
        preimage: bytes | None,
        is_hold: bool,
    ) -> SimInvoice:
        payment_addr = os.urandom(32)
        created = int(time.time())
        terms = InvoiceTerms(
            payment_hash=r_hash,
            payment_secret=payment_addr,
            amount_msat=value_msat,
            description=memo,
            expiry_seconds=expiry,
            min_final_cltv_expiry=cltv,
            currency=self.currency,
            timestamp=created,
        )
        node.add_index += 1
        return SimInvoice(
            r_hash=r_hash,
            value_msat=value_msat,
            memo=memo,
            payment_request=encode_invoice(terms, node.key),
            payment_addr=payment_addr,
            expiry=expiry,
            cltv_expiry=cltv,
            add_index=node.add_index,
            is_hold=is_hold,
            preimage=preimage,
            creation_date=created,
        )

    def lookup(self, node: SimNode, r_hash: bytes) -> SimInvoice:
        invoice = node.invoices.get(r_hash)
        if invoice is None:
            raise SimError("unable to locate invoice")
        return invoice

    def settle(self, node: SimNode, preimage: bytes) -> SimInvoice:
        if len(preimage) != 32:
            raise SimError(f"unable to parse preimage: invalid length {len(preimage)}, want 32")
        invoice = self.lookup(node, hashlib.sha256(preimage).digest())
        if invoice.state == INVOICE_OPEN:
            raise SimError("invoice still open")
        if invoice.state == INVOICE_CANCELED:
            raise SimError("invoice already canceled")
        if invoice.state == INVOICE_SETTLED:
            raise SimError("invoice already settled")
        invoice.preimage = preimage
        self._settle(node, invoice)
        return invoice

    def _settle(self, node: SimNode, invoice: SimInvoice) -> None:
        now = int(time.time())
        self.changes += 1
        invoice.state = INVOICE_SETTLED
        node.settle_index += 1
        invoice.settle_index, invoice.settle_date = node.settle_index, now
        self._accepted_hold.discard((node.name, invoice.r_hash))
        for htlc in invoice.accepted_htlcs():
            htlc.state, htlc.resolve_time = HTLC_SETTLED, now
            node.balance_msat += htlc.amt_msat
            self.payment_succeeded(htlc.payer, invoice.preimage or b"")
        node.notify_invoice(invoice)

    def cancel(self, node: SimNode, r_hash: bytes) -> SimInvoice:
        invoice = self.lookup(node, r_hash)
        if invoice.state == INVOICE_SETTLED:
            raise SimError("invoice already settled")
        if invoice.state != INVOICE_CANCELED:  # canceling twice is a no-op, as in LND
            self._cancel(node, invoice)
        return invoice

    def _cancel(self, node: SimNode, invoice: SimInvoice) -> None:
        now = int(time.time())
        self.changes += 1
        invoice.state = INVOICE_CANCELED
        self._accepted_hold.discard((node.name, invoice.r_hash))
        for htlc in invoice.accepted_htlcs():
            htlc.state, htlc.resolve_time = HTLC_CANCELED, now
            self.payment_failed(htlc.payer, "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS")
        node.notify_invoice(invoice)

    def accept_htlc(self, node: SimNode, invoice: SimInvoice, htlc: SimHtlc) -> None:
        """An incoming HTLC that pays `invoice` in full (checked by the caller)."""
        self.changes += 1
        invoice.htlcs.append(htlc)
        if invoice.is_hold:
            invoice.state = INVOICE_ACCEPTED
            self._accepted_hold.add((node.name, invoice.r_hash))
            node.notify_invoice(invoice)
        else:
            self._settle(node, invoice)

    # --- clocks ---------------------------------------------------------------------------
    def mine(self, blocks: int = 1) -> int:
        for _ in range(blocks):
            self.height += 1
            self.changes += 1
            self._expire_htlcs()
        return self.height

    def _expire_htlcs(self) -> None:
        for name, r_hash in list(self._accepted_hold):
            node = self.nodes[name]
            invoice = node.invoices[r_hash]
            lowest = min((h.expiry_height for h in invoice.accepted_htlcs()), default=0)
            if lowest and self.height + HOLD_EXPIRY_DELTA >= lowest:
                logger.info(
                    "simnet %s: hold invoice %s canceled, HTLC expiry %d at height %d",
                    name,
                    r_hash.hex(),
                    lowest,
                    self.height,
                )
                self._cancel(node, invoice)

    def expire_invoices(self, now: float | None = None) -> int:
        """Cancel OPEN invoices past their expiry (LND's invoice expiry watcher)."""
        now = time.time() if now is None else now
        canceled = 0
        while self._expiry_heap and self._expiry_heap[0][0] <= now:
            _, name, r_hash = heapq.heappop(self._expiry_heap)
            node = self.nodes[name]
            invoice = node.invoices.get(r_hash)
            if invoice is not None and invoice.state == INVOICE_OPEN:
                self._cancel(node, invoice)
                canceled += 1
        return canceled


def _check_invoice_terms(value_msat: int, memo: str, cltv_expiry: int) -> None:
    if value_msat < 0:
        raise SimError("payment of negative value is not allowed")
    if len(memo.encode()) > MAX_MEMO_BYTES:
        raise SimError(f"memo too large: {len(memo.encode())} bytes (maxlen={MAX_MEMO_BYTES})")
    if cltv_expiry > MAX_CLTV_DELTA:
        raise SimError(f"CLTV delta of {cltv_expiry} is too large, max accepted is: {MAX_CLTV_DELTA}")
    if 0 < cltv_expiry < MIN_CLTV_DELTA:
        raise SimError(f"CLTV delta of {cltv_expiry} must be greater than minimum of {MIN_CLTV_DELTA}")
