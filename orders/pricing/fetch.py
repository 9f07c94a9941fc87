"""GET a JSON document from a price API with a hard time budget and a size cap.

stdlib only (`urllib`), so the price feed adds no dependency. The opener is built by hand
with the HTTP(S) handlers alone: the default `build_opener` also registers `file:` and
`ftp:` handlers, and an operator-typed URL (or a redirect) must never read a local file.
Environment proxies (HTTPS_PROXY, NO_PROXY) are honoured, as any egress client should.
"""

import http.client
import json
import ssl
import time
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from lightning.outbound_deadline import TotalDeadline
from orders.pricing.errors import PriceProviderError

MAX_RESPONSE_BYTES = 1024 * 1024  # the largest real payload (currency-api, ~330 codes) is ~10 KiB
_READ_CHUNK_BYTES = 64 * 1024
_USER_AGENT = "mostro-django/price-feed"
# Outside these a number is a broken feed, not a market price (see `price_number`).
MIN_PRICE = Decimal("0.00000001")
MAX_PRICE = Decimal("1e16")


class _ArmedConnection(http.client.HTTPConnection):
    """Arms the request's total deadline on the socket as soon as it exists (before TLS)."""

    deadline: TotalDeadline

    def connect(self) -> None:
        self.timeout = min(float(self.timeout or self.deadline.seconds), self.deadline.remaining())
        super().connect()
        self.deadline.arm(self.sock)


class _ArmedHTTPSConnection(http.client.HTTPSConnection, _ArmedConnection):
    pass  # HTTPSConnection.connect → _ArmedConnection.connect (socket + arm) → TLS wrap


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: TotalDeadline) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection: Any = type("_Conn", (_ArmedConnection,), {"deadline": self.deadline})
        return self.do_open(connection, req)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: TotalDeadline) -> None:
        super().__init__(context=ssl.create_default_context())
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection: Any = type("_Conn", (_ArmedHTTPSConnection,), {"deadline": self.deadline})
        return self.do_open(connection, req, context=self._context)  # type: ignore[attr-defined]


def _opener(*, follow_redirects: bool, deadline: TotalDeadline) -> urllib.request.OpenerDirector:
    opener = urllib.request.OpenerDirector()
    handlers: list[urllib.request.BaseHandler] = [
        urllib.request.ProxyHandler(),
        _DeadlineHTTPHandler(deadline),
        _DeadlineHTTPSHandler(deadline),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.UnknownHandler(),  # any other scheme, e.g. a redirect to file:, is an error
    ]
    if follow_redirects:
        handlers.append(urllib.request.HTTPRedirectHandler())
    for handler in handlers:
        opener.add_handler(handler)
    return opener


def http_get_json(
    url: str, *, timeout: float, max_bytes: int = MAX_RESPONSE_BYTES, headers: dict[str, str] | None = None
) -> Any:
    """Return the decoded JSON body of `GET url`, numbers as `Decimal`.

    `timeout` is a total deadline on connect + TLS + headers + body (`TotalDeadline`: the
    socket is shut down when it ends), so a server that trickles bytes cannot hold the job. Any
    transport error, non-2xx status, oversize or malformed body raises `PriceProviderError`.
    NaN/Infinity literals decode to None so that they are dropped like any non-number.
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise PriceProviderError("only http(s) URLs are fetched")
    # The opener below has no file:/ftp: handler either, so a redirect cannot leave http(s).
    request = urllib.request.Request(  # noqa: S310
        url, headers={"Accept": "application/json", "User-Agent": _USER_AGENT, **(headers or {})}
    )
    deadline = TotalDeadline(timeout)  # connect + TLS + headers + body, redirects included
    try:
        # urllib forwards every header on a redirect, to any host: with a credential (an API
        # token) a redirect is refused instead, so the token only ever reaches `url`'s host.
        opener = _opener(follow_redirects=not headers, deadline=deadline)
        with deadline, opener.open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise PriceProviderError(f"response declares {declared} bytes, cap is {max_bytes}")
            body = _read_capped(response, max_bytes=max_bytes, deadline=deadline)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise PriceProviderError(f"HTTP status {exc.code}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # OSError covers URLError, refused connections, socket timeouts and the total deadline;
        # ValueError an unparseable URL. All of them mean "no answer this tick".
        raise PriceProviderError(f"{type(exc).__name__}: {exc}") from exc
    if deadline.expired:
        raise PriceProviderError("response not complete within the time budget")
    try:
        return price_json_decode(body)
    except (ValueError, RecursionError) as exc:
        raise PriceProviderError(f"malformed JSON body: {exc}") from exc


def price_json_decode(body: str | bytes) -> Any:
    """JSON with every number as `Decimal` and NaN/Infinity as None (dropped like any non-number).

    Raises ValueError or RecursionError on a malformed document.
    """
    return json.loads(body, parse_float=Decimal, parse_int=Decimal, parse_constant=lambda _name: None)


def price_number(raw: Any) -> Decimal | None:
    """`raw` (from `price_json_decode`) if it can be a price or a rate, else None.

    bool, str, null and NaN are not numbers here; a value must also fit BtcPrice.price (24
    digits, 8 decimals) and stay positive once rounded to 8 decimals.
    """
    if not isinstance(raw, Decimal) or not raw.is_finite() or not MIN_PRICE <= raw < MAX_PRICE:
        return None
    return raw


def _read_capped(response: http.client.HTTPResponse, *, max_bytes: int, deadline: TotalDeadline) -> bytes:
    chunks: list[bytes] = []
    received = 0
    while True:
        # read1 returns after one socket read, so the deadline is checked between packets.
        chunk = response.read1(_READ_CHUNK_BYTES)
        if not chunk:
            return b"".join(chunks)
        received += len(chunk)
        if received > max_bytes:
            raise PriceProviderError(f"response exceeds {max_bytes} bytes")
        if deadline.expired or time.monotonic() > deadline.ends_at:
            raise PriceProviderError("response body not complete within the time budget")
        chunks.append(chunk)
