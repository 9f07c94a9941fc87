"""No trader's message waits on another trader's outside server (issue 13, part 3).

A take naming a slow-dribbling Lightning address is handed back to the inbox while the address
is checked in the background (lightning.address_check); the next trader's message is handled
at once; when the check ends (here: the LNURL total deadline) the take is processed again and
answered `invalid_invoice`. Latency figures: benchmarks/bench_slow_lnurl.py.
"""

import pytest
from django.utils import timezone

from lightning import lnurl_http
from lightning.address_check import address_checker
from nostrbridge.dispatch import process_inbound
from nostrbridge.inbox import inbox_claim
from nostrbridge.models import InboundEvent, InboundStatus
from nostrbridge.protocol.enums import Action
from nostrbridge.protocol.payloads import PaymentRequestPayload
from tests.lightning.dribble_server import DribbleServer
from tests.orders.services.support import make_order, set_price, snapshot
from tests.trade.harness import TradeClient, deliver

pytestmark = pytest.mark.django_db


def test_slow_address_is_checked_off_the_serial_path_and_answered_when_done(node, fake_ln, monkeypatch):
    monkeypatch.setattr(lnurl_http, "TOTAL_TIMEOUT_SECONDS", 1.0)
    set_price()
    order = make_order(TradeClient("seller"), index=1, kind="sell")
    before = snapshot(order)
    attacker, honest = TradeClient("attacker"), TradeClient("honest")
    with DribbleServer(interval_s=0.05, padding=2000) as slow:
        take = attacker.build(
            Action.TAKE_SELL, index=1, order_id=order.id, payload=PaymentRequestPayload(None, slow.address, None)
        )
        assert deliver(take) == InboundStatus.PROCESSING  # handed back, nothing decided
        row = InboundEvent.objects.get(event_id=take.id)
        assert (row.locked_by, row.attempts, attacker.replies()) == ("deferred", 0, [])

        # Another trader is served while the attacker's server dribbles.
        replies = honest.send(Action.NEW_ORDER, index=1, payload=_terms(), request_id=7)
        assert [r.action for r in replies] == ["new-order"]

        address_checker()._entries[slow.address].future.exception(timeout=30)  # the check ended
    InboundEvent.objects.filter(pk=row.pk).update(locked_until=timezone.now())  # its short lease ends
    for pk in inbox_claim(worker_id="test"):
        process_inbound(pk)

    assert [(r.action, r.json["cant-do"]["payload"]) for r in attacker.replies()] == [
        ("cant-do", {"cant_do": "invalid_invoice"})
    ]
    assert InboundEvent.objects.get(pk=row.pk).status == InboundStatus.DONE
    assert snapshot(order) == before


def _terms():
    from tests.orders.services.support import order_terms

    return order_terms(kind="buy")
