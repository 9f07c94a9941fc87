"""A party's side of the dispute chat, as Mostro Mobile does it, on independent code.

The raw ECDH secret comes from coincurve (point multiplication), K_conv/K_sign from
`cryptography`'s HKDF, the NIP-44 encryption, signatures and relay I/O from nostr-sdk: nothing
here uses the node's own chat code, so a conversation through the console checks the wire
format against a second implementation. Attachments are encrypted as Mostro Mobile encrypts
them (ChaCha20-Poly1305 with the ECDH secret, nonce ‖ ciphertext ‖ tag) and served by a tiny
HTTP server standing in for a Blossom server.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import coincurve
import nostr_sdk as sdk
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def ecdh_x(secret_hex: str, peer_xonly_hex: str) -> bytes:
    point = coincurve.PublicKey(b"\x02" + bytes.fromhex(peer_xonly_hex))
    return point.multiply(bytes.fromhex(secret_hex)).format(compressed=True)[1:]


def hkdf_key(shared: bytes, info: bytes) -> sdk.Keys:
    okm = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)
    return sdk.Keys(sdk.SecretKey.parse(okm.hex()))


@dataclass
class Heard:
    sender: str
    text: str
    created_at: int


@dataclass
class ChatParty:
    """One party (its trade key) talking to the solver over the relay, kind-14 envelope."""

    relay_url: str
    trade_keys: sdk.Keys
    solver_pubkey: str
    heard: list[Heard] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shared = ecdh_x(self.trade_keys.secret_key().to_hex(), self.solver_pubkey)
        self.conv = hkdf_key(self.shared, b"mostro:chat:conv:v1")
        self.sign = hkdf_key(self.shared, b"mostro:chat:sign:v1")
        self._arrived = asyncio.Event()

    async def start(self) -> ChatParty:
        self.client = sdk.ClientBuilder().build()
        await self.client.add_relay(sdk.RelayUrl.parse(self.relay_url))
        await self.client.connect()
        deadline = time.monotonic() + 10
        while not all(r.status() == sdk.RelayStatus.CONNECTED for r in (await self.client.relays()).values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"cannot connect to {self.relay_url}")
            await asyncio.sleep(0.02)
        self._reader = asyncio.create_task(self._read(self.client.notifications()))
        since = sdk.Timestamp.from_secs(int(time.time()) - 600)
        chat = sdk.Filter().kind(sdk.Kind(14)).author(self.sign.public_key()).since(since)
        await self.client.subscribe(sdk.ReqTarget.auto([chat]))
        return self

    async def stop(self) -> None:
        self._reader.cancel()
        await self.client.shutdown()

    async def send(self, text: str) -> str:
        """Wrap and publish one message; returns the inner event id."""
        now = sdk.Timestamp.from_secs(int(time.time()))
        nonce = sdk.Tag.parse(["u", os.urandom(8).hex()])
        inner = sdk.EventBuilder(sdk.Kind(1), text).tags([nonce]).custom_created_at(now).finalize(self.trade_keys)
        content = sdk.nip44_encrypt(
            self.conv.secret_key(), self.conv.public_key(), inner.as_json(), sdk.Nip44Version.V2
        )
        p_tag = sdk.Tag.parse(["p", self.conv.public_key().to_hex()])
        outer = sdk.EventBuilder(sdk.Kind(14), content).tags([p_tag]).custom_created_at(now).finalize(self.sign)
        output = await self.client.send_event(outer)
        if not output.success:
            raise RuntimeError(f"relay refused the chat event: {output.failed}")
        return inner.id().to_hex()

    async def _read(self, stream) -> None:
        while (note := await stream.next()) is not None:
            if not note.is_new_event():
                continue
            event = note.event
            if event.author().to_hex() != self.sign.public_key().to_hex() or not event.verify():
                continue
            plaintext = sdk.nip44_decrypt(self.conv.secret_key(), self.conv.public_key(), event.content())
            inner = sdk.Event.from_json(plaintext)
            if inner.verify() and inner.author().to_hex() == self.solver_pubkey:
                self.heard.append(Heard(self.solver_pubkey, inner.content(), inner.created_at().as_secs()))
                self._arrived.set()

    async def wait_for(self, text: str, timeout_s: float = 30.0) -> Heard:
        async with asyncio.timeout(timeout_s):
            while True:
                for heard in self.heard:
                    if heard.text == text:
                        return heard
                self._arrived.clear()
                await self._arrived.wait()

    def encrypt_file(self, data: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + ChaCha20Poly1305(self.shared).encrypt(nonce, data, b"")


class BlobServer:
    """Serves uploaded blobs at http://127.0.0.1:PORT/<name> (a stand-in Blossom server)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                server.requests.append(self.path)
                body = server.blobs.get(self.path.lstrip("/"))
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args) -> None:
                """Quiet."""

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()

    def put(self, name: str, blob: bytes) -> str:
        self.blobs[name] = blob
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def image_message(url: str, *, filename: str, png: bytes, encrypted_size: int) -> str:
    """The JSON text Mostro Mobile sends for an encrypted image."""
    return json.dumps(
        {
            "type": "image_encrypted",
            "blossom_url": url,
            "nonce": "00" * 12,
            "mime_type": "image/png",
            "original_size": len(png),
            "width": 48,
            "height": 48,
            "filename": filename,
            "encrypted_size": encrypted_size,
        }
    )


def tiny_png(size: int = 48, rgb: tuple[int, int, int] = (123, 47, 247)) -> bytes:
    """A solid-colour PNG (the receipt a seller would photograph)."""
    row = b"\x00" + bytes(rgb) * size
    raw = row * size

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
