"""Builders for the bond tests: a node with bonds on, traders, the watcher's calls."""

from lightning.types import InvoiceState
from orders.bonds.lock import bond_on_update
from orders.bonds.models import Bond, BondStateChange
from tests.orders.services.support import make_order, set_price


def buy_order(alice):
    """Alice buys 100 VES at market +1 % (7851 sats, fee 24 per party once taken)."""
    set_price()
    order = make_order(alice, index=2, kind="buy", payment_method="face to face")
    alice.replies()
    return order


def sell_order(alice):
    set_price()
    order = make_order(alice, index=2, kind="sell", payment_method="face to face")
    alice.replies()
    return order


def htlc_accepted(fake_ln, bond: Bond) -> None:
    """The taker's wallet pays the bond and the watcher reports it."""
    fake_ln.mark_accepted(bond.hash)
    assert bond_on_update(payment_hash_hex=bond.hash, state=InvoiceState.ACCEPTED)


def history(bond: Bond) -> list[tuple[str, str]]:
    return list(BondStateChange.objects.filter(bond=bond).values_list("from_state", "to_state"))


def lnd_calls(fake_ln, name: str) -> list[dict]:
    return [kwargs for call, kwargs in fake_ln.calls if call == name]
