"""A total deadline (connect + TLS + headers + body) on every outbound HTTP call (issue 13, part 3).

The dribbling server sends one byte every 50 ms: each read returns well inside any per-read
timeout, and its whole answer would take over 100 s. Only a total deadline ends the request.
"""

import pytest

from lightning import lnurl_http
from lightning.lnurl import LnurlError, resolve_pay_request
from lightning.outbound_deadline import DeadlineExpired, TotalDeadline
from orders.pricing.errors import PriceProviderError
from orders.pricing.fetch import http_get_json
from tests.lightning.dribble_server import DribbleServer


@pytest.fixture
def dribbler():
    with DribbleServer(interval_s=0.05, padding=2000) as server:
        yield server


def test_lnurl_request_to_a_dribbling_server_ends_at_its_total_deadline(dribbler, monkeypatch):
    monkeypatch.setattr(lnurl_http, "TOTAL_TIMEOUT_SECONDS", 0.5)
    with pytest.raises(LnurlError) as refused:
        resolve_pay_request(dribbler.address, allow_loopback=True)
    assert refused.value.code == "timeout"


def test_price_request_to_a_dribbling_server_ends_at_its_total_deadline(dribbler):
    with pytest.raises(PriceProviderError):
        http_get_json(dribbler.url + "/price", timeout=0.5)


def test_a_fast_answer_is_unaffected(monkeypatch):
    with DribbleServer(interval_s=0.0, padding=10) as server:
        request = resolve_pay_request(server.address, allow_loopback=True)
    assert (request.min_sendable_msat, request.max_sendable_msat) == (1000, 10**11)


def test_spent_deadline_refuses_further_work():
    deadline = TotalDeadline(0.0)
    with pytest.raises(DeadlineExpired):
        deadline.remaining()
    assert deadline.expired is True
