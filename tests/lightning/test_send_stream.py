"""`LndClient.send_payment`'s stream on the calling thread (`_send_stubs`) and `_follow(to_end=True)`:
no thread per payment, the stream read to the end the server gives it, the final update kept."""

import threading

import grpc
import pytest

from lightning.grpc import lightning_pb2 as ln
from lightning.lnd import LndClient
from lightning.lnd_channel import CHANNEL_OPTIONS, SEND_CHANNEL_OPTIONS
from lightning.types import PaymentStatus

HASH = "ab" * 32


class _Stream:
    """A payment stream: the given updates, then the given error (if any)."""

    def __init__(self, *items):
        self.items, self.read, self.cancelled = list(items), 0, False

    def __iter__(self):
        for item in self.items:
            self.read += 1
            if isinstance(item, Exception):
                raise item
            yield item

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class _Broken(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def _update(status: int, **fields) -> ln.Payment:
    return ln.Payment(payment_hash=HASH, status=status, **fields)


IN_FLIGHT, SUCCEEDED, FAILED = ln.Payment.IN_FLIGHT, ln.Payment.SUCCEEDED, ln.Payment.FAILED


def _follow(stream, **kwargs):
    return LndClient(host="127.0.0.1:1")._follow(stream, "SendPaymentV2", wait_final=True, **kwargs)


def test_the_send_channel_alone_reads_streams_on_the_calling_thread():
    assert SEND_CHANNEL_OPTIONS == (*CHANNEL_OPTIONS, ("SingleThreadedUnaryStream", 1))
    assert "SingleThreadedUnaryStream" not in dict(CHANNEL_OPTIONS)


def test_every_channel_caps_its_reconnect_backoff_at_five_seconds():
    # grpc's default backoff grows to 120 s: calls fail at once for that long after LND is back.
    assert dict(CHANNEL_OPTIONS)["grpc.max_reconnect_backoff_ms"] == 5_000
    assert dict(SEND_CHANNEL_OPTIONS)["grpc.max_reconnect_backoff_ms"] == 5_000


def test_to_end_reads_past_the_final_update_and_keeps_it():
    stream = _Stream(_update(IN_FLIGHT), _update(SUCCEEDED, fee_sat=6, value_sat=5_000), _update(FAILED))
    outcome = _follow(stream, to_end=True)
    assert (outcome.status, outcome.fee_sats, outcome.amount_sats) == (PaymentStatus.SUCCEEDED, 6, 5_000)
    assert (stream.read, stream.cancelled) == (3, True)


def test_without_to_end_the_read_stops_at_the_final_update():
    stream = _Stream(_update(IN_FLIGHT), _update(SUCCEEDED), _update(FAILED))
    assert _follow(stream).status is PaymentStatus.SUCCEEDED
    assert stream.read == 2


@pytest.mark.parametrize("code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE])
def test_an_error_after_the_final_update_does_not_replace_it(code):
    stream = _Stream(_update(IN_FLIGHT), _update(FAILED, failure_reason=ln.FAILURE_REASON_NO_ROUTE), _Broken(code))
    outcome = _follow(stream, to_end=True)
    assert (outcome.status, outcome.failure_reason) == (PaymentStatus.FAILED, "FAILURE_REASON_NO_ROUTE")


def test_an_error_before_the_final_update_is_still_unknown_or_raised():
    in_flight = _follow(_Stream(_update(IN_FLIGHT), _Broken(grpc.StatusCode.DEADLINE_EXCEEDED)), to_end=True)
    assert in_flight.status is PaymentStatus.IN_FLIGHT
    with pytest.raises(Exception) as raised:
        _follow(_Stream(_Broken(grpc.StatusCode.INVALID_ARGUMENT, "invoice expired")), to_end=True)
    assert type(raised.value).__name__ == "LightningRejected"


def test_a_payment_over_simnet_starts_no_thread(nodes, monkeypatch):
    mostro, _, bob = nodes
    mostro.get_info()  # the unary channel exists already, as in a worker (the escrow lookup)
    started = []
    real_start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda thread: (started.append(thread.name), real_start(thread)))
    for amount in (1_000, 2_000):
        invoice = bob.add_invoice(amount_sats=amount, memo="payout", expiry_seconds=7_200)
        outcome = mostro.send_payment(payment_request=invoice.payment_request, max_fee_sats=50, timeout_seconds=30)
        assert (outcome.status, outcome.amount_sats) == (PaymentStatus.SUCCEEDED, amount)
    assert started == []
