"""The node's Nostr identity, loaded lazily from MOSTRO_NSEC_PRIVKEY (nsec or 64-char hex)."""

import functools

from django.conf import settings

# The key helpers live with the node configuration (the bottom layer); re-exported here.
from mostro_site.config.nostr_keys import (  # noqa: F401 - re-exported
    InvalidSecretKey,
    decode_npub,
    encode_npub,
    encode_nsec,
    parse_pubkey_text,
    parse_secret_key,
    xonly_pubkey_hex,
)


@functools.lru_cache(maxsize=1)
def node_secret_key() -> bytes:
    return parse_secret_key(settings.MOSTRO_NSEC_PRIVKEY)


@functools.lru_cache(maxsize=1)
def node_pubkey() -> str:
    return xonly_pubkey_hex(node_secret_key())


def clear_key_cache() -> None:
    node_secret_key.cache_clear()
    node_pubkey.cache_clear()
