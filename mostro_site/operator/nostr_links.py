"""NIP-19 `nevent` references, so an operator can open an audit event in any Nostr client."""

from nostrbridge.protocol.bech32 import bech32_encode

_TLV_SPECIAL, _TLV_RELAY, _TLV_AUTHOR, _TLV_KIND = 0, 1, 2, 3


def _tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind, len(value)]) + value


def encode_nevent(event_id_hex: str, *, author_hex: str = "", kind: int | None = None, relays=()) -> str:
    data = _tlv(_TLV_SPECIAL, bytes.fromhex(event_id_hex))
    for relay in relays:
        data += _tlv(_TLV_RELAY, relay.encode())
    if author_hex:
        data += _tlv(_TLV_AUTHOR, bytes.fromhex(author_hex))
    if kind is not None:
        data += _tlv(_TLV_KIND, kind.to_bytes(4, "big"))
    return bech32_encode("nevent", data)
