"""A guarded HTTP GET for LNURL endpoints (docs/PROTOCOL.md §Invoices).

The URL comes from a user, so the request is treated as an SSRF risk: http/https only, no
userinfo, the host resolved once (2 s) and every address checked before connecting to that
pinned address, no redirects, connect timeout 2 s, 4 s in total, a 64 KiB answer at most.
Loopback and private addresses are allowed only with MOSTRO_LNURL_ALLOW_LOOPBACK (tests).
"""

from __future__ import annotations

import concurrent.futures
import http.client
import ipaddress
import json
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

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
    def __init__(self, host: str, port: int, ip: str) -> None:
        super().__init__(host, port, timeout=CONNECT_TIMEOUT_SECONDS)
        self._ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), CONNECT_TIMEOUT_SECONDS)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, ip: str) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=CONNECT_TIMEOUT_SECONDS, context=self._tls)
        self._ip = ip

    def connect(self) -> None:
        sock = socket.create_connection((self._ip, self.port), CONNECT_TIMEOUT_SECONDS)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


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
    started = time.monotonic()
    ip = resolve_pinned(parts.hostname, port, allow_loopback=allow_loopback)
    cls = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    conn = cls(parts.hostname, port, ip)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("GET", path, headers={"Accept": "application/json", "User-Agent": "mostro-django"})
        response = conn.getresponse()
        body = _read_limited(response, conn, started)
    except TimeoutError as exc:
        raise LnurlError("timeout", f"LNURL request to {parts.hostname} timed out") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise LnurlError("http_failed", f"LNURL request to {parts.hostname} failed: {exc}") from exc
    finally:
        conn.close()
    if 300 <= response.status < 400:
        raise LnurlError("redirect_refused", f"LNURL endpoint answered a redirect ({response.status}); refused")
    if response.status != 200:
        raise LnurlError("http_status", f"LNURL endpoint answered HTTP {response.status}")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise LnurlError("bad_json", "LNURL endpoint did not answer JSON") from exc
    if not isinstance(data, dict):
        raise LnurlError("bad_json", "LNURL endpoint did not answer a JSON object")
    return data


def _read_limited(response: http.client.HTTPResponse, conn: http.client.HTTPConnection, started: float) -> bytes:
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise LnurlError("too_large", f"LNURL answer of {declared} bytes exceeds {MAX_RESPONSE_BYTES}")
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = TOTAL_TIMEOUT_SECONDS - (time.monotonic() - started)
        if remaining <= 0:
            raise LnurlError("timeout", f"LNURL request took over {TOTAL_TIMEOUT_SECONDS} s")
        if conn.sock is not None:
            conn.sock.settimeout(min(remaining, CONNECT_TIMEOUT_SECONDS))
        chunk = response.read1(16 * 1024) if hasattr(response, "read1") else response.read(16 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise LnurlError("too_large", f"LNURL answer exceeds {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
