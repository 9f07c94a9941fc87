"""Reputation attestations and rebind authorisations: kind 38388 (docs/PROTOCOL.md §Attestation).

An attestation is a Nostr event an issuer signs with its dedicated key to state the reputation
a user earned there, addressed to one identity on the node that imports it. It is never
published: it travels as a JSON string in the `reputation-exported` reply and the
`import-reputation` request. A rebind authorisation shares the kind (told apart by its `z` tag)
and lets the identity an account is bound to move the binding to a new one.

This module builds both and parses them with every rule the event itself carries, in the
order of §Attestation: id and signature, kind, one `z`, the tag rules, the clock. What depends on the
receiver (trust list, own issuer key, the proved identity, the bound identity) is the caller's.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from nostrbridge.protocol import secp
from nostrbridge.protocol.enums import CantDoReason
from nostrbridge.protocol.errors import InvalidKey, MalformedEvent, ProtocolError
from nostrbridge.protocol.jsonwire import loads_envelope
from nostrbridge.protocol.keys import Keys
from nostrbridge.protocol.nip01 import Event, sign_event

ATTESTATION_KIND = 38388
ATTESTATION_DOCUMENT = "reputation-attestation"
REBIND_DOCUMENT = "reputation-rebind"
SECONDS_PER_DAY = 86_400
# What an issuer gives an attestation, and the default cap a destination enforces.
ATTESTATION_LIFETIME_SECONDS = 7 * SECONDS_PER_DAY
MAX_CLOCK_SKEW_SECONDS = 300
REBIND_MAX_LIFETIME_SECONDS = 3_600
MIN_ATTESTED_REVIEWS = 5
MAX_ATTESTED_REVIEWS = 2**32 - 1
MIN_ATTESTED_SINCE = 1_577_836_800  # 2020-01-01, before any issuer existed
MIN_RATING_HUNDREDTHS, MAX_RATING_HUNDREDTHS = 100, 500
_SUBJECT = re.compile(r"[0-9A-Za-z_-]{1,64}")
_RATING = re.compile(r"[0-9]\.[0-9]{2}")
_LOWER_HEX64 = re.compile(r"[0-9a-f]{64}")
_ATTESTATION_TAGS = ("p", "subject", "reviews", "rating", "since", "expiration")
_REBIND_TAGS = ("p", "issuer", "expiration")


class AttestationError(ProtocolError):
    """An attestation or rebind authorisation that a receiver must refuse."""

    def __init__(self, problem: str, *, expired: bool = False) -> None:
        super().__init__(problem)
        self.expired = expired

    @property
    def reason(self) -> CantDoReason:
        """The destination's answer to a refused attestation (a refused rebind is always
        `invalid_reputation_rebind`, the caller's choice)."""
        if self.expired:
            return CantDoReason.EXPIRED_REPUTATION_ATTESTATION
        return CantDoReason.INVALID_REPUTATION_ATTESTATION


@dataclass(frozen=True, slots=True)
class ReputationAttestation:
    id: str
    issuer: str  # the key that signed it (hex)
    destination: str  # `p`: the identity it is addressed to (hex)
    subject: str  # the source account within the issuer
    reviews: int
    rating_hundredths: int  # 487 is 4.87
    since: int  # first completed trade on the source, a UTC day start
    created_at: int
    expiration: int

    @property
    def rating(self) -> float:
        """The same double as parsing the tag's decimal text (the division is correctly rounded)."""
        return self.rating_hundredths / 100

    @property
    def rating_text(self) -> str:
        return format_rating(self.rating_hundredths)


@dataclass(frozen=True, slots=True)
class ReputationRebind:
    id: str
    bound_identity: str  # the signer: must be the identity the account is bound to
    new_identity: str  # `p`
    issuer: str  # `issuer`: must be the receiving issuer's own key
    created_at: int
    expiration: int


def round_half_away(value: float) -> float:
    """Rust's `f64::round`: halves away from zero, exactly (no `x + 0.5` double rounding)."""
    magnitude = abs(value)
    whole = math.floor(magnitude)
    if magnitude - whole >= 0.5:
        whole += 1
    return math.copysign(whole, value)


def rating_hundredths(average: float) -> int | None:
    """`clamp(round(average × 100), 100, 500)` in double precision; None when not finite.

    Rounding the double, not a decimal string, keeps implementations in agreement: 4.895 × 100
    is 489.49999999999994, so 4.895 gives 4.89. The clamp covers averages damped below 1 by the
    half-weighted first vote.
    """
    if not math.isfinite(average):
        return None
    return int(min(max(round_half_away(average * 100), MIN_RATING_HUNDREDTHS), MAX_RATING_HUNDREDTHS))


def is_identity_key(value: object) -> bool:
    """64 lowercase hex characters of a valid x-only key: how identities travel in these payloads."""
    if type(value) is not str:
        return False
    try:
        _hex_key(value, "p")
    except AttestationError:
        return False
    return True


def format_rating(hundredths: int) -> str:
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def build_attestation(
    issuer: Keys,
    *,
    destination: str,
    subject: str,
    reviews: int,
    average: float,
    since: int,
    created_at: int,
    lifetime_seconds: int = ATTESTATION_LIFETIME_SECONDS,
    aux_rand: bytes | None = None,
) -> Event:
    """Sign an attestation; the arguments are checked against what a destination accepts, so a
    built attestation always parses (ValueError otherwise)."""
    hundredths = rating_hundredths(average)
    if _SUBJECT.fullmatch(subject) is None:
        raise ValueError("subject must be 1-64 characters of [0-9A-Za-z_-]")
    if not MIN_ATTESTED_REVIEWS <= reviews <= MAX_ATTESTED_REVIEWS:
        raise ValueError(f"reviews must be in {MIN_ATTESTED_REVIEWS}..{MAX_ATTESTED_REVIEWS}")
    if hundredths is None:
        raise ValueError("average must be a finite number")
    if not _valid_since(since, created_at):
        raise ValueError("since must be a UTC day start from 2020-01-01 up to created_at")
    if not 0 < lifetime_seconds <= ATTESTATION_LIFETIME_SECONDS:
        raise ValueError(f"lifetime must be in 1..{ATTESTATION_LIFETIME_SECONDS} seconds")
    _hex_key(destination, "p", error=ValueError)
    tags = [
        ["p", destination],
        ["subject", subject],
        ["reviews", str(reviews)],
        ["rating", format_rating(hundredths)],
        ["since", str(since)],
        ["expiration", str(created_at + lifetime_seconds)],
        ["z", ATTESTATION_DOCUMENT],
    ]
    return sign_event(issuer, kind=ATTESTATION_KIND, content="", tags=tags, created_at=created_at, aux_rand=aux_rand)


def parse_attestation(text: str, *, now: int, max_lifetime_seconds: int) -> ReputationAttestation:
    """Parse and verify an attestation in the order of §Attestation; raise `AttestationError`."""
    event = _verified_event(text, ATTESTATION_DOCUMENT)
    tags = _single_tags(event, _ATTESTATION_TAGS)
    destination = _hex_key(tags["p"], "p")
    subject = tags["subject"]
    if _SUBJECT.fullmatch(subject) is None:
        raise AttestationError("invalid `subject` tag")
    reviews = _decimal(tags["reviews"])
    if reviews is None or not MIN_ATTESTED_REVIEWS <= reviews <= MAX_ATTESTED_REVIEWS:
        raise AttestationError("invalid `reviews` tag")
    hundredths = _parse_rating(tags["rating"])
    if hundredths is None:
        raise AttestationError("invalid `rating` tag")
    since = _decimal(tags["since"])
    if since is None or not _valid_since(since, event.created_at):
        raise AttestationError("invalid `since` tag")
    expiration = _expiration(tags["expiration"], event.created_at)
    _check_clock(event.created_at, expiration, now=now, max_lifetime_seconds=max_lifetime_seconds)
    return ReputationAttestation(
        id=event.id,
        issuer=event.pubkey,
        destination=destination,
        subject=subject,
        reviews=reviews,
        rating_hundredths=hundredths,
        since=since,
        created_at=event.created_at,
        expiration=expiration,
    )


def build_rebind(
    bound_identity: Keys,
    *,
    issuer: str,
    new_identity: str,
    created_at: int,
    lifetime_seconds: int = REBIND_MAX_LIFETIME_SECONDS,
    aux_rand: bytes | None = None,
) -> Event:
    """Sign a rebind authorisation with the identity the account is bound to now."""
    if not 0 < lifetime_seconds <= REBIND_MAX_LIFETIME_SECONDS:
        raise ValueError(f"lifetime must be in 1..{REBIND_MAX_LIFETIME_SECONDS} seconds")
    _hex_key(issuer, "issuer", error=ValueError)
    _hex_key(new_identity, "p", error=ValueError)
    tags = [
        ["p", new_identity],
        ["issuer", issuer],
        ["expiration", str(created_at + lifetime_seconds)],
        ["z", REBIND_DOCUMENT],
    ]
    return sign_event(
        bound_identity, kind=ATTESTATION_KIND, content="", tags=tags, created_at=created_at, aux_rand=aux_rand
    )


def parse_rebind(text: str, *, now: int) -> ReputationRebind:
    """Parse and verify a rebind authorisation; whether its signer is the bound identity and its
    `issuer` the receiver's key is the caller's to check. Raises `AttestationError`."""
    event = _verified_event(text, REBIND_DOCUMENT)
    tags = _single_tags(event, _REBIND_TAGS)
    new_identity = _hex_key(tags["p"], "p")
    issuer = _hex_key(tags["issuer"], "issuer")
    expiration = _expiration(tags["expiration"], event.created_at)
    _check_clock(event.created_at, expiration, now=now, max_lifetime_seconds=REBIND_MAX_LIFETIME_SECONDS)
    return ReputationRebind(
        id=event.id,
        bound_identity=event.pubkey,
        new_identity=new_identity,
        issuer=issuer,
        created_at=event.created_at,
        expiration=expiration,
    )


# --- the rules -------------------------------------------------------------------------------
def _verified_event(text: str, document: str) -> Event:
    """Id and signature, kind, then exactly one `z` naming `document`."""
    if type(text) is not str:
        raise AttestationError("not a Nostr event")
    try:
        event = Event.from_dict(loads_envelope(text, MalformedEvent))
    except MalformedEvent as exc:  # EventIdMismatch included
        raise AttestationError(f"not a valid Nostr event: {exc}") from exc
    if not event.verify_signature():
        raise AttestationError("invalid signature")
    if event.kind != ATTESTATION_KIND:
        raise AttestationError(f"not a kind {ATTESTATION_KIND} event")
    if _values(event, "z") != [document]:
        raise AttestationError("missing or unexpected `z` tag")
    return event


def _values(event: Event, name: str) -> list[str]:
    """The first value of every tag called `name` (`""` for a tag with no value)."""
    return [tag[1] if len(tag) > 1 else "" for tag in event.tags if tag[0] == name]


def _single_tags(event: Event, names: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for name in names:
        values = _values(event, name)
        if not values:
            raise AttestationError(f"missing `{name}` tag")
        if len(values) > 1:
            raise AttestationError(f"repeated `{name}` tag")
        found[name] = values[0]
    return found


def _hex_key(value: str, tag: str, *, error: type[Exception] = AttestationError) -> str:
    """64 lowercase hex characters that are a valid x-only key."""
    if _LOWER_HEX64.fullmatch(value) is None:
        raise error(f"invalid `{tag}` tag")
    try:
        secp.parse_xonly(bytes.fromhex(value))
    except InvalidKey as exc:
        raise error(f"invalid `{tag}` tag") from exc
    return value


def _decimal(value: str) -> int | None:
    """Base 10 with no sign, leading zero or whitespace."""
    if not value.isascii() or not value.isdigit() or (value != "0" and value.startswith("0")):
        return None
    number = int(value)
    return number if number < 2**64 else None


def _parse_rating(value: str) -> int | None:
    """`d.dd` between 1.00 and 5.00, in hundredths."""
    if not value.isascii() or _RATING.fullmatch(value) is None:
        return None
    hundredths = int(value[0]) * 100 + int(value[2:])
    return hundredths if MIN_RATING_HUNDREDTHS <= hundredths <= MAX_RATING_HUNDREDTHS else None


def _valid_since(since: int, created_at: int) -> bool:
    return since % SECONDS_PER_DAY == 0 and MIN_ATTESTED_SINCE <= since <= created_at


def _expiration(value: str, created_at: int) -> int:
    expiration = _decimal(value)
    if expiration is None or expiration <= created_at:
        raise AttestationError("invalid `expiration` tag")
    return expiration


def _check_clock(created_at: int, expiration: int, *, now: int, max_lifetime_seconds: int) -> None:
    if created_at > now + MAX_CLOCK_SKEW_SECONDS:
        raise AttestationError("created in the future")
    if now > expiration + MAX_CLOCK_SKEW_SECONDS:
        raise AttestationError("expired", expired=True)
    if expiration - created_at > max_lifetime_seconds:
        raise AttestationError("lifetime exceeds the allowed maximum")
