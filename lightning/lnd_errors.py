"""`grpc.RpcError` -> the typed errors of `lightning.errors`, plus the transaction guard.

LND answers almost every refusal with status UNKNOWN and a Go error string, so the
subclass is chosen from LND's well-known messages (stable across releases since 0.10).
"""

from __future__ import annotations

import sys

import grpc

from lightning.errors import (
    AlreadySettledOrCanceled,
    InvoiceNotFound,
    InvoiceStillOpen,
    LightningError,
    LightningPermissionDenied,
    LightningRejected,
    LightningUnavailable,
    PaymentAlreadyExists,
)

RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
    }
)
_TLS_HINTS = ("handshake", "certificate", "ssl", "tls")
_AUTH_HINTS = ("verification failed", "macaroon", "permission denied", "signature mismatch")
_MESSAGE_CLASSES: tuple[tuple[str, type[LightningRejected]], ...] = (
    ("unable to locate invoice", InvoiceNotFound),
    ("invoice already settled", AlreadySettledOrCanceled),
    ("invoice already canceled", AlreadySettledOrCanceled),
    ("invoice still open", InvoiceStillOpen),
    ("invoice is already paid", PaymentAlreadyExists),
    ("payment is in transition", PaymentAlreadyExists),
    ("payment already exists", PaymentAlreadyExists),
)


def map_rpc_error(exc: grpc.RpcError, *, method: str, target: str, cert_file: str = "") -> LightningError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else "") or ""
    lowered = details.lower()
    kwargs = {"code": code.name, "details": details}
    if code in RETRYABLE_CODES:
        if any(hint in lowered for hint in _TLS_HINTS):
            return LightningUnavailable(
                f"TLS handshake with LND at {target} failed ({method}): is {cert_file or 'LND_CERT_FILE'} "
                f"that node's tls.cert? [{details}]",
                **kwargs,
            )
        return LightningUnavailable(f"LND at {target} unavailable for {method}: {code.name} {details}", **kwargs)
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED) or any(
        hint in lowered for hint in _AUTH_HINTS
    ):
        return LightningPermissionDenied(
            f"permission denied by LND at {target} for {method}: macaroon rejected ({details})", **kwargs
        )
    if code is grpc.StatusCode.ALREADY_EXISTS:
        return PaymentAlreadyExists(f"LND {method}: {details}", **kwargs)
    for needle, cls in _MESSAGE_CLASSES:
        if needle in lowered:
            return cls(f"LND {method}: {details}", **kwargs)
    return LightningRejected(f"LND {method} refused: {code.name} {details}", **kwargs)


# Read once per settings state: every Lightning call asked three settings, one of them missing
# (a raised AttributeError inside Django's lazy settings), ~0.3 % of the node's CPU (docs/PERFORMANCE.md).
_GUARD_SETTINGS = frozenset({"DEBUG", "LIGHTNING_ASSERT_NO_TRANSACTION"})
_guard: bool | None = None


def _guard_enabled() -> bool:
    global _guard
    if _guard is not None:
        return _guard
    from django.conf import settings

    if not settings.configured:
        return False
    explicit = getattr(settings, "LIGHTNING_ASSERT_NO_TRANSACTION", None)
    _guard = bool(explicit) if explicit is not None else bool(settings.DEBUG) or "pytest" in sys.modules
    return _guard


def reset_transaction_guard(**kwargs: object) -> None:
    """`setting_changed` receiver: read the guard's settings again after one of them changed."""
    global _guard
    if kwargs.get("setting") in (None, *_GUARD_SETTINGS):
        _guard = None


def assert_not_in_transaction() -> None:
    """Fail loudly when a Lightning call is made inside a database transaction.

    A transaction held across a network call holds row locks for as long as LND takes, and
    its rollback cannot undo a payment. Active in DEBUG and under pytest only. The atomic
    blocks a Django TestCase (or pytest-django's `django_db`) wraps around each test are not
    counted, the same way Django's `durable=True` check ignores them.
    """
    if not _guard_enabled():
        return
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block and any(not getattr(a, "_from_testcase", False) for a in conn.atomic_blocks):
            raise AssertionError(
                f"Lightning call inside a transaction on database {conn.alias!r}: commit first, then call LND"
            )
