"""The daemon's intake checks (docs/PROTOCOL.md §Intake) as pure functions.

`open_inbound` runs the stateless steps in the daemon's order: 1 PoW, 2 kind, 3 event
signature, 6 unwrap + inner signatures, 7 freshness, 8 trade signature in reputation
mode, 10 `verify()`. The stateful steps (4 replay guard, 5 first-contact gate, 9 trade
index) need the database and are run by the caller. Every failure is a `ProtocolError`
subclass, so the caller drops the event silently with one `except ProtocolError`.

One exception (docs/PROTOCOL.md §User-info): a fresh `user-info` request whose inner signatures
fail at step 6, or that lacks its trade signature at step 8, raises `SignatureRefusal` (still a
`ProtocolError`), which the dispatcher answers with `cant-do` `invalid_signature`. Every other
action, and any event whose outer signature, decryption or message parse fails, stays silent.
"""

from __future__ import annotations

import time
from typing import Any

from nostrbridge.protocol import nip44
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.errors import (
    BadSignature,
    InsufficientPow,
    InvalidMessage,
    MalformedEvent,
    MessageParseError,
    MissingTradeSignature,
    OversizedEvent,
    ProtocolError,
    SignatureRefusal,
    StaleMessage,
    WrongKind,
)
from nostrbridge.protocol.giftwrap import GIFT_WRAP_KIND, unwrap_v1
from nostrbridge.protocol.jsonwire import loads_envelope, loads_strict
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.messages import Message
from nostrbridge.protocol.nip01 import Event, leading_zero_bits
from nostrbridge.protocol.payloads import UserInfoPayload
from nostrbridge.protocol.transport import V1_VERSION, V2_KIND, V2_VERSION, Unwrapped, unwrap_v2

# Limits of the daemon's inbox relay client (docs/PROTOCOL.md §Intake): the relay pool
# enforces the websocket message limit, this module the event limit.
MAX_EVENT_BYTES = 6_500
MAX_RELAY_MESSAGE_BYTES = 6_000
FRESHNESS_WINDOW_SECONDS = 10

_TRANSPORT_KINDS = {V1_VERSION: GIFT_WRAP_KIND, V2_VERSION: V2_KIND}


def transport_kind(transport_version: int) -> int:
    """Event kind of a transport: 1059 for v1 (gift wrap), 14 for v2."""
    try:
        return _TRANSPORT_KINDS[transport_version]
    except KeyError:
        raise ValueError("transport version must be 1 or 2") from None


def parse_event(raw: dict[str, Any] | str | bytes) -> Event:
    """Size-check and strictly parse an inbound event (id recomputed); no signature check yet."""
    if isinstance(raw, str | bytes | bytearray):
        if isinstance(raw, str):
            size = len(raw) if raw.isascii() else len(raw.encode("utf-8", "surrogatepass"))
        else:
            size = len(raw)
        if size > MAX_EVENT_BYTES:
            raise OversizedEvent(f"event of {size} bytes exceeds {MAX_EVENT_BYTES}")
        return Event.from_dict(loads_envelope(raw, MalformedEvent))
    event = Event.from_dict(raw)
    size = len(event.to_json().encode("utf-8"))  # the same bytes as dumps_compact(to_dict()), faster
    if size > MAX_EVENT_BYTES:
        raise OversizedEvent(f"event of {size} bytes exceeds {MAX_EVENT_BYTES}")
    return event


def check_pow(event: Event, bits: int) -> None:
    """Step 1: NIP-13 difficulty of the real id (the `nonce` tag's claim is not trusted)."""
    if bits > 0 and leading_zero_bits(event.id) < bits:
        raise InsufficientPow(f"event id has fewer than {bits} leading zero bits")


def check_kind(event: Event, transport_version: int) -> None:
    """Step 2: the event kind must be the configured transport's kind."""
    expected = transport_kind(transport_version)
    if event.kind != expected:
        raise WrongKind(f"expected kind {expected}, got {event.kind}")


def check_signature(event: Event) -> None:
    """Step 3: BIP-340 signature of the outer event."""
    if not event.verify_signature():
        raise BadSignature("event signature does not verify")


def unwrap(event: Event, our_keys: Keys, transport_version: int) -> Unwrapped:
    """Step 6, after step 3 has verified the outer signature."""
    if transport_version == V2_VERSION:
        return unwrap_v2(event, our_keys, check_event_signature=False)
    return unwrap_v1(event, our_keys, check_event_signature=False)


def unwrap_or_refuse(event: Event, our_keys: Keys, transport_version: int, now: int) -> Unwrapped:
    """Step 6, answering a fresh v2 `user-info` whose inner signatures fail (see the module doc).

    Upstream opens the content tuple again only far enough to read the action: the event's
    own signature has verified (step 3) and it decrypts with our key, so the reply goes to
    the key that really sent it.
    """
    try:
        return unwrap(event, our_keys, transport_version)
    except (BadSignature, MessageParseError) as exc:
        if transport_version != V2_VERSION or _is_stale(event.created_at, now):
            raise
        request = _user_info_request(event, our_keys)
        if request is None:
            raise
        raise SignatureRefusal(str(exc), sender=event.pubkey, request_id=request.request_id) from exc


def _user_info_request(event: Event, our_keys: Keys) -> Message | None:
    """The message of a v2 tuple `[message, any, any]` if it is a `user-info` request, else None."""
    try:
        sender = bytes.fromhex(event.pubkey)
        plaintext = nip44.decrypt(event.content, nip44.cached_conversation_key(our_keys.secret, sender))
        value = loads_strict(plaintext, MessageParseError)
        if type(value) is not list or len(value) != 3:
            return None
        message = Message.from_value(value[0])
    except ProtocolError:
        return None
    return message if message.action == Action.USER_INFO else None


def _is_stale(created_at: int, now: int, window_seconds: int = FRESHNESS_WINDOW_SECONDS) -> bool:
    return created_at < now - window_seconds


def check_freshness(unwrapped: Unwrapped, now: int, window_seconds: int = FRESHNESS_WINDOW_SECONDS) -> None:
    """Step 7: `created_at >= now - 10 s`; future timestamps are accepted, like the daemon."""
    if _is_stale(unwrapped.created_at, now, window_seconds):
        raise StaleMessage(f"message created at {unwrapped.created_at} is older than {window_seconds} s")


def check_trade_signature_present(unwrapped: Unwrapped) -> None:
    """Step 8: in reputation mode (identity != sender) the trade signature is mandatory.

    A `user-info` request without it is answered `invalid_signature` (docs/PROTOCOL.md §User-info).
    """
    if unwrapped.identity != unwrapped.sender and unwrapped.trade_signature is None:
        problem = "identity differs from sender and the message is unsigned"
        message = unwrapped.message
        if message.action == Action.USER_INFO:
            raise SignatureRefusal(problem, sender=unwrapped.sender, request_id=message.request_id)
        raise MissingTradeSignature(problem)


def check_message(unwrapped: Unwrapped) -> None:
    """Step 10: the id/payload matrix of docs/PROTOCOL.md §Verify."""
    verify_message(unwrapped.message)


def verify_message(message: Message) -> None:
    """Step 10 on the parsed message. `verify()` also admits the `user-info` reply's payload; the
    intake takes only the request."""
    if not message.verify():
        raise InvalidMessage(f"{message.action} fails the id/payload consistency rules")
    if message.action == Action.USER_INFO and isinstance(message.payload, UserInfoPayload):
        raise InvalidMessage("user-info requests carry no payload")


def open_inbound(
    raw: dict[str, Any] | str | bytes,
    our_keys: Keys,
    *,
    transport_version: int,
    pow_bits: int = 0,
    now: int | None = None,
    verify: bool = True,
    checked: Event | None = None,
) -> Unwrapped:
    """Run steps 1, 2, 3, 6, 7, 8 and 10 on one inbound event; raise only `ProtocolError`s
    (`SignatureRefusal` for the one failure that is answered).

    `verify=False` leaves step 10 to the caller, which runs the maintenance gate before it
    (docs/PROTOCOL.md §Maintenance: a malformed `new-order` is refused like a well-formed one).
    `checked`: the `Event` that `parse_event` made of this very event object and whose signature
    `check_signature` verified, in this process (the bridge's intake, `nostrbridge.bridge.intake`):
    the strict parse with its id recomputation and the Schnorr verify of step 3 already ran on it,
    so they are not run a second time on `raw` (the same bytes, stored as JSON text in between)."""
    transport_kind(transport_version)  # a configuration error, not an input error: ValueError
    now = int(time.time()) if now is None else now
    event = parse_event(raw) if checked is None else checked
    check_pow(event, pow_bits)
    check_kind(event, transport_version)
    if checked is None:
        check_signature(event)
    unwrapped = unwrap_or_refuse(event, our_keys, transport_version, now)
    check_freshness(unwrapped, now)
    check_trade_signature_present(unwrapped)
    if verify:
        check_message(unwrapped)
    return unwrapped
