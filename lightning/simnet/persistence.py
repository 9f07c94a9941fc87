"""simnet's network state on disk: `DIR/simnet-state.json`, so a killed simnet comes back as LND does.

LND keeps its channels, invoices and payments in its database; a restarted LND serves the same
invoices, an HTLC it had accepted on a hold invoice is still held (the payer's payment stays
IN_FLIGHT until the invoice is settled or canceled), and a payment it sent is still tracked. simnet
does the same with one JSON file: the whole network (ports, block height, fees, each node's
balance, invoices with their HTLCs and preimages, payments with their status and locked amount),
written atomically (tmp file, fsync, rename, fsync of the directory) whenever it changed, at most
every `--state-interval` seconds, and once more at a clean shutdown. A SIGKILL loses at most the
changes of the last interval and never leaves half a file.

On load the file is checked (`state_problems`): no sats created or destroyed (the balances, the
amounts locked in outstanding HTLCs and the routing fees paid add up to the supply: every node's
starting balance plus the control API's `balance` changes), and every held HTLC belongs to an
IN_FLIGHT payment that locked exactly its amount. A file that fails the check is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from lightning.grpc import lightning_pb2 as ln
from lightning.simnet.model import (
    HTLC_ACCEPTED,
    HTLC_SETTLED,
    PAYMENT_IN_FLIGHT,
    PAYMENT_SUCCEEDED,
    SimHtlc,
    SimInvoice,
    SimPayment,
)

if TYPE_CHECKING:
    from lightning.simnet.network import Network

STATE_FILE = "simnet-state.json"
STATE_VERSION = 1


class StateRefused(Exception):
    """The state file is not one simnet can resume from (inconsistent, or other nodes)."""


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value)


# --- network -> JSON ----------------------------------------------------------------------------
def snapshot(network: Network, *, control_port: int) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "height": network.height,
        "fee_base_msat": network.fee_base_msat,
        "fee_ppm": network.fee_ppm,
        "supply_msat": network.supply_msat,
        "routing_fees_msat": network.routing_fees_msat,
        "control_port": control_port,
        "nodes": {
            node.name: {
                "port": node.port,
                "balance_msat": node.balance_msat,
                "add_index": node.add_index,
                "settle_index": node.settle_index,
                "payment_index": node.payment_index,
                "payments": [_payment_json(p) for p in node.payments.values()],
                "invoices": [_invoice_json(i) for i in node.invoices.values()],
            }
            for node in network.nodes.values()
        },
    }


def _payment_json(payment: SimPayment) -> dict[str, Any]:
    fee_limit_msat = payment.deliver[1] if payment.deliver is not None else 0
    return {
        "payment_hash": payment.payment_hash.hex(),
        "value_msat": payment.value_msat,
        "fee_msat": payment.fee_msat,
        "payment_request": payment.payment_request,
        "payment_index": payment.payment_index,
        "status": int(payment.status),
        "failure_reason": int(payment.failure_reason),
        "preimage": payment.preimage.hex(),
        "creation_time_ns": payment.creation_time_ns,
        "stuck": payment.stuck,
        "fee_limit_msat": fee_limit_msat,
        "locked_msat": payment.locked_msat,
    }


def _invoice_json(invoice: SimInvoice) -> dict[str, Any]:
    return {
        "r_hash": invoice.r_hash.hex(),
        "value_msat": invoice.value_msat,
        "memo": invoice.memo,
        "payment_request": invoice.payment_request,
        "payment_addr": invoice.payment_addr.hex(),
        "expiry": invoice.expiry,
        "cltv_expiry": invoice.cltv_expiry,
        "add_index": invoice.add_index,
        "is_hold": invoice.is_hold,
        "preimage": _hex(invoice.preimage),
        "creation_date": invoice.creation_date,
        "state": int(invoice.state),
        "settle_index": invoice.settle_index,
        "settle_date": invoice.settle_date,
        "htlcs": [
            {
                "amt_msat": h.amt_msat,
                "accept_height": h.accept_height,
                "expiry_height": h.expiry_height,
                "accept_time": h.accept_time,
                "state": int(h.state),
                "resolve_time": h.resolve_time,
                "payer": [h.payer.payer.name if h.payer.payer else "", h.payer.payment_hash.hex()],
            }
            for h in invoice.htlcs
        ],
    }


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Encode and write a snapshot (safe in a worker thread: the snapshot is plain data)."""
    write_state(path, json.dumps(state, separators=(",", ":")).encode())


def write_state(path: Path, payload: bytes) -> None:
    """Atomic: readers (and a restart after SIGKILL) see the old file or the new one, whole."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as out:
        out.write(payload)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_state(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    if state.get("version") != STATE_VERSION:
        raise StateRefused(f"{path}: state version {state.get('version')!r}, this simnet reads {STATE_VERSION}")
    return state


# --- JSON -> network ----------------------------------------------------------------------------
def restore(network: Network, state: dict[str, Any]) -> None:
    """Fill `network` (its nodes added, with their saved ports) from a checked state."""
    network.height = state["height"]
    network.fee_base_msat, network.fee_ppm = state["fee_base_msat"], state["fee_ppm"]
    network.supply_msat, network.routing_fees_msat = state["supply_msat"], state["routing_fees_msat"]
    saved = state["nodes"]
    for name, node in network.nodes.items():
        data = saved[name]
        node.balance_msat = data["balance_msat"]
        node.add_index, node.settle_index, node.payment_index = (
            data["add_index"], data["settle_index"], data["payment_index"],
        )  # fmt: skip
        for p in data["payments"]:
            payment = SimPayment(
                payment_hash=bytes.fromhex(p["payment_hash"]),
                value_msat=p["value_msat"],
                fee_msat=p["fee_msat"],
                payment_request=p["payment_request"],
                payment_index=p["payment_index"],
                payer=node,
                status=cast(ln.Payment.PaymentStatus, p["status"]),
                failure_reason=cast(ln.PaymentFailureReason, p["failure_reason"]),
                preimage=bytes.fromhex(p["preimage"]),
                creation_time_ns=p["creation_time_ns"],
                stuck=p["stuck"],
                locked_msat=p["locked_msat"],
            )
            node.payments[payment.payment_hash] = payment
    for name, node in network.nodes.items():
        for i in saved[name]["invoices"]:
            invoice = SimInvoice(
                r_hash=bytes.fromhex(i["r_hash"]),
                value_msat=i["value_msat"],
                memo=i["memo"],
                payment_request=i["payment_request"],
                payment_addr=bytes.fromhex(i["payment_addr"]),
                expiry=i["expiry"],
                cltv_expiry=i["cltv_expiry"],
                add_index=i["add_index"],
                is_hold=i["is_hold"],
                preimage=_bytes(i["preimage"]),
                creation_date=i["creation_date"],
                state=cast(ln.Invoice.InvoiceState, i["state"]),
                settle_index=i["settle_index"],
                settle_date=i["settle_date"],
                htlcs=[_htlc(network, h) for h in i["htlcs"]],
            )
            network.register_invoice(node, invoice)
    for name, node in network.nodes.items():
        for p in saved[name]["payments"]:
            if p["stuck"]:  # held back by fault injection: `resolve_payment` continues it
                payment = node.payments[bytes.fromhex(p["payment_hash"])]
                payment.deliver = (network.terms_of(payment.payment_request), p["fee_limit_msat"])


def _htlc(network: Network, data: dict[str, Any]) -> SimHtlc:
    payer_name, payment_hash = data["payer"]
    payer = network.nodes.get(payer_name)
    payment = payer.payments.get(bytes.fromhex(payment_hash)) if payer else None
    if payment is None:
        raise StateRefused(f"an HTLC of a payment simnet does not have: {payer_name} {payment_hash}")
    return SimHtlc(
        amt_msat=data["amt_msat"],
        accept_height=data["accept_height"],
        expiry_height=data["expiry_height"],
        payer=payment,
        accept_time=data["accept_time"],
        state=cast(ln.InvoiceHTLCState, data["state"]),
        resolve_time=data["resolve_time"],
    )


# --- the check on load ----------------------------------------------------------------------------
def state_problems(network: Network) -> list[str]:
    """Why this network state is not one a Lightning network could be in ([] when it is)."""
    problems = []
    balances = sum(node.balance_msat for node in network.nodes.values())
    locked = sum(p.locked_msat for node in network.nodes.values() for p in node.payments.values())
    total = balances + locked + network.routing_fees_msat
    if total != network.supply_msat:
        problems.append(
            f"sats not conserved: balances {balances} + locked {locked} + routing fees "
            f"{network.routing_fees_msat} = {total} msat, supply {network.supply_msat} msat"
        )
    held: dict[int, int] = {}
    for node in network.nodes.values():
        for invoice in node.invoices.values():
            for htlc in invoice.htlcs:
                payment = htlc.payer
                if htlc.state == HTLC_ACCEPTED:
                    held[id(payment)] = held.get(id(payment), 0) + 1
                    if payment.status != PAYMENT_IN_FLIGHT or payment.locked_msat != htlc.amt_msat + payment.fee_msat:
                        problems.append(
                            f"{node.name} holds an HTLC of {invoice.r_hash.hex()} whose payment is "
                            f"{ln.Payment.PaymentStatus.Name(payment.status)} locking {payment.locked_msat} msat"
                        )
                if htlc.state == HTLC_SETTLED and payment.status != PAYMENT_SUCCEEDED:
                    problems.append(f"{node.name} settled {invoice.r_hash.hex()} but its payment did not succeed")
    for node in network.nodes.values():
        for payment in node.payments.values():
            if payment.locked_msat and held.get(id(payment)) != 1:
                problems.append(
                    f"{node.name}'s payment {payment.payment_hash.hex()} locks {payment.locked_msat} msat "
                    f"without one held HTLC"
                )
    return problems
