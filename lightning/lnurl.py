"""Lightning address (LUD-16) and bech32 LNURL (LUD-01) → LNURL-pay (LUD-06, LUD-12).

`resolve_pay_request(address)` checks that the destination is a payRequest endpoint (the
add-invoice check, docs/PROTOCOL.md §Invoices); `fetch_invoice(address, amount_sats, comment)` asks
it for a BOLT11 invoice (payout and dev fee). HTTP goes through `lnurl_http.get_json`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from lightning.lnurl_http import LnurlError, allow_loopback_default, get_json
from nostrbridge.protocol.bech32 import bech32_decode

__all__ = ["LnurlError", "PayRequest", "fetch_invoice", "is_lnurl_destination", "lnurl_url", "resolve_pay_request"]

_ADDRESS = re.compile(r"^([a-z0-9_.+-]+)@([a-z0-9.-]+(?::\d{1,5})?)$", re.IGNORECASE)
_LOCAL_HOSTS = ("localhost",)
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class PayRequest:
    callback: str
    min_sendable_msat: int
    max_sendable_msat: int
    metadata: str
    comment_allowed: int = 0


def _strip(destination: str) -> str:
    text = destination.strip()
    if text.lower().startswith("lightning:"):
        text = text[len("lightning:") :]
    return text


def is_lnurl_destination(destination: str) -> bool:
    """A Lightning address or a bech32 LNURL (as opposed to a BOLT11 invoice)."""
    text = _strip(destination)
    return bool(_ADDRESS.match(text)) or text.lower().startswith("lnurl1")


def _is_local(host: str) -> bool:
    if host.lower() in _LOCAL_HOSTS:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def lnurl_url(destination: str, *, allow_loopback: bool | None = None) -> str:
    """The LNURL-pay URL of a Lightning address or bech32 LNURL.

    `user@domain` → `https://domain/.well-known/lnurlp/user`; with loopback allowed,
    `user@127.0.0.1:PORT` (or localhost) uses plain http, for local test servers.
    """
    text = _strip(destination)
    if allow_loopback is None:
        allow_loopback = allow_loopback_default()
    match = _ADDRESS.match(text)
    if match:
        user, domain = match.group(1).lower(), match.group(2).lower()
        scheme = "http" if allow_loopback and _is_local(domain.rsplit(":", 1)[0]) else "https"
        return f"{scheme}://{domain}/.well-known/lnurlp/{user}"
    if text.lower().startswith("lnurl1"):
        decoded = bech32_decode(text.lower())
        if decoded is None or decoded[0] != "lnurl":
            raise LnurlError("bad_lnurl", "not a valid bech32 LNURL")
        try:
            return decoded[1].decode("utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            raise LnurlError("bad_lnurl", "bech32 LNURL does not hold a UTF-8 URL") from exc
    raise LnurlError("bad_destination", "not a Lightning address or LNURL")


MAX_MSAT = 2**63 - 1  # what a signed 64-bit field (LND, the database) can hold


def _msat(value: Any) -> int:
    """A non-negative integer that fits 64 bits: JSON ints, or digit strings some services send.

    `1e999` parses to infinity, `1.5` is not an amount, `true` is not a number: all refused."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not an amount")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise TypeError(f"{type(value).__name__} is not an integer amount")
    if not 0 <= value <= MAX_MSAT:
        raise ValueError(f"amount {str(value)[:24]} outside 0…2^63−1")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{type(value).__name__} is not a string")
    return value


def _error_status(data: dict[str, Any]) -> None:
    status, reason = data.get("status"), data.get("reason")
    if isinstance(status, str) and status.upper() == "ERROR":
        raise LnurlError("lnurl_error", f"LNURL service error: {reason[:200] if isinstance(reason, str) else ''}")


def _answers_are_checked(function: Callable[P, R]) -> Callable[P, R]:
    """Class fix: whatever an outside server answers, the caller sees a value or an LnurlError
    (never an OverflowError, UnicodeError or RecursionError escaping into the pipeline)."""

    @functools.wraps(function)
    def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except LnurlError:
            raise
        except (ValueError, TypeError, OverflowError, RecursionError, UnicodeError) as exc:
            raise LnurlError("bad_answer", f"LNURL answer unusable: {type(exc).__name__}") from exc

    return checked


@_answers_are_checked
def resolve_pay_request(destination: str, *, allow_loopback: bool | None = None) -> PayRequest:
    data = get_json(lnurl_url(destination, allow_loopback=allow_loopback), allow_loopback=allow_loopback)
    _error_status(data)
    if data.get("tag") != "payRequest":
        raise LnurlError("not_pay_request", f"LNURL tag is {data.get('tag')!r}, not 'payRequest'")
    try:
        request = PayRequest(
            callback=_text(data["callback"]),
            min_sendable_msat=_msat(data["minSendable"]),
            max_sendable_msat=_msat(data["maxSendable"]),
            metadata=_text(data.get("metadata", "")),
            comment_allowed=_msat(data.get("commentAllowed") or 0),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise LnurlError("bad_pay_request", f"LNURL payRequest is missing or has a bad field: {exc}") from exc
    if not request.callback.startswith(("https://", "http://")):
        raise LnurlError("bad_pay_request", "LNURL callback is not an http(s) URL")
    return request


def _callback_url(callback: str, params: dict[str, Any]) -> str:
    parts = urlsplit(callback)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


@_answers_are_checked
def fetch_invoice(
    destination: str, amount_sats: int, comment: str | None = None, *, allow_loopback: bool | None = None
) -> str:
    """A BOLT11 invoice for `amount_sats` from the destination's LNURL-pay service.

    The LUD-12 comment is sent only when the service allows one that long (dropped
    otherwise, as Mostro does for its dev-fee comment).
    """
    request = resolve_pay_request(destination, allow_loopback=allow_loopback)
    amount_msat = amount_sats * 1000
    if not request.min_sendable_msat <= amount_msat <= request.max_sendable_msat:
        raise LnurlError(
            "amount_out_of_range",
            f"{amount_msat} msat outside [{request.min_sendable_msat}, {request.max_sendable_msat}]",
        )
    params: dict[str, object] = {"amount": amount_msat}
    if comment and request.comment_allowed >= len(comment):
        params["comment"] = comment
    data = get_json(_callback_url(request.callback, params), allow_loopback=allow_loopback)
    _error_status(data)
    invoice = data.get("pr")
    if not isinstance(invoice, str) or not invoice.strip():
        raise LnurlError("no_invoice", "LNURL callback returned no invoice")
    return invoice.strip()
