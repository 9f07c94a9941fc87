"""Hostile LNURL answers, fuzzed with hypothesis against a local HTTP server (issue 13, part 5).

Whatever the outside server answers (numbers beyond 64 bits or `1e999`, NaN, wrong types,
non-UTF-8 bytes, JSON nested 30,000 deep under the size cap, random bytes) and whatever a
bech32 LNURL holds, the client returns a checked value or raises `LnurlError`: never an
OverflowError, UnicodeDecodeError or RecursionError into the pipeline. The trade paths map an
`LnurlError` to `invalid_invoice` and the payout records a failure (tests/orders/services/
test_lnurl_hostile.py). Figures: docs/SECURITY.md §Outside servers.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from bech32 import bech32_encode, convertbits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightning.lnurl import MAX_MSAT, LnurlError, PayRequest, fetch_invoice, lnurl_url, resolve_pay_request

EXAMPLES = 300  # per property; three properties → 900 hostile inputs per run

DEEP = b"[" * 30_000 + b"]" * 30_000  # 60,000 bytes: under the 64 KiB cap, deeper than the parser goes
SPECIAL_BODIES = [
    b'{"tag":"payRequest","callback":"CB","minSendable":1e999,"maxSendable":1e999,"metadata":""}',
    b'{"tag":"payRequest","callback":"CB","minSendable":-1e999,"maxSendable":NaN,"metadata":""}',
    b'{"tag":"payRequest","callback":"CB","minSendable":1000,"maxSendable":99999999999999999999999,"metadata":""}',
    b'{"tag":"payRequest","callback":"CB","minSendable":true,"maxSendable":[1],"metadata":{}}',
    b'{"tag":"payRequest","callback":"CB","minSendable":"1000","maxSendable":"9' + b"9" * 5000 + b'"}',
    b'{"tag":"payRequest","callback":"CB","minSendable":1000,"maxSendable":2000,"commentAllowed":1e999}',
    b'{"status":"ERROR","reason":' + b"[" * 900 + b"]" * 900 + b"}",
    b"\xff\xfe{\x00\x00",
    b'{"tag":"payRequest","callback":"\xc3\x28"}',
    DEEP,
    b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
KEYS = ["tag", "callback", "minSendable", "maxSendable", "metadata", "commentAllowed", "status", "reason", "pr"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        state = self.server.state  # type: ignore[attr-defined]
        raw = state["callback"] if self.path.startswith("/cb") else state["pay"]
        raw = raw.replace(b'"CB"', json.dumps(state["url"] + "/cb").encode())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def hostile():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # a client that hangs up early is expected here
    host, port = server.server_address[:2]
    server.state = {"pay": b"{}", "callback": b"{}", "url": f"http://{host}:{port}"}  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _address(server) -> str:
    return f"u@{server.state['url'].removeprefix('http://')}"


def _checked(call):
    """The call's value, or None when it raised an LnurlError; anything else fails the test."""
    try:
        return call()
    except LnurlError:
        return None


def _pay_body(draw_map: dict) -> bytes:
    body = {"tag": "payRequest", "callback": "CB"} | draw_map
    return json.dumps(body, allow_nan=True).encode()


bodies = st.one_of(
    st.sampled_from(SPECIAL_BODIES),
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6).map(_pay_body),
    st.binary(max_size=300),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_any_pay_request_answer_is_a_checked_value_or_an_lnurl_error(hostile, body):
    hostile.state["pay"] = body
    request = _checked(lambda: resolve_pay_request(_address(hostile), allow_loopback=True))
    if request is not None:
        assert isinstance(request, PayRequest)
        assert 0 <= request.min_sendable_msat <= MAX_MSAT
        assert 0 <= request.max_sendable_msat <= MAX_MSAT
        assert request.callback.startswith(("http://", "https://"))


VALID_PAY = b'{"tag":"payRequest","callback":"CB","minSendable":1000,"maxSendable":100000000,"metadata":""}'


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_any_callback_answer_is_an_invoice_string_or_an_lnurl_error(hostile, body):
    hostile.state["pay"], hostile.state["callback"] = VALID_PAY, body
    invoice = _checked(lambda: fetch_invoice(_address(hostile), 5_000, "c", allow_loopback=True))
    if invoice is not None:
        assert isinstance(invoice, str)
        assert invoice == invoice.strip() != ""


@settings(max_examples=EXAMPLES, deadline=None)
@given(payload=st.binary(max_size=200))
def test_any_bech32_lnurl_payload_is_a_url_string_or_an_lnurl_error(payload):
    words = convertbits(list(payload), 8, 5, True)
    text = bech32_encode("lnurl", words)
    url = _checked(lambda: lnurl_url(text, allow_loopback=True))
    assert url is None or isinstance(url, str)


@pytest.mark.parametrize("body", SPECIAL_BODIES, ids=range(len(SPECIAL_BODIES)))
def test_each_named_hostile_answer_is_refused_with_an_lnurl_error(hostile, body):
    hostile.state["pay"] = body
    with pytest.raises(LnurlError):
        resolve_pay_request(_address(hostile), allow_loopback=True)


def test_non_utf8_lnurl_is_an_lnurl_error():
    text = bech32_encode("lnurl", convertbits(list(b"http://x/\xff\xfe"), 8, 5, True))
    with pytest.raises(LnurlError) as refused:
        lnurl_url(text, allow_loopback=True)
    assert refused.value.code == "bad_lnurl"
