"""MOSTRO_LOG_FORMAT=json: one JSON object per line, with the context the code sets."""

import io
import json
import logging
import subprocess
import sys
from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.utils import timezone
from django_q.tasks import async_task

from mostro_site.ops.log_format import ContextFilter, JsonFormatter, logging_config
from mostro_site.ops.middleware import LogContextMiddleware
from nostrbridge.log_context import log_context, set_process_role
from orders.jobs import expire_pending_orders
from orders.models import Order
from tests.ops.test_metrics import MISSING_ORDER, inbound_script
from tests.orders.services.support import make_order, set_price
from tests.relays.net import REPO_ROOT
from tests.trade.harness import TradeClient

logger = logging.getLogger("tests.ops")


@pytest.fixture
def json_lines():
    """Every record logged meanwhile, as the JSON handler writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def collected(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def logged_job(order_id: str | None = None) -> None:
    logger.info("a job line")


@pytest.mark.django_db
def test_dispatcher_lines_carry_event_action_and_order(node, fake_ln, json_lines):
    inbound_script(fake_ln)
    lines = collected(json_lines)

    [cant_do] = [line for line in lines if line["message"].startswith("cant-do not_found for take-sell")]
    assert cant_do["action"] == "take-sell"
    assert cant_do["order_id"] == MISSING_ORDER
    assert len(cant_do["event_id"]) == 64
    assert cant_do["message"].endswith(f"({cant_do['event_id'][:12]})")
    assert (cant_do["level"], cant_do["logger"], cant_do["role"]) == ("INFO", "nostrbridge.dispatch", "cli")
    [created] = [line for line in lines if line["logger"] == "orders.services.create"]
    assert (created["action"], len(created["event_id"])) == ("new-order", 64)
    for line in lines:
        assert set(line) >= {"ts", "level", "logger", "message", "role", "order_id", "event_id", "action", "pid"}


@pytest.mark.django_db
def test_job_lines_carry_the_job_and_its_order(json_lines):
    async_task("tests.ops.test_logs.logged_job", order_id=MISSING_ORDER)
    async_task("tests.ops.test_logs.logged_job")
    [first, second] = [line for line in collected(json_lines) if line["message"] == "a job line"]
    assert first["job"] == second["job"] == "tests.ops.test_logs.logged_job"
    assert (first["order_id"], second["order_id"]) == (MISSING_ORDER, None)
    logger.info("after")  # the context was reset after each task
    assert collected(json_lines)[-1]["job"] is None


def test_web_requests_are_tagged_web_with_the_order_of_the_page(json_lines):
    def view(request):
        logger.info("in the view")
        return None

    middleware = LogContextMiddleware(view)
    request = RequestFactory().get("/api/orders/x")
    middleware.process_view(request, view, (), {"order_id": MISSING_ORDER})
    middleware(request)
    logger.info("outside")

    inside, outside = collected(json_lines)[-2:]
    assert (inside["role"], inside["order_id"]) == ("web", MISSING_ORDER)
    assert (outside["role"], outside["order_id"]) == ("cli", None)


def test_process_role_and_nested_context(json_lines):
    set_process_role("bridge")
    try:
        with log_context(order_id="o-1", action="release"):
            logger.warning("one")
            try:
                raise ValueError("boom")
            except ValueError:
                logger.exception("two")
    finally:
        set_process_role("cli")
    one, two = collected(json_lines)[-2:]
    assert (one["role"], one["order_id"], one["action"], one["level"]) == ("bridge", "o-1", "release", "WARNING")
    assert two["exception"].startswith("Traceback")
    assert two["exception"].endswith("ValueError: boom")
    assert "\n" not in json.dumps(two)


def test_text_stays_the_default_and_json_is_one_object_per_line():
    assert logging_config(level="INFO", fmt="text")["formatters"]["main"] == {
        "format": "%(asctime)s %(levelname)s %(name)s %(message)s"
    }
    code = "import logging; logging.getLogger('x').info('hello\\nworld')"
    for fmt, check in (("json", json.loads), ("text", lambda line: line.split(" ", 3)[2:] == ["INFO", "x hello"])):
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=REPO_ROOT,
            env={"MOSTRO_LOG_FORMAT": fmt, "DJANGO_SETTINGS_MODULE": "mostro_site.settings.test", "PATH": "/usr/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        first = done.stderr.splitlines()[0]
        assert check(first), (fmt, done.stderr)
        if fmt == "json":
            assert json.loads(first)["message"] == "hello\nworld"
            assert len(done.stderr.splitlines()) == 1


@pytest.mark.django_db
def test_sweep_jobs_tag_each_order_s_lines(node, fake_ln, json_lines):
    set_price()
    order = make_order(TradeClient("maker"), index=1, kind="sell")
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert expire_pending_orders() == {"candidates": 1, "expired": 1}

    lines = [line for line in collected(json_lines) if line["logger"] == "orders.services.timeouts"]
    assert lines
    assert {line["order_id"] for line in lines} == {str(order.pk)}
