"""A real HTTP server on 127.0.0.1 that plays price APIs (and any other JSON API) in tests.

Routes are matched on the path without the query string; each route has a body, a status,
an optional delay and extra headers, and every request is counted and recorded. Use it as a
context manager:

    with PriceServer() as server:
        server.set_json("/yadio/exrates/BTC", {"BTC": {"USD": 65000.5}})
        settings.MOSTRO_BITCOIN_PRICE_API_URL = server.url + "/yadio"

or through the `price_server` fixture (import it into a test module or a conftest).
"""

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import pytest


@dataclass
class Route:
    body: bytes
    status: int = 200
    delay: float = 0.0  # seconds before the answer is sent
    send_length: bool = True  # False: no Content-Length, the body ends when the connection closes
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        route = self.server.owner.record(self.path, headers=dict(self.headers))
        if route is None:
            route = Route(body=b'{"error": "not found"}', status=404)
        if route.delay and self.server.owner.stopping.wait(route.delay):
            self.close_connection = True
            return  # the server is shutting down: drop the connection unanswered
        self.send_response(route.status)
        for name, value in route.headers.items():
            self.send_header(name, value)
        if route.send_length:
            self.send_header("Content-Length", str(len(route.body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            self.wfile.write(route.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout or size cap): expected in those tests

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "PriceServer"


class PriceServer:
    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._routes: dict[str, Route] = {}
        self._hits: dict[str, int] = {}
        self.requests: list[str] = []  # every request target, query string included, in order
        self.request_headers: list[dict[str, str]] = []  # the headers of each of them
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "PriceServer":
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="price-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "PriceServer":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- controls --------------------------------------------------------------------------

    def set_raw(
        self,
        path: str,
        body: bytes,
        *,
        status: int = 200,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
        send_length: bool = True,
    ) -> None:
        route = Route(body=body, status=status, delay=delay, send_length=send_length)
        if headers is not None:
            route.headers = headers
        with self._lock:
            self._routes[path] = route

    def set_json(self, path: str, payload: Any, *, status: int = 200, delay: float = 0.0) -> None:
        self.set_raw(path, json.dumps(payload).encode(), status=status, delay=delay)

    def set_status(self, path: str, status: int) -> None:
        self.set_raw(path, b'{"error": "unavailable"}', status=status)

    def remove(self, path: str) -> None:
        with self._lock:
            self._routes.pop(path, None)

    def hits(self, path: str) -> int:
        with self._lock:
            return self._hits.get(path, 0)

    def record(self, target: str, headers: dict[str, str] | None = None) -> Route | None:
        path = urlsplit(target).path
        with self._lock:
            self.requests.append(target)
            self.request_headers.append(headers or {})
            self._hits[path] = self._hits.get(path, 0) + 1
            return self._routes.get(path)

    # --- price API payloads ------------------------------------------------------------------

    def serve_yadio(self, prefix: str, rates: dict[str, Any], **route: Any) -> None:
        self.set_json(f"{prefix}/exrates/BTC", {"BTC": rates, "base": "BTC", "timestamp": 1717200000000}, **route)

    def serve_coingecko(self, prefix: str, rates: dict[str, Any], **route: Any) -> None:
        self.set_json(f"{prefix}/simple/price", {"bitcoin": rates}, **route)

    def serve_currency_api(self, prefix: str, rates: dict[str, Any], **route: Any) -> None:
        self.set_json(f"{prefix}/currencies/btc.min.json", {"date": "2024-06-01", "btc": rates}, **route)

    def serve_blockchain(self, prefix: str, rates: dict[str, Any], **route: Any) -> None:
        # buy/sell carry a spread the provider must ignore; only `last` is the price.
        tickers = {code: {"15m": 1, "last": last, "buy": 2, "sell": 3, "symbol": code} for code, last in rates.items()}
        self.set_json(f"{prefix}/ticker", tickers, **route)


@pytest.fixture
def price_server(monkeypatch: pytest.MonkeyPatch):
    """A started PriceServer; loopback bypasses any proxy set in the environment."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with PriceServer() as server:
        yield server
