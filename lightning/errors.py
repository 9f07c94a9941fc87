"""Typed Lightning errors.

Callers decide between "retry later" and "give up" by type alone:

- `LightningUnavailable`: nothing is known to have happened at the node (it was down, the
  call timed out, the client is misconfigured). Retry later; never count it as a failure.
- `LightningRejected`: the node answered and refused. Terminal for this request. The gRPC
  status code and LND's own message are kept, so "already canceled" can be told apart from
  "not found" without parsing strings at every call site.
"""

from __future__ import annotations


class LightningError(Exception):
    """Base class for every error raised by a Lightning client."""

    def __init__(self, message: str, *, code: str = "", details: str = "") -> None:
        super().__init__(message)
        self.message = message
        # gRPC status name ("UNKNOWN", "UNAVAILABLE", ...) and LND's raw details, when any.
        self.code = code
        self.details = details


class LightningUnavailable(LightningError):
    """Retryable: the node could not be reached or did not answer in time."""


class LightningConfigError(LightningUnavailable):
    """The client cannot build a connection (unreadable cert or macaroon file, bad host).

    A subclass of `LightningUnavailable` on purpose: no request reached the node, so an
    order must not be marked failed because of it.
    """


class LightningRejected(LightningError):
    """Terminal: the node answered and refused the request."""


class LightningPermissionDenied(LightningRejected):
    """The node refused the macaroon (wrong node, wrong permissions, or corrupted)."""


class InvoiceNotFound(LightningRejected):
    """LND: "unable to locate invoice"."""


class AlreadySettledOrCanceled(LightningRejected):
    """LND: "invoice already settled" / "invoice already canceled"."""

    @property
    def settled(self) -> bool:
        return "settled" in self.details


class InvoiceStillOpen(LightningRejected):
    """LND: "invoice still open" (settle called before the HTLC was accepted)."""


class PaymentAlreadyExists(LightningRejected):
    """LND refused a payment it already knows: "invoice is already paid",
    "payment is in transition" or "payment already exists". Ask `track_payment`."""


# The node's answers about an invoice's or a payment's state: each caller expects and judges
# them (and logs what matters itself), unlike an unreachable or refusing node.
STATE_ANSWERS = (InvoiceNotFound, AlreadySettledOrCanceled, InvoiceStillOpen, PaymentAlreadyExists)
