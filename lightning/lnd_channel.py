"""Connection settings for LND: target, TLS certificate and macaroon credentials.

Everything is read when the first call is made, never at import or in a settings module,
so a missing certificate breaks Lightning calls with a clear message instead of breaking
`import lightning` (the RoboSats mistake the style guide warns about).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc
import grpc.experimental

from lightning.errors import LightningConfigError

# LND answers ListInvoices/ListPayments with large messages; its own default is 200 MB.
MAX_MESSAGE_BYTES = 50 * 1024 * 1024
MAX_RECONNECT_BACKOFF_MS = 5_000
CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Keepalive lets a long-lived SubscribeSingleInvoice stream notice a dead node.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # After LND restarts, a channel that lost it waits out a reconnect backoff during which every
    # call fails at once with the last connect error; grpc's default grows it to 120 s. Capped,
    # each process reaches LND again within ~5 s of its return (one local connect try per 5 s
    # while it is down).
    ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
)
# SendPaymentV2's channel (`LndClient._send_stubs`): its streams are read on the calling thread.
SEND_CHANNEL_OPTIONS = (*CHANNEL_OPTIONS, (grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1))


@dataclass(frozen=True)
class LndTarget:
    target: str
    cert_file: str
    credentials: grpc.ChannelCredentials
    # (("macaroon", hex),) sent with every call; repr=False keeps it out of logs and tracebacks.
    metadata: tuple[tuple[str, str], ...] = field(default=(), repr=False)


def normalize_target(host: str) -> str:
    """ "https://node:10009/" -> "node:10009" (operators paste LND's REST-style URLs)."""
    text = host.strip()
    for prefix in ("https://", "http://", "dns:///"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    return text.rstrip("/")


def _read(path: str, setting: str, what: str) -> bytes:
    if not path:
        raise LightningConfigError(f"{setting} is not set: cannot connect to LND without its {what}")
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise LightningConfigError(f"cannot read LND {what} {setting}={path}: {exc.strerror or exc}") from exc


def build_target(*, host: str, cert_file: str, macaroon_file: str) -> LndTarget:
    target = normalize_target(host)
    if not target:
        raise LightningConfigError("LND_GRPC_HOST is empty")
    cert = _read(cert_file, "LND_CERT_FILE", "TLS certificate")
    if b"BEGIN CERTIFICATE" not in cert:
        raise LightningConfigError(f"LND_CERT_FILE={cert_file} is not a PEM certificate")
    macaroon = _read(macaroon_file, "LND_MACAROON_FILE", "macaroon")
    # The macaroon travels as per-call metadata rather than grpc.metadata_call_credentials:
    # gRPC runs such a plugin on a fresh thread for every call, which measured here as
    # twice the client CPU per call and twice the latency under load. Same bytes on the wire.
    return LndTarget(
        target=target,
        cert_file=cert_file,
        credentials=grpc.ssl_channel_credentials(root_certificates=cert),
        metadata=(("macaroon", macaroon.hex()),),
    )
