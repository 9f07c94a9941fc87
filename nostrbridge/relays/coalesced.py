"""A relay connection that writes a round's frames to the socket in one piece.

websockets writes each frame with its own `transport.write`: a publish round of N events (the
writer's one send context, `connection._write_loop`) is N `write` calls, N TCP segments on the
loopback or the LAN, and as many wake-ups of the relay's reader. Joined, the same bytes go in
one call. Nothing else changes: the frames, their order, websockets' flow control (`drain`)
and its close handling, which this keeps by handing an end-of-stream marker on exactly as
websockets does. `connect(..., create_connection=CoalescedConnection)` is websockets'
documented hook for a connection subclass.
"""

from __future__ import annotations

import contextlib

from websockets.asyncio.client import ClientConnection


class CoalescedConnection(ClientConnection):
    def send_data(self) -> None:
        pending: list[bytes] = []
        for data in self.protocol.data_to_send():
            if data:
                pending.append(data)
                continue
            # websockets' end-of-stream marker: what precedes it goes first.
            self._write(pending)
            pending = []
            self._half_close()
        self._write(pending)

    def _write(self, chunks: list[bytes]) -> None:
        if len(chunks) == 1:
            self.transport.write(chunks[0])
        elif chunks:
            self.transport.write(b"".join(chunks))

    def _half_close(self) -> None:
        # As websockets' own send_data: half-close where TCP allows it (no TLS), else close.
        if self.transport.can_write_eof():
            # write_eof() documents no exceptions; OSError is plausible, uvloop raises RuntimeError.
            with contextlib.suppress(Exception):
                self.transport.write_eof()
        else:
            self.transport.close()
