"""simnet killed and started again in the same directory comes back with its state, as LND does.

Each test runs its own `manage.py simnet` process (not the session fixture): the same ports,
certificates and macaroons; invoices, held HTLCs, payments, balances and the block height from
`DIR/simnet-state.json` (lightning/simnet/persistence.py); a state that would create or destroy
sats is refused.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from lightning.errors import LightningError
from lightning.simnet.persistence import STATE_FILE
from lightning.types import InvoiceState, PaymentStatus
from tests.lightning.helpers import new_hold_invoice, pay_in_background, wait_for_state
from tests.lightning.simnet_fixture import SimnetHandle, start_simnet

NODES = ("mostro", "alice")
ARGS = ("--balance-sats", "1000000", "--fee-base-msat", "1000", "--fee-ppm", "1000")
SAVE_TIMEOUT_S = 10.0


def saved(directory: Path) -> dict:
    return json.loads((directory / STATE_FILE).read_text())


def wait_saved(directory: Path, predicate, what: str) -> dict:
    """Until the state file shows `predicate` (the save interval is 0.25 s)."""
    deadline = time.monotonic() + SAVE_TIMEOUT_S
    while True:
        try:
            state = saved(directory)
        except (FileNotFoundError, json.JSONDecodeError):
            state = None
        if state is not None and predicate(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"the state file never showed {what}")
        time.sleep(0.05)


def invoice_state(state: dict, node: str, r_hash_hex: str) -> int | None:
    return next((i["state"] for i in state["nodes"][node]["invoices"] if i["r_hash"] == r_hash_hex), None)


def restart(handle: SimnetHandle, sig: int) -> SimnetHandle:
    os.kill(handle.process.pid, sig)
    handle.process.wait(timeout=10)
    handle.stop()
    return start_simnet(handle.directory, NODES, *ARGS)


@pytest.fixture
def first(tmp_path: Path):
    handle = start_simnet(tmp_path / "simnet", NODES, *ARGS)
    yield handle
    handle.stop()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_a_held_htlc_survives_the_restart_and_settles_after_it(first: SimnetHandle, sig: int):
    mostro, alice = first.client("mostro"), first.client("alice")
    paid = mostro.add_invoice(amount_sats=3_000, memo="paid before")
    assert alice.send_payment(payment_request=paid.payment_request, max_fee_sats=10, timeout_seconds=10).status is (
        PaymentStatus.SUCCEEDED
    )
    preimage, hold = new_hold_invoice(mostro, 20_000)
    payment = pay_in_background(alice, hold.payment_request)
    wait_for_state(mostro, hold.payment_hash_hex, InvoiceState.ACCEPTED)
    first.control.mine(2)
    wait_saved(first.directory, lambda s: invoice_state(s, "mostro", hold.payment_hash_hex) == 3, "ACCEPTED")
    wait_saved(first.directory, lambda s: s["height"] == 502, "the mined blocks")
    cert, macaroon = (
        Path(first.node("mostro")["tls_cert"]).read_bytes(),
        Path(first.node("mostro")["macaroon"]).read_bytes(),
    )

    second = restart(first, sig)
    try:
        # The payer's stream died with the process: what it last saw is IN_FLIGHT.
        assert payment.result(timeout=10).status is PaymentStatus.IN_FLIGHT
        assert second.manifest == first.manifest  # ports, files, pubkeys, control URL
        assert Path(second.node("mostro")["tls_cert"]).read_bytes() == cert
        assert Path(second.node("mostro")["macaroon"]).read_bytes() == macaroon
        assert "resumed=" in (second.directory / "simnet.log").read_text()
        mostro, alice = second.client("mostro"), second.client("alice")
        state = second.control.state()
        assert state["height"] == 502
        fee_msat = 1_000 + 3_000_000 * 1_000 // 1_000_000
        hold_fee_msat = 1_000 + 20_000_000 * 1_000 // 1_000_000
        assert state["nodes"]["mostro"]["balance_msat"] == 1_003_000_000
        assert (
            state["nodes"]["alice"]["balance_msat"] == 1_000_000_000 - 3_000_000 - fee_msat - 20_000_000 - hold_fee_msat
        )
        held = mostro.lookup_invoice(payment_hash=bytes.fromhex(hold.payment_hash_hex))
        assert held.state is InvoiceState.ACCEPTED
        assert held.amount_paid_sats == 20_000
        # LND after a restart: the payment is still in flight until the invoice is settled or canceled.
        tracked = alice.track_payment(payment_hash=bytes.fromhex(hold.payment_hash_hex))
        assert tracked.status is PaymentStatus.IN_FLIGHT
        assert mostro.lookup_invoice(payment_hash=bytes.fromhex(paid.payment_hash_hex)).state is InvoiceState.SETTLED

        mostro.settle_invoice(preimage=preimage)
        done = alice.track_payment(payment_hash=bytes.fromhex(hold.payment_hash_hex), wait_seconds=5)
        assert done.status is PaymentStatus.SUCCEEDED
        assert done.preimage_hex == preimage.hex()
        assert second.control.balance_msat("mostro") == 1_023_000_000
    finally:
        second.stop()


def test_a_held_htlc_canceled_after_the_restart_refunds_the_payer(first: SimnetHandle):
    mostro, alice = first.client("mostro"), first.client("alice")
    _, hold = new_hold_invoice(mostro, 10_000)
    pay_in_background(alice, hold.payment_request)
    wait_for_state(mostro, hold.payment_hash_hex, InvoiceState.ACCEPTED)
    wait_saved(first.directory, lambda s: invoice_state(s, "mostro", hold.payment_hash_hex) == 3, "ACCEPTED")

    second = restart(first, signal.SIGKILL)
    try:
        second.client("mostro").cancel_invoice(payment_hash=bytes.fromhex(hold.payment_hash_hex))
        done = second.client("alice").track_payment(payment_hash=bytes.fromhex(hold.payment_hash_hex), wait_seconds=5)
        assert done.status is PaymentStatus.FAILED
        assert second.control.balance_msat("alice") == 1_000_000_000
        assert second.control.balance_msat("mostro") == 1_000_000_000
    finally:
        second.stop()


def test_a_state_that_creates_sats_is_refused(first: SimnetHandle):
    first.client("mostro").add_invoice(amount_sats=1_000, memo="x")
    first.process.send_signal(signal.SIGTERM)
    first.process.wait(timeout=10)
    state = saved(first.directory)
    state["nodes"]["alice"]["balance_msat"] += 1_000  # one sat out of nowhere
    (first.directory / STATE_FILE).write_text(json.dumps(state))

    with pytest.raises(RuntimeError) as refused:
        start_simnet(first.directory, NODES, *ARGS)
    assert (
        "sats not conserved: balances 2000001000 + locked 0 + routing fees 0 = 2000001000 msat, supply 2000000000 msat"
    ) in str(refused.value)


def test_a_held_htlc_without_its_payment_is_refused(first: SimnetHandle):
    mostro, alice = first.client("mostro"), first.client("alice")
    _, hold = new_hold_invoice(mostro, 10_000)
    pay_in_background(alice, hold.payment_request)
    wait_for_state(mostro, hold.payment_hash_hex, InvoiceState.ACCEPTED)
    first.process.send_signal(signal.SIGTERM)
    first.process.wait(timeout=10)
    state = saved(first.directory)
    [payment] = state["nodes"]["alice"]["payments"]
    payment["locked_msat"] = 0  # the payer forgot the HTLC: its sats would be destroyed
    state["nodes"]["alice"]["balance_msat"] += 10_011_000
    (first.directory / STATE_FILE).write_text(json.dumps(state))

    with pytest.raises(RuntimeError) as refused:
        start_simnet(first.directory, NODES, *ARGS)
    assert f"mostro holds an HTLC of {hold.payment_hash_hex} whose payment is IN_FLIGHT locking 0 msat" in str(
        refused.value
    )


def test_sigkill_in_the_middle_of_payments_always_resumes_a_consistent_state(first: SimnetHandle):
    """Payments (settled at once, and hold invoices left ACCEPTED) run while simnet is SIGKILLed,
    three times: each start passes the check on load (no sat created or destroyed, every held
    HTLC with its in-flight payment), and what it resumed is what the last save had."""
    handle = first
    for round_index in range(3):
        stop = threading.Event()
        mostro, alice = handle.client("mostro"), handle.client("alice")
        traffic = threading.Thread(target=pay_until, args=(mostro, alice, stop), daemon=True)
        traffic.start()
        time.sleep(0.4 + 0.3 * round_index)  # somewhere in the middle of the traffic
        os.kill(handle.process.pid, signal.SIGKILL)
        handle.process.wait(timeout=10)
        stop.set()
        traffic.join(timeout=30)
        last_saved = saved(handle.directory)
        handle.stop()
        handle = start_simnet(handle.directory, NODES, *ARGS)  # refused if inconsistent
        state = handle.control.state()
        assert {name: node["balance_msat"] for name, node in state["nodes"].items()} == {
            name: node["balance_msat"] for name, node in last_saved["nodes"].items()
        }
        assert state["nodes"]["alice"]["invoices"] == 0
        assert state["nodes"]["mostro"]["invoices"] == len(last_saved["nodes"]["mostro"]["invoices"])
    handle.stop()


def pay_until(mostro, alice, stop: threading.Event) -> None:
    """Alice pays mostro's invoices, every other one a hold invoice left held, until `stop`."""
    paid = 0
    while not stop.is_set():
        try:
            if paid % 2:
                _, hold = new_hold_invoice(mostro, 1_000 + paid)
                pay_in_background(alice, hold.payment_request, timeout_seconds=5)
                wait_for_state(mostro, hold.payment_hash_hex, InvoiceState.ACCEPTED, timeout=1.0)
            else:
                invoice = mostro.add_invoice(amount_sats=1_000 + paid, memo="traffic")
                alice.send_payment(payment_request=invoice.payment_request, max_fee_sats=10, timeout_seconds=5)
        except LightningError:
            return  # simnet is gone
        paid += 1


def test_memory_only_when_the_interval_is_zero(tmp_path: Path):
    handle = start_simnet(tmp_path / "simnet", NODES, *ARGS, "--state-interval", "0")
    try:
        handle.client("mostro").add_invoice(amount_sats=1_000, memo="x")
    finally:
        handle.stop()
    assert not (tmp_path / "simnet" / STATE_FILE).exists()
