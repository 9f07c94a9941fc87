"""The demo trade: Alice sells sats to Bob through the node, step by step.

    1. Alice publishes a sell order          4. Alice pays the hold invoice (escrow)
    2. Bob takes it                          5. Bob says the fiat is sent
    3. Bob gives a payout invoice            6. Alice releases; Bob is paid; both rate

Each step waits for the node's replies over the relay and prints them with the order's
status as the admin shows it.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async

from mostro_site.runtime.demo.trader import DemoFailed, DemoTrader
from nostrbridge.protocol.enums import Action, Kind, Status
from nostrbridge.protocol.payloads import OrderPayload, PaymentRequestPayload, RatingUserPayload
from nostrbridge.protocol.structs import SmallOrder

PAYMENT_TIMEOUT_SECONDS = 600  # Alice's escrow payment stays in flight until the release


@dataclass(frozen=True)
class DemoTerms:
    amount_sats: int = 10_000
    fiat_code: str = "USD"
    fiat_amount: int = 10
    payment_method: str = "bank transfer (demo)"


@dataclass(frozen=True)
class DemoSetup:
    relay_url: str
    node_pubkey: str
    protocol_version: int
    web_url: str
    step_timeout: float = 60.0
    pause: float = 1.0


class DemoTrade:
    def __init__(self, setup: DemoSetup, *, alice_wallet, bob_wallet, write: Callable[[str], None]) -> None:
        self.setup = setup
        self.write = write
        self.alice = self._trader("Alice", alice_wallet)
        self.bob = self._trader("Bob", bob_wallet)
        for trader in (self.alice, self.bob):
            trader.on_other = self._printer(trader)  # type: ignore[method-assign]  # a per-trader hook
        self.order_id: UUID | None = None

    def _trader(self, name: str, wallet: Any) -> DemoTrader:
        setup = self.setup
        return DemoTrader(
            name,
            wallet=wallet,
            relay_url=setup.relay_url,
            node_pubkey=setup.node_pubkey,
            protocol_version=setup.protocol_version,
        )

    async def run(self, terms: DemoTerms) -> str:
        """Run the trade; return the order id. Raises DemoFailed with the reason."""
        await self.alice.start()
        await self.bob.start()
        payment = None
        try:
            await self._publish(terms)
            invoice_amount = await self._take()
            hold_invoice = await self._add_invoice(invoice_amount)
            payment = asyncio.create_task(self._pay_escrow(hold_invoice))
            await self._escrow_locked(payment)
            await self._fiat_sent()
            await self._release(payment)
            await self._rate()
        finally:
            if payment is not None and not payment.done():
                payment.cancel()
            await self.alice.stop()
            await self.bob.stop()
        return str(self.order_id)

    # --- steps --------------------------------------------------------------------------
    async def _publish(self, terms: DemoTerms) -> None:
        order = SmallOrder(
            kind=Kind.SELL,
            status=Status.PENDING,
            amount=terms.amount_sats,
            fiat_code=terms.fiat_code,
            fiat_amount=terms.fiat_amount,
            payment_method=terms.payment_method,
            premium=0,
        )
        await self.alice.send(Action.NEW_ORDER, payload=OrderPayload(order))
        reply = await self.alice.expect(Action.NEW_ORDER, within=self.setup.step_timeout)
        self.order_id = reply.id
        await self._step(
            1,
            f"Alice published a sell order: {terms.amount_sats:,} sats for {terms.fiat_amount} {terms.fiat_code}.",
        )
        self.write(f"   Watch it: {self.setup.web_url}/admin/orders/order/{self.order_id}/change/")

    async def _take(self) -> int:
        await self.bob.send(Action.TAKE_SELL, order_id=self.order_id)
        ask = await self.bob.expect(Action.ADD_INVOICE, within=self.setup.step_timeout)
        await self.alice.expect(Action.WAITING_BUYER_INVOICE, within=self.setup.step_timeout)
        amount = ask.payload.order.amount if isinstance(ask.payload, OrderPayload) else 0
        await self._step(2, f"Bob took the order; the node asks him for an invoice of {amount:,} sats.")
        return amount

    async def _add_invoice(self, amount: int) -> str:
        invoice = await asyncio.to_thread(self.bob.wallet.add_invoice, amount_sats=amount, memo="Mostro demo payout")
        await self.bob.send(
            Action.ADD_INVOICE, order_id=self.order_id, payload=PaymentRequestPayload(None, invoice.payment_request)
        )
        # The first pay-invoice carries Bob's reputation (a Peer); the second the hold invoice.
        pay = await self.alice.expect(Action.PAY_INVOICE, payload=PaymentRequestPayload, within=self.setup.step_timeout)
        await self.bob.expect(Action.WAITING_SELLER_TO_PAY, within=self.setup.step_timeout)
        await self._step(3, "Bob sent his invoice; Alice got the hold invoice to pay (the escrow).")
        assert isinstance(pay.payload, PaymentRequestPayload)  # expect() matched the payload type
        return pay.payload.invoice

    async def _pay_escrow(self, hold_invoice: str):
        # Blocks until the hold invoice is settled at the release (or canceled).
        return await asyncio.to_thread(
            self.alice.wallet.send_payment,
            payment_request=hold_invoice,
            max_fee_sats=1_000,
            timeout_seconds=PAYMENT_TIMEOUT_SECONDS,
        )

    async def _escrow_locked(self, payment: asyncio.Task) -> None:
        await self.alice.expect(Action.BUYER_TOOK_ORDER, within=self.setup.step_timeout)
        await self.bob.expect(Action.HOLD_INVOICE_PAYMENT_ACCEPTED, within=self.setup.step_timeout)
        if payment.done():
            raise DemoFailed(f"Alice's escrow payment ended early: {payment.result()}")
        await self._step(4, "Alice paid the hold invoice: the sats are locked in escrow, the trade is active.")

    async def _fiat_sent(self) -> None:
        await self.bob.send(Action.FIAT_SENT, order_id=self.order_id)
        await self.bob.expect(Action.FIAT_SENT_OK, within=self.setup.step_timeout)
        await self.alice.expect(Action.FIAT_SENT_OK, within=self.setup.step_timeout)
        await self._step(5, "Bob says he sent the fiat; Alice is told to check her bank.")

    async def _release(self, payment: asyncio.Task) -> None:
        await self.alice.send(Action.RELEASE, order_id=self.order_id)
        await self.alice.expect(Action.HOLD_INVOICE_PAYMENT_SETTLED, within=self.setup.step_timeout)
        await self.bob.expect(Action.PURCHASE_COMPLETED, within=self.setup.step_timeout)
        outcome = await asyncio.wait_for(payment, self.setup.step_timeout)
        await self._step(
            6, f"Alice released the escrow ({outcome.status}); the node paid Bob's invoice. Trade complete."
        )

    async def _rate(self) -> None:
        for trader in (self.alice, self.bob):
            await trader.send(Action.RATE_USER, order_id=self.order_id, payload=RatingUserPayload(5))
            await trader.expect(Action.RATE_RECEIVED, within=self.setup.step_timeout)
        await self._step(7, "Alice and Bob rated each other 5/5.")

    # --- output -------------------------------------------------------------------------
    async def _step(self, number: int, text: str) -> None:
        status = await sync_to_async(_order_status)(self.order_id)
        self.write(f"{number}. {text}  [order status: {status}]")
        if self.setup.pause:
            await asyncio.sleep(self.setup.pause)

    def _printer(self, trader: DemoTrader):
        def show(message) -> None:
            self.write(f"   ({trader.name} also got: {message.action.value})")

        return show


def _order_status(order_id) -> str:
    from orders.models import Order

    return Order.objects.filter(pk=order_id).values_list("status", flat=True).first() or "unknown"
