"""A guarded HTTP GET for LNURL endpoints (docs/PROTOCOL.md §Invoices).

The URL comes from a user, so the request is treated as an SSRF risk: http/https only, no
userinfo, the host resolved once (2 s) and every address checked before connecting to that
pinned address, no redirects, connect timeout 2 s, 4 s in total for connect + TLS + headers +
body (`lightning.outbound_deadline`: a dribbling server is cut off), a 64 KiB answer at most.
Loopback and private addresses are allowed only with MOSTRO_LNURL_ALLOW_LOOPBACK (tests).
"""

from __future__ import annotations

import concurrent.futures
import http.client
import ipaddress
import json
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from lightning.outbound_deadline import TotalDeadline

DNS_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 2.0
TOTAL_TIMEOUT_SECONDS = 4.0
MAX_RESPONSE_BYTES = 64 * 1024
_ALWAYS_REFUSED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "100.64.0.0/10",  # CGNAT
        "192.0.2.0/24",  # documentation
        "198.51.100.0/24",
        "203.0.113.0/24",
        "2001:db8::/32",
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",
    )
)
_dns_pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="lnurl-dns")


class LnurlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def allow_loopback_default() -> bool:
    from django.conf import settings

    return bool(getattr(settings, "MOSTRO_LNURL_ALLOW_LOOPBACK", False))


def check_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_loopback: bool) -> None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or any(ip in net for net in _ALWAYS_REFUSED):
        raise LnurlError("forbidden_address", f"LNURL host resolves to a forbidden address {ip}")
    if ip.is_loopback or ip.is_private:
        if not allow_loopback:
            raise LnurlError("forbidden_address", f"LNURL host resolves to a private or loopback address {ip}")
        return
    if ip.is_reserved:
        raise LnurlError("forbidden_address", f"LNURL host resolves to a reserved address {ip}")


def resolve_pinned(host: str, port: int, *, allow_loopback: bool) -> str:
    """Resolve once (2 s) and return the address to connect to; every answer is checked."""
    try:
        infos = _dns_pool.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM).result(DNS_TIMEOUT_SECONDS)
    except concurrent.futures.TimeoutError as exc:
        raise LnurlError("dns_timeout", f"DNS lookup of {host} took over {DNS_TIMEOUT_SECONDS} s") from exc
    except OSError as exc:
        raise LnurlError("dns_failed", f"DNS lookup of {host} failed: {exc}") from exc
    # The sockaddr's first item is the address text (an int only for AF_UNIX-like families).
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise LnurlError("dns_failed", f"DNS lookup of {host} returned nothing")
    for address in addresses:
        check_address(address, allow_loopback=allow_loopback)
    return str(addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, ip: str, deadline: TotalDeadline) -> None:
        super().__init__(host, port, timeout=CONNECT_TIMEOUT_SECONDS)
        self._ip = ip
        self._deadline = deadline

    def connect(self) -> None:
        self.sock = _pinned_socket(self._ip, self.port, self._deadline)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, ip: str, deadline: TotalDeadline) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=CONNECT_TIMEOUT_SECONDS, context=self._tls)
        self._ip = ip
        self._deadline = deadline

    def connect(self) -> None:
        sock = _pinned_socket(self._ip, self.port, self._deadline)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def _pinned_socket(ip: str, port: int, deadline: TotalDeadline) -> socket.socket:
    # The connect waits at most what is left of the total; the armed timer then bounds the
    # TLS handshake, the headers and the body together (a dribbling server included).
    sock = socket.create_connection((ip, port), min(CONNECT_TIMEOUT_SECONDS, deadline.remaining()))
    deadline.arm(sock)
    return sock


def get_json(url: str, *, allow_loopback: bool | None = None) -> dict[str, Any]:
    """GET `url` under the rules above and return the JSON object it answers."""
    if allow_loopback is None:
        allow_loopback = allow_loopback_default()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise LnurlError("bad_url", f"LNURL scheme {parts.scheme!r} is not http or https")
    if parts.username is not None or parts.password is not None or not parts.hostname:
        raise LnurlError("bad_url", "LNURL URL must have a host and no userinfo")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with TotalDeadline(TOTAL_TIMEOUT_SECONDS) as deadline:
        ip = resolve_pinned(parts.hostname, port, allow_loopback=allow_loopback)
        cls = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        conn = cls(parts.hostname, port, ip, deadline)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("GET", path, headers={"Accept": "application/json", "User-Agent": "mostro-django"})
            response = conn.getresponse()
            body = _read_limited(response, conn, deadline)
        except (OSError, http.client.HTTPException) as exc:
            if deadline.expired or isinstance(exc, TimeoutError):
                raise LnurlError("timeout", f"LNURL request to {parts.hostname} timed out") from exc
            raise LnurlError("http_failed", f"LNURL request to {parts.hostname} failed: {exc}") from exc
        finally:
            conn.close()
        if deadline.expired:  # the timer cut the stream short: what was read is not the answer
            raise LnurlError("timeout", f"LNURL request to {parts.hostname} took over {TOTAL_TIMEOUT_SECONDS} s")
    if 300 <= response.status < 400:
        raise LnurlError("redirect_refused", f"LNURL endpoint answered a redirect ({response.status}); refused")
    if response.status != 200:
        raise LnurlError("http_status", f"LNURL endpoint answered HTTP {response.status}")
    try:
        # A hostile answer under the size cap may still be non-UTF-8 (ValueError) or nested
        # deeper than the parser's recursion limit (RecursionError): both are bad JSON here.
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise LnurlError("bad_json", "LNURL endpoint did not answer JSON") from exc
    if not isinstance(data, dict):
        raise LnurlError("bad_json", "LNURL endpoint did not answer a JSON object")
    return data


def _read_limited(
    response: http.client.HTTPResponse, conn: http.client.HTTPConnection, deadline: TotalDeadline
) -> bytes:
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise LnurlError("too_large", f"LNURL answer of {declared} bytes exceeds {MAX_RESPONSE_BYTES}")
    chunks: list[bytes] = []
    size = 0
    while True:
        deadline.remaining()  # raises DeadlineExpired (a TimeoutError) once the budget is spent
        chunk = response.read1(16 * 1024) if hasattr(response, "read1") else response.read(16 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise LnurlError("too_large", f"LNURL answer exceeds {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
