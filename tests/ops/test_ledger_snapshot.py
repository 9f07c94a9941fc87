"""The ledger check's snapshot (tests/ledger.py): a dev-fee sweep that runs while the nodes are
read must not look like a discrepancy, and a row marked paid without a payment still must.

Found by a 1,000-trade benchmark run: the 60 s sweep paid three dev fees between the balances'
read and the rows' read, and the check reported "3 dev fees marked paid, 0 dev-fee payments".
"""

import asyncio
from types import SimpleNamespace

from lightning.grpc import lightning_pb2 as ln
from tests.ledger import BUYER, FUND, NODE, SELLER, ledger_check

FEE_HASH = "ab" * 32
FEE_SATS = 13


class FakeWallet:
    def __init__(self, payments):
        self._payments = payments

    async def payments(self):
        return self._payments()

    async def invoices(self):
        return []


class FakeNet:
    """A node whose dev-fee sweep pays one fee after the first balances' read (`sweep_pays`),
    or whose row says paid with no payment made (`paid_without_payment`)."""

    def __init__(self, *, sweep_pays: bool = False, paid_without_payment: bool = False):
        self.sweep_pays = sweep_pays
        self.paid = paid_without_payment
        self.paid_at_node = False
        self.snapshots = 0
        self.node = SimpleNamespace(query=self.query)

    def query(self, sql: str):
        if "COUNT(*)" in sql:
            return [(0,)]
        if "FROM devfee_devfeepayment" in sql:
            return [(1, "paid" if self.paid else "pending", FEE_SATS, FEE_HASH)]
        return []  # no orders, no bonds

    def balances_msat(self):
        self.snapshots += 1
        if self.sweep_pays and self.snapshots == 1:  # the sweep runs during this snapshot
            self.paid = self.paid_at_node = True
            return {SELLER: 0, BUYER: 0, NODE: 0, FUND: 0}
        moved = FEE_SATS * 1_000 if self.paid_at_node else 0
        return {SELLER: 0, BUYER: 0, NODE: -moved, FUND: moved}

    def wallet(self, name, threaded=False):
        if name != NODE:
            return FakeWallet(list)
        return FakeWallet(lambda: [self._fee_payment()] if self.paid_at_node else [])

    @staticmethod
    def _fee_payment():
        return ln.Payment(
            payment_hash=FEE_HASH,
            payment_request="lnbcrt130n1devfee",
            value_sat=FEE_SATS,
            value_msat=FEE_SATS * 1_000,
            status=ln.Payment.PaymentStatus.SUCCEEDED,
        )


def check(net: FakeNet):
    before = {SELLER: 0, BUYER: 0, NODE: 0, FUND: 0}
    return asyncio.run(ledger_check(net, [], before))


def test_a_sweep_during_the_snapshot_is_read_again_and_balances():
    net = FakeNet(sweep_pays=True)
    report = check(net)
    assert report.problems == []
    assert net.snapshots == 2
    assert report.figures["dev fees paid (sats)"] == FEE_SATS
    assert report.figures["delta"] == {SELLER: 0, BUYER: 0, NODE: -13_000, FUND: 13_000}


def test_a_row_marked_paid_without_a_payment_is_still_a_discrepancy():
    net = FakeNet(paid_without_payment=True)
    report = check(net)
    assert net.snapshots == 1
    assert report.problems == [
        "1 dev fees marked paid, 0 dev-fee payments at the node",
        "devfund: balance moved 0 msat, expected 13000",
        "mostro: balance moved 0 msat, expected -13000",
    ]
