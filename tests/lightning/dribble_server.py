"""A local HTTP server that answers one byte at a time: the slow-dribbling outside server of
issue 13, part 3. Each answer is a valid LNURL payRequest (or any JSON), preceded by `padding`
header bytes sent one every `interval_s`, so only a total deadline can cut it short (a per-read
timeout is reset by every byte). Used by tests and benchmarks/bench_slow_lnurl.py."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any


class DribbleServer:
    def __init__(self, *, interval_s: float = 0.05, padding: int = 2000, body: Any | None = None) -> None:
        self.interval_s = interval_s
        self.padding = padding
        self.body = body
        self.connections = 0
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"slow@127.0.0.1:{self.port}"

    def __enter__(self) -> DribbleServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._dribble, args=(conn,), daemon=True).start()

    def _answer(self) -> bytes:
        body = self.body or {
            "tag": "payRequest",
            "callback": f"{self.url}/cb",
            "minSendable": 1000,
            "maxSendable": 10**11,
            "metadata": "[]",
        }
        raw = json.dumps(body).encode()
        headers = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * self.padding + b"\r\n"
        return headers + b"Content-Length: " + str(len(raw)).encode() + b"\r\n\r\n" + raw

    def _dribble(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(4096)  # the request line and headers
                for byte in self._answer():
                    if self._stop.wait(self.interval_s):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return  # the client gave up (its total deadline)
