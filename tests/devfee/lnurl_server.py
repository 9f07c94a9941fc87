"""A local LNURL-pay service (LUD-06/LUD-16, LUD-12 comments) for the dev-fund address.

Every callback mints a fresh invoice for the requested amount through `invoice_factory`
(a fake-wallet BOLT11, or a real invoice of a simulated node), and records what was asked:

    with DevFundServer(lambda sats: mint_invoice(amount_sats=sats)) as fund:
        settings.MOSTRO_DEV_FEE_LIGHTNING_ADDRESS = fund.address
        ...
        fund.requests  # [(amount_msat, comment or None), ...]
"""

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

USER = "devfund"


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        fund = self.server.fund
        if parts.path == f"/.well-known/lnurlp/{USER}":
            body = fund.pay_request()
        elif parts.path == f"/lnurlp/{USER}/callback":
            query = parse_qs(parts.query)
            body = fund.callback(int(query["amount"][0]), query.get("comment", [None])[0])
        else:
            body = {"status": "ERROR", "reason": "not found"}
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args) -> None:
        """Keep test output clean."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fund: "DevFundServer"


class DevFundServer:
    def __init__(self, invoice_factory: Callable[[int], str], *, comment_allowed: int | None = 255) -> None:
        self.invoice_factory = invoice_factory
        self.comment_allowed = comment_allowed
        self.requests: list[tuple[int, str | None]] = []
        self.invoices: list[str] = []
        self.amount_override_sats: int | None = None  # answer for another amount (a bad service)
        self.error: str | None = None  # answer the callback with status ERROR
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def address(self) -> str:
        return f"{USER}@{self.url.removeprefix('http://')}"

    def pay_request(self) -> dict:
        body = {
            "tag": "payRequest",
            "callback": f"{self.url}/lnurlp/{USER}/callback",
            "minSendable": 1000,
            "maxSendable": 10**11,
            "metadata": '[["text/plain","Mostro development fund"]]',
        }
        if self.comment_allowed is not None:
            body["commentAllowed"] = self.comment_allowed
        return body

    def callback(self, amount_msat: int, comment: str | None) -> dict:
        with self._lock:
            self.requests.append((amount_msat, comment))
            if self.error:
                return {"status": "ERROR", "reason": self.error}
            sats = self.amount_override_sats or amount_msat // 1000
            invoice = self.invoice_factory(sats)
            self.invoices.append(invoice)
        return {"pr": invoice, "routes": []}

    def __enter__(self) -> "DevFundServer":
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fund = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
