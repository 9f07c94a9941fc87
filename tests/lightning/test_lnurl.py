"""LNURL-pay / Lightning address against a local HTTP server on 127.0.0.1."""

import ipaddress
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from lightning.lnurl import LnurlError, fetch_invoice, is_lnurl_destination, lnurl_url, resolve_pay_request
from lightning.lnurl_http import check_address, get_json
from nostrbridge.protocol.bech32 import bech32_encode

INVOICE = "lnbcrt10u1pexample"


class Handler(BaseHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):
        pass

    def _json(self, body, status=200):
        raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):  # noqa: N802
        parts = urlsplit(self.path)
        Handler.requests.append((parts.path, parse_qs(parts.query)))
        base = f"http://127.0.0.1:{self.server.server_port}"
        user = parts.path.rsplit("/", 1)[-1]
        if parts.path.startswith("/.well-known/lnurlp/"):
            self._lnurlp(user, base)
        elif parts.path == "/cb/alice":
            self._json({"pr": INVOICE, "routes": []})
        elif parts.path == "/cb/error":
            self._json({"status": "ERROR", "reason": "wallet offline"})
        elif parts.path == "/cb/empty":
            self._json({"pr": ""})

    def _lnurlp(self, user, base):
        pay = {
            "tag": "payRequest",
            "callback": f"{base}/cb/{user}",
            "minSendable": 1_000,
            "maxSendable": 10_000_000,
            "metadata": '[["text/plain","pay"]]',
            "commentAllowed": 20,
        }
        if user in ("alice", "error", "empty"):
            self._json(pay)
        elif user == "failing":
            self._json({"status": "ERROR", "reason": "no such user"})
        elif user == "channel":
            self._json({**pay, "tag": "channelRequest"})
        elif user == "big":
            self._json(b"{" + b" " * (70 * 1024) + b"}")
        elif user == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/")
            self.end_headers()
        elif user == "slow":
            time.sleep(1.5)
            self._json(pay)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


@pytest.fixture(autouse=True)
def _clear():
    Handler.requests.clear()


def test_address_url_forms(settings):
    assert lnurl_url("Alice@Example.com", allow_loopback=False) == "https://example.com/.well-known/lnurlp/alice"
    assert lnurl_url("bob@127.0.0.1:8080", allow_loopback=True) == "http://127.0.0.1:8080/.well-known/lnurlp/bob"
    assert lnurl_url("bob@127.0.0.1:8080", allow_loopback=False) == "https://127.0.0.1:8080/.well-known/lnurlp/bob"
    assert is_lnurl_destination("lightning:alice@example.com") is True
    assert is_lnurl_destination("lnbcrt1xyz") is False


def test_resolves_a_pay_request(server):
    request = resolve_pay_request(f"alice@{server}")
    assert (request.callback, request.min_sendable_msat, request.max_sendable_msat, request.comment_allowed) == (
        f"http://{server}/cb/alice",
        1_000,
        10_000_000,
        20,
    )


def test_fetches_an_invoice_with_a_comment(server):
    invoice = fetch_invoice(f"alice@{server}", 5_000, comment="mostro-dev-fee")
    assert invoice == INVOICE
    assert Handler.requests[-1] == ("/cb/alice", {"amount": ["5000000"], "comment": ["mostro-dev-fee"]})


def test_drops_a_comment_longer_than_allowed(server):
    fetch_invoice(f"alice@{server}", 5_000, comment="x" * 21)
    assert Handler.requests[-1] == ("/cb/alice", {"amount": ["5000000"]})


def test_bech32_lnurl(server):
    url = f"http://{server}/.well-known/lnurlp/alice"
    encoded = bech32_encode("lnurl", url.encode()).upper()
    assert lnurl_url(encoded) == url
    assert fetch_invoice(encoded, 1) == INVOICE


@pytest.mark.parametrize(
    ("address", "amount", "code"),
    [
        ("failing", 5_000, "lnurl_error"),
        ("channel", 5_000, "not_pay_request"),
        ("alice", 0, "amount_out_of_range"),
        ("alice", 10_001, "amount_out_of_range"),
        ("error", 5_000, "lnurl_error"),
        ("empty", 5_000, "no_invoice"),
        ("big", 5_000, "too_large"),
        ("redirect", 5_000, "redirect_refused"),
    ],
)
def test_refusals(server, address, amount, code):
    with pytest.raises(LnurlError) as refused:
        fetch_invoice(f"{address}@{server}", amount)
    assert refused.value.code == code


def test_error_reason_is_reported(server):
    with pytest.raises(LnurlError) as refused:
        resolve_pay_request(f"failing@{server}")
    assert refused.value.message == "LNURL service error: no such user"


def test_total_timeout(server, monkeypatch):
    monkeypatch.setattr("lightning.lnurl_http.CONNECT_TIMEOUT_SECONDS", 0.5)
    with pytest.raises(LnurlError) as refused:
        resolve_pay_request(f"slow@{server}")
    assert refused.value.code == "timeout"


def test_loopback_refused_when_not_allowed(server, settings):
    settings.MOSTRO_LNURL_ALLOW_LOOPBACK = False
    with pytest.raises(LnurlError) as refused:
        resolve_pay_request(f"alice@{server}")
    assert refused.value.code == "forbidden_address"
    assert Handler.requests == []  # nothing was sent


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "http://user:pw@127.0.0.1:1/x", "http:///nohost"])
def test_bad_urls(url):
    with pytest.raises(LnurlError) as refused:
        get_json(url, allow_loopback=True)
    assert refused.value.code == "bad_url"


@pytest.mark.parametrize(
    "ip",
    [
        "169.254.169.254",
        "100.64.0.1",
        "224.0.0.1",
        "0.0.0.0",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "fe80::1",
        "2001:db8::1",
        "64:ff9b::1.2.3.4",
        "::",
        "ff02::1",
        "::ffff:169.254.1.1",
    ],
)
def test_always_refused_addresses(ip):
    with pytest.raises(LnurlError):
        check_address(ipaddress.ip_address(ip), allow_loopback=True)


@pytest.mark.parametrize("ip", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "::1", "fd00::1"])
def test_private_addresses_depend_on_the_setting(ip):
    check_address(ipaddress.ip_address(ip), allow_loopback=True)
    with pytest.raises(LnurlError):
        check_address(ipaddress.ip_address(ip), allow_loopback=False)


def test_public_address_is_allowed():
    check_address(ipaddress.ip_address("1.1.1.1"), allow_loopback=False)
