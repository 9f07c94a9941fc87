"""Sealing what the console stores: solver secret keys and chat messages (ChaCha20-Poly1305).

The key is derived (HKDF-SHA256, one key per purpose) from MOSTRO_CONSOLE_ENCRYPTION_KEY, or
from SECRET_KEY when that is empty. A token names the key it was sealed with
(`v1.<key id>.<base64url(nonce ‖ ciphertext)>`), so after a rotation the old secret goes into
MOSTRO_CONSOLE_ENCRYPTION_KEY_FALLBACKS (or SECRET_KEY_FALLBACKS) and everything still opens;
`manage.py console_rekey` then re-seals every row with the current key (docs/OPERATIONS.md).
The associated data binds a token to its row, so a sealed value copied onto another row does
not open.
"""

import base64
import functools
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

VERSION = "v1"
SOLVER_KEY = b"mostro:console:solver-key:v1"
CHAT = b"mostro:console:chat:v1"
_NONCE_BYTES = 12


class SealError(Exception):
    """A token that no configured key opens (wrong key, tampered, or not a token)."""


def _secrets() -> list[str]:
    current = getattr(settings, "MOSTRO_CONSOLE_ENCRYPTION_KEY", "") or settings.SECRET_KEY
    fallbacks = getattr(settings, "MOSTRO_CONSOLE_ENCRYPTION_KEY_FALLBACKS", None) or getattr(
        settings, "SECRET_KEY_FALLBACKS", []
    )
    return [current, *[secret for secret in fallbacks if secret and secret != current]]


@functools.lru_cache(maxsize=64)
def _derive(secret: str, purpose: bytes) -> tuple[str, ChaCha20Poly1305]:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"mostro-console", info=purpose).derive(secret.encode())
    return hashlib.sha256(key).hexdigest()[:8], ChaCha20Poly1305(key)


def _keys(purpose: bytes) -> list[tuple[str, ChaCha20Poly1305]]:
    return [_derive(secret, purpose) for secret in _secrets()]


def seal(plaintext: bytes, *, purpose: bytes, aad: bytes) -> str:
    key_id, cipher = _keys(purpose)[0]
    nonce = os.urandom(_NONCE_BYTES)
    body = base64.urlsafe_b64encode(nonce + cipher.encrypt(nonce, plaintext, aad)).decode("ascii")
    return f"{VERSION}.{key_id}.{body}"


def unseal(token: str, *, purpose: bytes, aad: bytes) -> bytes:
    try:
        version, key_id, body = token.split(".", 2)
        data = base64.urlsafe_b64decode(body.encode("ascii"))
    except (ValueError, AttributeError) as exc:
        raise SealError("not a sealed value") from exc
    if version != VERSION or len(data) < _NONCE_BYTES + 16:
        raise SealError("not a sealed value")
    for candidate_id, cipher in _keys(purpose):
        if candidate_id == key_id:
            try:
                return cipher.decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], aad)
            except InvalidTag as exc:
                raise SealError("the sealed value does not open (tampered, or sealed for another row)") from exc
    raise SealError(f"sealed with key {key_id}, which is not configured (see console key rotation)")


def is_current(token: str, *, purpose: bytes) -> bool:
    return token.split(".", 2)[1:2] == [_keys(purpose)[0][0]]
