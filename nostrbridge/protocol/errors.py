"""Typed errors of the protocol layer.

Every malformed input that reaches this package ends in a `ProtocolError`
subclass, so the relay worker can catch one type, log it and drop the event
silently, as the daemon does (docs/PROTOCOL.md §Silent-drops). `CantDo` is different: it is
a business refusal raised by handlers and answered with a `cant-do` message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nostrbridge.protocol.enums import CantDoReason


class ProtocolError(Exception):
    """Base class: the input is not a valid protocol object; drop it, no reply."""


# --- primitives -------------------------------------------------------------


class InvalidKey(ProtocolError):
    """A secret key, public key, nsec or npub that does not parse or is off the curve."""


class Nip44Error(ProtocolError):
    """NIP-44 v2 encryption or decryption failed."""


class InvalidPlaintextLength(Nip44Error):
    """Plaintext outside 1..65535 UTF-8 bytes."""


class DecryptionError(Nip44Error):
    """Unknown version, bad base64, bad length, MAC mismatch, bad padding or bad UTF-8."""


class MalformedEvent(ProtocolError):
    """A Nostr event with a missing field, a wrong type or malformed hex."""


class EventIdMismatch(MalformedEvent):
    """The event's `id` is not the NIP-01 hash of its fields."""


class MessageParseError(ProtocolError):
    """The content tuple or the message does not parse (docs/PROTOCOL.md §Messages)."""


# --- intake pipeline (docs/PROTOCOL.md §Intake) -----------------------------------


class OversizedEvent(ProtocolError):
    """Event larger than the inbox relay limit."""


class InsufficientPow(ProtocolError):
    """Fewer leading zero bits in the event id than required."""


class WrongKind(ProtocolError):
    """Event kind differs from the transport kind (or seal/rumor kind is wrong)."""


class BadSignature(ProtocolError):
    """An event signature, trade signature or identity proof does not verify."""


class NotForUs(ProtocolError):
    """NIP-44 decryption with our key failed: the event is not addressed to us."""


class MalformedEnvelope(ProtocolError):
    """The seal or rumor inside a gift wrap is not a valid event of the expected shape."""


class StaleMessage(ProtocolError):
    """The message `created_at` is older than the freshness window."""


class MissingTradeSignature(ProtocolError):
    """Reputation mode (identity != sender) without the mandatory trade signature."""


class InvalidMessage(ProtocolError):
    """The message parsed but fails `MessageKind.verify()` (docs/PROTOCOL.md §Verify)."""


class SignatureRefusal(ProtocolError):
    """A `user-info` request whose identity proof or trade signature fails.

    The one intake failure that is answered (`cant-do` `invalid_signature` to the event's
    author, `request_id` echoed; docs/PROTOCOL.md §User-info) instead of dropped. It stays a
    `ProtocolError`, so a caller that does not know it drops it silently like the others.
    """

    def __init__(self, problem: str, *, sender: str, request_id: int | None) -> None:
        super().__init__(problem)
        self.sender = sender
        self.request_id = request_id


# --- business refusal ---------------------------------------------------------


class CantDo(Exception):
    """Expected refusal of a well-formed request; answered with a `cant-do` message."""

    def __init__(self, reason: CantDoReason, *, policy: str = "") -> None:
        super().__init__(str(reason))
        self.reason = reason
        # An operator policy that refused (docs/OPERATIONS.md §Policies), e.g. "ban": never on
        # the wire, only in the inbound row so the operator's dashboard can list refusals.
        self.policy = policy
