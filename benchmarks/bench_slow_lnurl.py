"""Honest traders next to 20 attackers whose Lightning addresses are slow-dribbling servers
(issue 13, part 3): honest `orders` and `release` round trips through the serial handler path.

Run:  .venv/bin/python benchmarks/bench_slow_lnurl.py [--rounds 60] [--burst 1] [--inline]

What runs (one process, the node's own pipeline, no relay): 20 local HTTP servers that answer
one byte every 50 ms (a full answer would take over 100 s: only the LNURL total deadline, 4 s,
ends each request); 20 attackers, each taking a sell order with its slow address; honest
traders asking `orders` and releasing fiat-sent trades. Each round stores `--burst` attacker
takes (a fresh order, a fresh trade key each) and then one honest message in the durable inbox, and a
serial worker drains the inbox exactly as a bridge does (`inbox_claim` in id order, then
`process_inbound` one event at a time). The honest round trip is measured from the inbox
insert to its reply row committed in the outbox: the wait behind attacker messages plus its
own handling. Relay transport and the publisher are not in it (benchmarks/bench_bridge.py
measures those). Attacker takes are re-polled as the bridge would (their short deferral
lease); at the end every attacker's take must have been answered `invalid_invoice`.

`--inline` measures the old behaviour for comparison (the address checked inside the handler,
blocking the serial path for the whole LNURL budget); it takes minutes.

Prints p50/p90/p99/max of each honest round trip, in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mostro_site.settings.test")

ROUNDS = 60
ATTACKERS = 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--burst", type=int, default=1, help="attacker takes stored before each honest message")
    parser.add_argument("--inline", action="store_true", help="check addresses inside the handler (the old path)")
    args = parser.parse_args()
    os.environ["BENCH_SLOW_LNURL_ROUNDS"] = str(args.rounds)
    os.environ["BENCH_SLOW_LNURL_BURST"] = str(args.burst)
    os.environ["BENCH_SLOW_LNURL_INLINE"] = "1" if args.inline else ""
    import pytest

    # The pipeline needs the test database and the fake LND of the test suite: run the
    # measurement below as one pytest item (-s: its figures go to stdout).
    return pytest.main(
        [f"{__file__}::test_bench_slow_lnurl", "-q", "-s", "-p", "no:cacheprovider", "-p", "no:randomly"]
    )


# --- the measurement (a pytest item, so the suite's fixtures build the node) ----------------------

if __name__ != "__main__":  # collected by pytest (Django is set up): the suite's fixtures
    from tests.orders.services.support import fake_ln, lnurl_server, node  # noqa: F401


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _report(name: str, samples: list[float]) -> None:
    ms = [s * 1000 for s in samples]
    print(
        f"  {name:<8} n={len(ms):>4}  p50={_percentile(ms, 0.5):8.1f}  p90={_percentile(ms, 0.9):8.1f}"
        f"  p99={_percentile(ms, 0.99):8.1f}  max={max(ms):8.1f}  ms"
    )


def test_bench_slow_lnurl(db, node, fake_ln, django_capture_on_commit_callbacks, monkeypatch):  # noqa: F811
    import time

    from django.utils import timezone

    from lightning.address_check import address_checker
    from lightning.lnurl import resolve_pay_request
    from nostrbridge.dispatch import process_inbound
    from nostrbridge.inbox import inbox_claim, inbox_store
    from nostrbridge.models import InboundEvent, InboundStatus, OutboundMessage
    from nostrbridge.protocol.enums import Action
    from nostrbridge.protocol.payloads import IdsPayload, PaymentRequestPayload
    from orders.services import invoice
    from tests.lightning.dribble_server import DribbleServer
    from tests.orders.services.support import make_order, set_price
    from tests.orders.trade_states import active_sell_trade
    from tests.trade.harness import TradeClient

    rounds = int(os.environ.get("BENCH_SLOW_LNURL_ROUNDS", ROUNDS))
    burst = int(os.environ.get("BENCH_SLOW_LNURL_BURST", 1))
    inline = bool(os.environ.get("BENCH_SLOW_LNURL_INLINE"))
    if inline:
        monkeypatch.setattr(invoice, "_address_verdict", resolve_pay_request)
    address_checker().forget()
    set_price()

    def store(event) -> int:
        inbox_store(items=[("ws://bench", event.to_dict())])
        return InboundEvent.objects.get(event_id=event.id).pk

    def drain_until(pk: int) -> None:
        """The bridge's serial worker: claim in id order, process one at a time."""
        while InboundEvent.objects.filter(pk=pk, status=InboundStatus.PROCESSING).exists() or (
            InboundEvent.objects.filter(pk=pk, status=InboundStatus.RECEIVED).exists()
        ):
            claimed = inbox_claim(worker_id="bench", limit=32)
            if not claimed:
                time.sleep(0.005)  # only deferred rows left: their short leases run
            for claimed_pk in claimed:
                with django_capture_on_commit_callbacks(execute=True):
                    process_inbound(claimed_pk)

    servers = [DribbleServer(interval_s=0.05, padding=2000).__enter__() for _ in range(ATTACKERS)]
    attackers: list[tuple[TradeClient, str]] = []
    latencies: dict[str, list[float]] = {"orders": [], "release": []}
    try:
        honest = TradeClient("honest-maker")
        book = [make_order(honest, index=i + 1, kind="sell") for i in range(3)]
        trades = []
        for i in range(rounds // 2 + 1):
            trade = active_sell_trade(fake_ln, seller=TradeClient(f"s{i}"), buyer=TradeClient(f"b{i}"))
            trade.buyer.send(Action.FIAT_SENT, index=1, order_id=trade.order.id, request_id=4)
            trades.append(trade)
        started = time.monotonic()
        for n in range(rounds):
            for b in range(burst):
                server = servers[(n * burst + b) % ATTACKERS]
                target = make_order(TradeClient(f"victim-{n}-{b}"), index=1, kind="sell")
                attacker = TradeClient(f"attacker-{n}-{b}")
                attackers.append((attacker, target.id))
                store(
                    attacker.build(
                        Action.TAKE_SELL,
                        index=1,
                        order_id=target.id,
                        payload=PaymentRequestPayload(None, server.address, None),
                    )
                )
            if n % 2 == 0:
                kind = "orders"
                event = honest.build(
                    Action.ORDERS, index=1, payload=IdsPayload([o.id for o in book]), request_id=n, trade_index=None
                )
            else:
                kind = "release"
                trade = trades[n // 2]
                event = trade.seller.build(Action.RELEASE, index=1, order_id=trade.order.id, request_id=n)
            sent = time.monotonic()
            drain_until(store(event))
            latencies[kind].append(time.monotonic() - sent)
        honest_done = time.monotonic() - started
        # Let every attacker's check end (its total deadline) and answer them.
        for entry in list(address_checker()._entries.values()):
            entry.future.exception(timeout=30)
        InboundEvent.objects.filter(locked_by="deferred").update(locked_until=timezone.now())
        while claimed := inbox_claim(worker_id="bench", limit=64):
            for pk in claimed:
                process_inbound(pk)
        answered = sum(
            1
            for attacker, _ in attackers
            if [r.action for r in attacker.replies()] == ["cant-do"]
            and OutboundMessage.objects.filter(recipient_pubkey=attacker.pubkey(1)).count() == 1
        )
    finally:
        for server in servers:
            server.__exit__(None, None, None)

    mode = "inline (old: address checked in the handler)" if inline else "off the serial path (this node)"
    print(f"\nbench_slow_lnurl: {ATTACKERS} dribbling LNURL servers, {rounds} rounds, address check {mode}")
    print(
        f"  each round: {burst} attacker take-sell(s) naming slow addresses, then 1 honest message; {honest_done:.1f} s"
    )
    _report("orders", latencies["orders"])
    _report("release", latencies["release"])
    every = latencies["orders"] + latencies["release"]
    print(f"  all honest round trips p99 = {_percentile([s * 1000 for s in every], 0.99):.1f} ms (target < 1000 ms)")
    print(f"  attackers answered cant-do invalid_invoice: {answered}/{len(attackers)}")
    assert answered == len(attackers)


if __name__ == "__main__":
    raise SystemExit(main())
