"""The bridge's database-thread CPU per inbound `orders` message, without relays or sockets.

Run:  .venv/bin/python benchmarks/bench_drain.py [--messages 640] [--rounds 5] [--chunk 16] [--postgres] [--no-lane]
      .venv/bin/python benchmarks/bench_drain.py --chunk 3      # 300/s spread evenly: ~3 events per batch
      .venv/bin/python benchmarks/bench_drain.py --consumer     # the consumer's path (main's, before bridge4x)
      .venv/bin/python benchmarks/bench_drain.py --checked      # the intake's parsed, verified events handed over
      .venv/bin/python benchmarks/bench_drain.py --postgres --statements   # round trips per message

`bench_bridge.py` measures the whole bridge process at a fixed rate; on a machine shared with
other work its CPU per message moves by ±30 % from run to run, because how busy the process is
decides how many messages each batch, wake-up and commit serves. This script runs, in one process
and one thread, exactly what the bridge's database thread does for each message, one intake
batch of `--chunk` events at a time: the intake's path (`store_process_claim`: store the batch
already claimed, dispatch it — intake checks, decryption, the `orders` handler's query, the
`cant-do not_found` reply signed into the outbox leased for the publisher, the outcome — and
record the previous batch's relay answers, one relay accepting), or with `--consumer` the path
rows take when older ones wait (store; claim and dispatch in batches of 32; the publisher's
claim and delivery record). It reports process CPU per message (best round) next to the
secp256k1 work the same steps need (one Schnorr verify, one ECDH, one signature), measured in
the same run (the Schnorr verify is the intake's since `--checked`: the bridge hands the events the
intake checked on the event loop to this thread, which no longer verifies them again; without
`--checked` this thread still parses and verifies each event, as the consumer's claim does for a
row it has no checked event for). The drain consults a network lane as the bridge's does (every `orders` message
asks it whether it must leave the group); `--no-lane` drains without one.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORKDIR = Path(tempfile.mkdtemp(prefix="bench-drain-"))
POSTGRES = "--postgres" in sys.argv
os.environ.update(
    DJANGO_SETTINGS_MODULE="mostro_site.settings.local",
    DJANGO_DEBUG="0",
    MOSTRO_VAR_DIR=str(WORKDIR),
    MOSTRO_ENV_FILE=str(WORKDIR / "no.env"),
    MOSTRO_NSEC_PRIVKEY=os.urandom(32).hex(),
    LIGHTNING_BACKEND="lightning.fake.FakeLightningClient",
    MOSTRO_LOG_LEVEL="WARNING",
    MOSTRO_METRICS_FLUSH_SECONDS="0",
    DATABASE_URL=(
        os.environ.get("BENCH_POSTGRES_URL") or os.environ["TEST_POSTGRES_URL"]
        if POSTGRES
        else f"sqlite:///{WORKDIR / 'drain.sqlite3'}"
    ),
)
os.environ.pop("REDIS_URL", None)

import django  # noqa: E402

django.setup()

import logging  # noqa: E402

from coincurve import PrivateKey, PublicKey, PublicKeyXOnly  # noqa: E402
from django.core.management import call_command  # noqa: E402

from nostrbridge.bridge.intake import store_batch  # noqa: E402
from nostrbridge.bridge.lane import NetworkLane  # noqa: E402
from nostrbridge.bridge.worker import drain_batch  # noqa: E402
from nostrbridge.models import InboundEvent, InboundStatus, OutboundMessage  # noqa: E402
from nostrbridge.node_identity import node_pubkey  # noqa: E402
from nostrbridge.outbox_rounds import PublishPolicy, outbox_claim, outbox_record  # noqa: E402
from nostrbridge.protocol.enums import Action  # noqa: E402
from nostrbridge.protocol.keys import Keys  # noqa: E402
from nostrbridge.protocol.messages import Message  # noqa: E402
from nostrbridge.protocol.payloads import IdsPayload  # noqa: E402
from nostrbridge.protocol.transport import wrap_v2  # noqa: E402
from nostrbridge.relays import PublishResult  # noqa: E402

BATCH = 32  # nostrbridge.bridge.worker.DEFAULT_CLAIM_BATCH
STORE_CHUNK = 16  # what the intake gathers in its 10 ms at a few hundred messages/s


def secp_ms_per_message(count: int = 2000) -> float:
    """One Schnorr verify (dispatch), one ECDH, one signature (the reply): best of 3, ms."""
    message = hashlib.sha256(b"bench").digest()
    keys = [PrivateKey() for _ in range(count)]
    signed = [(k.public_key_xonly.format(), k.sign_schnorr(message)) for k in keys]
    node = PrivateKey()
    points = [b"\x02" + pub for pub, _ in signed]

    def best(func, items) -> float:
        times = []
        for _ in range(3):
            start = time.process_time()
            for item in items:
                func(item)
            times.append((time.process_time() - start) / len(items))
        return min(times)

    verify = best(lambda item: PublicKeyXOnly(item[0]).verify(item[1], message), signed)
    ecdh = best(lambda point: PublicKey(point).multiply(node.secret), points)
    sign = best(lambda key: key.sign_schnorr(message), keys[:500])
    return 1000 * (verify + ecdh + sign)


def requests(count: int) -> list[tuple[str, dict, bool]]:
    node = node_pubkey()
    items = []
    for _ in range(count):
        message = Message.new(Action.ORDERS, request_id=1, payload=IdsPayload([uuid.uuid4()]))
        items.append(("ws://bench", wrap_v2(message, Keys.generate(), node, sign=False).to_dict(), False))
    return items


def one_round(
    count: int,
    network: NetworkLane | None = None,
    *,
    during=None,
    chunk: int = STORE_CHUNK,
    consumer: bool = False,
    checked: bool = False,
) -> dict[str, float]:
    """One round of `count` messages; `during`: a context manager around the timed work only.

    The bridge's path: each intake batch of `chunk` events is stored, processed and its replies
    leased for the publisher in one call (`store_process_claim`), then their deliveries recorded;
    the shares are then "store + claim + dispatch + reply" and "publisher record". `consumer`: the
    path of rows the consumer claims (stored first, then claimed in batches of 32, replies claimed
    by the publisher), which the bridge takes when older rows wait. `checked`: the intake's path
    with the events the intake parsed and verified on the event loop handed over (its work, done
    on both branches, is outside the timed part).
    """
    items = requests(count)  # built outside the timed part (the clients' work)
    parsed = {}
    if checked:
        from nostrbridge.protocol.inbound import check_signature, parse_event

        for _, raw, _ in items:
            event = parse_event(raw)
            check_signature(event)
            parsed[raw["id"]] = (raw, event)
    policy = PublishPolicy()
    accepted = {"ws://bench": PublishResult(accepted=True, message="")}
    stop = threading.Event()
    with during or contextlib.nullcontext():
        if not consumer:
            from nostrbridge.bridge.intake_trip import store_process_claim  # this branch's path

            start = time.process_time()
            pending: list = []  # each batch's relay answers are recorded in the next trip
            for index in range(0, count, chunk):
                _, _, claimed, _ = store_process_claim(
                    items[index : index + chunk],
                    worker_id="bench:1:a",
                    stop=stop,
                    network=network,
                    publish=True,
                    policy=policy,
                    outcomes=pending,
                    **(
                        {"checked": {raw["id"]: parsed[raw["id"]] for _, raw, _ in items[index : index + chunk]}}
                        if checked
                        else {}
                    ),
                )
                pending = [(item, accepted) for item in claimed]
            outbox_record(outcomes=pending, policy=policy)
            published = time.process_time()
        else:
            shares = [0.0, 0.0, 0.0]
            start = time.process_time()
            for index in range(0, count, chunk):
                began = time.process_time()
                store_batch(items[index : index + chunk])
                stored = time.process_time()
                while drain_batch(worker_id="bench:1:a", limit=BATCH, stop=stop, network=network):
                    pass
                drained = time.process_time()
                while claimed := outbox_claim(limit=BATCH, lease_s=policy.lease_s):
                    outbox_record(outcomes=[(item, accepted) for item in claimed], policy=policy)
                published = time.process_time()
                shares = [shares[0] + stored - began, shares[1] + drained - stored, shares[2] + published - drained]
            stored = start + shares[0]
            drained = stored + shares[1]
    done = InboundEvent.objects.filter(status=InboundStatus.DONE).count()
    replies = OutboundMessage.objects.filter(status="sent").count()
    InboundEvent.objects.all().delete()
    OutboundMessage.objects.all().delete()
    if (done, replies) != (count, count):
        raise SystemExit(f"round incomplete: {done} done, {replies} replies sent of {count}")
    if not consumer:
        return {"total": 1000 * (published - start) / count}
    return {
        "store": 1000 * (stored - start) / count,
        "claim + dispatch + reply": 1000 * (drained - stored) / count,
        "publisher claim + record": 1000 * (published - drained) / count,
        "total": 1000 * (published - start) / count,
    }


def count_statements(count: int) -> dict[str, float]:
    """PostgreSQL round trips per message, by statement, over one round of `count` messages.

    Counted in psycopg: every `Cursor.execute` / `executemany` (keyed by its first words) and
    every command the connection sends itself (the implicit BEGIN, COMMIT, ROLLBACK). Each is
    one round trip to the server; `executemany` may be several, counted as one.
    """
    from collections import Counter

    import psycopg
    from psycopg import _connection_base

    counts: Counter[str] = Counter()
    originals = (psycopg.Cursor.execute, psycopg.Cursor.executemany, _connection_base.BaseConnection._exec_command)

    def statement_key(query) -> str:
        text = query.as_string(None) if hasattr(query, "as_string") else str(query)
        head = text.split(maxsplit=1)[0].upper() if text.strip() else "?"
        table = re.search(r"(nostrbridge_\w+|orders_\w+|django_q_\w+|mostro_site_\w+|disputes_\w+)", text.lower())
        return f"{head} {table.group(1) if table else ''}".strip()

    def execute(self, query, *args, **kwargs):
        counts[statement_key(query)] += 1
        return originals[0](self, query, *args, **kwargs)

    def executemany(self, query, *args, **kwargs):
        counts[statement_key(query) + " (executemany)"] += 1
        return originals[1](self, query, *args, **kwargs)

    def exec_command(self, command, *args, **kwargs):
        counts[bytes(command).decode().split()[0].upper()] += 1
        return originals[2](self, command, *args, **kwargs)

    @contextlib.contextmanager
    def counting():
        psycopg.Cursor.execute, psycopg.Cursor.executemany = execute, executemany
        _connection_base.BaseConnection._exec_command = exec_command
        try:
            yield
        finally:
            psycopg.Cursor.execute, psycopg.Cursor.executemany, _connection_base.BaseConnection._exec_command = (
                originals
            )

    one_round(count, during=counting())
    return {key: value / count for key, value in counts.most_common()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=640, help="messages per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="$BENCH_POSTGRES_URL or $TEST_POSTGRES_URL (flushed)")
    parser.add_argument(
        "--statements",
        action="store_true",
        help="with --postgres: count round trips per message by statement, then stop",
    )
    parser.add_argument("--no-lane", action="store_true", help="drain without a network lane")
    parser.add_argument(
        "--chunk", type=int, default=STORE_CHUNK, help="events per intake batch (300/s spread evenly: about 3)"
    )
    parser.add_argument(
        "--checked",
        action="store_true",
        help="the intake's path with the intake's parsed, verified events handed over (bridge7)",
    )
    parser.add_argument(
        "--consumer",
        action="store_true",
        help="the consumer's path: store, then claim in batches of 32, the publisher claims the replies",
    )
    args = parser.parse_args()
    # Only `orders` messages: the lane is consulted, never used, so it needs no threads.
    network = None if args.no_lane else NetworkLane(worker_id="bench:1:a", threads=0)
    logging.disable(logging.INFO)  # dispatch logs each cant-do at INFO; the bridge runs at WARNING
    call_command("migrate", verbosity=0)
    if args.postgres:
        call_command("flush", interactive=False, verbosity=0)
    one_round(64, network, consumer=args.consumer)  # warm caches and connections
    if args.statements:
        if not args.postgres:
            raise SystemExit("--statements counts psycopg's round trips: add --postgres")
        per_message = count_statements(args.messages)
        print(f"\nPostgreSQL round trips per `orders` message (one round of {args.messages}):")
        for key, value in per_message.items():
            print(f"  {value:6.3f}  {key}")
        print(f"  {sum(per_message.values()):6.3f}  total")
        return
    load_before = os.getloadavg()[0]
    rounds = [
        one_round(args.messages, network, chunk=args.chunk, consumer=args.consumer, checked=args.checked)
        for _ in range(args.rounds)
    ]
    best = min(rounds, key=lambda r: r["total"])
    crypto_ms = secp_ms_per_message()
    database = "PostgreSQL" if args.postgres else "SQLite"
    lane = "without a network lane" if network is None else "network lane consulted"
    path = "the consumer's path" if args.consumer else "the intake's path"
    print(
        f"\ndatabase thread, {database}, {lane}, {path}, intake batches of {args.chunk}:"
        f" {args.rounds} rounds of {args.messages} `orders` messages, best round"
    )
    for name, value in best.items():
        print(f"  {name:>26}: {value:.3f} ms/message")
    print(f"  {'rounds (total)':>26}: " + " / ".join(f"{r['total']:.3f}" for r in rounds))
    print(f"  {'secp256k1 work':>26}: {crypto_ms:.3f} ms/message (1 verify, 1 ECDH, 1 signature)")
    print(f"  {'database thread / secp':>26}: {best['total'] / crypto_ms:.2f}x")
    print(f"  {'load average':>26}: {load_before:.2f} → {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
