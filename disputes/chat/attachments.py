"""Files and images the parties' clients send in the chat (Mostro Mobile's wire format).

A message whose text is a JSON object `{"type": "image_encrypted" | "file_encrypted",
"blossom_url", "filename", "mime_type", "original_size", …}` points at a blob on a Blossom
server: nonce(12) ‖ ChaCha20-Poly1305 ciphertext ‖ tag(16), keyed by the conversation's raw
ECDH secret. The console never lets a browser load it from outside the node: the node fetches
the blob (guarded like the LNURL client: http/https, resolved once, no private addresses, no
redirects, a total deadline and a size limit), decrypts it, and serves it from its own origin.
"""

import http.client
import json
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from lightning.lnurl_http import LnurlError, allow_loopback_default, resolve_pinned
from lightning.outbound_deadline import TotalDeadline

TYPES = {"image_encrypted": "image", "file_encrypted": "file"}
MAX_BLOB_BYTES = 25 * 1024 * 1024  # Mostro Mobile's upload limit
TOTAL_DEADLINE_S = 20.0
CONNECT_TIMEOUT_S = 5.0
# Shown inline; anything else is served as a download.
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


class AttachmentError(Exception):
    pass


@dataclass(frozen=True)
class Attachment:
    kind: str  # "image" or "file"
    url: str
    filename: str
    mime_type: str
    size: int | None

    @property
    def inline(self) -> bool:
        return self.kind == "image" and self.mime_type in INLINE_IMAGE_TYPES

    def public(self) -> dict:
        """What the console page may know (the URL stays on the server)."""
        return {
            "kind": self.kind,
            "filename": self.filename,
            "mime_type": self.mime_type,
            "size": self.size,
            "inline": self.inline,
        }


def parse_attachment(text: str) -> Attachment | None:
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") not in TYPES:
        return None
    url, filename = data.get("blossom_url"), data.get("filename")
    if not isinstance(url, str) or not url.strip() or not isinstance(filename, str):
        return None
    size = data.get("original_size")
    mime = data.get("mime_type")
    return Attachment(
        kind=TYPES[data["type"]],
        url=url.strip(),
        filename=filename.replace("/", "_").replace("\\", "_")[:200] or "attachment",
        mime_type=mime if isinstance(mime, str) else "application/octet-stream",
        size=size if isinstance(size, int) else None,
    )


def decrypt_blob(blob: bytes, shared: bytes) -> bytes:
    if len(blob) < 28:
        raise AttachmentError("the file is too short to be an encrypted attachment")
    try:
        return ChaCha20Poly1305(shared).decrypt(blob[:12], blob[12:], b"")
    except InvalidTag as exc:
        raise AttachmentError("the file does not decrypt with this conversation's key") from exc


def fetch_blob(url: str, *, allow_loopback: bool | None = None) -> bytes:
    """GET the encrypted blob within TOTAL_DEADLINE_S and MAX_BLOB_BYTES."""
    allow_loopback = allow_loopback_default() if allow_loopback is None else allow_loopback
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise AttachmentError("the attachment URL is not a plain http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    started = time.monotonic()
    try:
        ip = resolve_pinned(parts.hostname, port, allow_loopback=allow_loopback)
    except LnurlError as exc:
        raise AttachmentError(exc.message) from exc
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            parts.hostname, port, timeout=CONNECT_TIMEOUT_S, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, port, timeout=CONNECT_TIMEOUT_S)
    # http.client's own connect hook (private, untyped): every connection goes to the pinned IP.
    deadline = TotalDeadline(max(TOTAL_DEADLINE_S - (time.monotonic() - started), 0.001))
    conn._create_connection = lambda address, *args, **kwargs: _pinned(ip, address[1], deadline)  # type: ignore[attr-defined]  # noqa: SLF001
    try:
        conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        response = conn.getresponse()
        if response.status != 200:
            raise AttachmentError(f"the file server answered HTTP {response.status}")
        return _read(response, conn, started)
    except (OSError, http.client.HTTPException) as exc:
        if deadline.expired:
            raise AttachmentError(f"the file took over {TOTAL_DEADLINE_S:.0f} s to download") from exc
        raise AttachmentError(f"the file could not be fetched: {exc}") from exc
    finally:
        deadline.disarm()
        conn.close()


def _pinned(ip: str, port: int, deadline: TotalDeadline) -> socket.socket:
    # The total deadline also bounds the TLS handshake and the headers (a dribbling server).
    sock = socket.create_connection((ip, port), min(CONNECT_TIMEOUT_S, deadline.remaining()))
    deadline.arm(sock)
    return sock


def _read(response, conn, started: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = TOTAL_DEADLINE_S - (time.monotonic() - started)
        if remaining <= 0:
            raise AttachmentError(f"the file took over {TOTAL_DEADLINE_S:.0f} s to download")
        if conn.sock is not None:
            conn.sock.settimeout(min(remaining, CONNECT_TIMEOUT_S))
        chunk = response.read1(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BLOB_BYTES:
            raise AttachmentError("the file is larger than 25 MB")
        chunks.append(chunk)
