"""Builders for the bond tests: a node with bonds on, traders, the watcher's calls."""

import os
from datetime import timedelta

from django.utils import timezone

from lightning.types import InvoiceState
from orders.bonds.htlc import BondInvoice, bond_invoice_create
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


def bond_row(
    order,
    *,
    role: str = "taker",
    pubkey: str = "c" * 64,
    state: str = "requested",
    amount_sats=1000,
    fake_ln=None,
    **fields,
):
    """A bond row written directly (single-model and guard tests). With `fake_ln`, its hold
    invoice exists at the fake LND (accepted unless the bond is `requested`); else a random hash."""
    if fake_ln is None:
        invoice = BondInvoice("lnbcrt-bond", os.urandom(32).hex(), os.urandom(32).hex())
    else:
        invoice = bond_invoice_create(order_id=order.pk, amount_sats=amount_sats, expiry_seconds=300)
        if state != "requested":
            fake_ln.mark_accepted(invoice.payment_hash_hex)
    values = {
        "order": order, "role": role, "pubkey": pubkey, "identity": pubkey, "state": state, "amount_sats": amount_sats,
        "hash": invoice.payment_hash_hex, "preimage": invoice.preimage_hex, "payment_request": invoice.payment_request,
        "invoice_expires_at": timezone.now() + timedelta(seconds=300),
    }  # fmt: skip
    return Bond.objects.create(**(values | fields))


def bond_snapshot(bond: Bond) -> dict:
    """Every column of the row (what a refusal must leave untouched) and its audit trail."""
    bond.refresh_from_db()
    values = {f.attname: getattr(bond, f.attname) for f in bond._meta.concrete_fields}
    values["changes"] = history(bond)
    return values
