"""`/healthz`, `/readyz` and `manage.py doctor`: each check's state, the status code, the advice."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from mostro_site.config import clear_node_config_cache
from mostro_site.ops.models import ProcessHeartbeat, RecordedLightningNode
from mostro_site.ops.readiness import is_ready, run_checks
from nostrbridge.models import RelayHealth
from orders.models import BtcPrice

pytestmark = pytest.mark.django_db(transaction=True)  # /readyz runs its checks in worker threads


@pytest.fixture
def healthy(simnet, settings):
    """A node whose every check passes: simnet's LND, a connected relay, a fresh job heartbeat, prices."""
    settings.MOSTRO_FIAT_CURRENCIES_ACCEPTED = ["USD", "EUR"]
    settings.MOSTRO_RELAYS = ["wss://one", "wss://two"]
    clear_node_config_cache()
    now = timezone.now()
    RelayHealth.objects.create(relay_url="wss://one", connected=True)
    RelayHealth.objects.create(relay_url="wss://two", connected=False)
    ProcessHeartbeat.objects.create(instance="cluster:mostro@h", role="jobs", started_at=now, seen_at=now)
    for code in ("USD", "EUR"):
        BtcPrice.objects.create(fiat_code=code, price=90_000, as_of=now - timedelta(seconds=60))
    with override_settings(**simnet.lnd_settings("mostro")):
        yield simnet
    clear_node_config_cache()


def doctor(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("doctor", *args, stdout=out, no_color=True)
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


def test_healthz_answers_without_touching_anything(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_ready_node_answers_200_with_every_check_ok(healthy, client):
    response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert {name: (check["state"], check["required"]) for name, check in body["checks"].items()} == {
        "database": ("ok", True),
        "lightning": ("ok", True),
        "relays": ("ok", True),
        "jobs": ("ok", True),
        "prices": ("ok", True),
    }
    assert body["checks"]["relays"]["detail"] == "1 of 2 relays connected"
    assert body["checks"]["prices"]["detail"] == "2 currencies fresh"
    assert body["checks"]["lightning"]["detail"].startswith("regtest node at block ")
    assert body["checks"]["lightning"]["detail"].endswith("(identity recorded now)")
    assert RecordedLightningNode.objects.get().pubkey == healthy.node("mostro")["pubkey"]
    # the second call finds the record and says nothing about recording
    assert "recorded" not in client.get("/readyz").json()["checks"]["lightning"]["detail"]


def test_each_failure_makes_the_node_unready_and_doctor_says_what_to_do(healthy, client):
    RelayHealth.objects.update(updated_at=timezone.now() - timedelta(minutes=5))
    ProcessHeartbeat.objects.update(seen_at=timezone.now() - timedelta(minutes=10))
    BtcPrice.objects.filter(fiat_code="EUR").update(as_of=timezone.now() - timedelta(hours=2))

    response = client.get("/readyz")
    code, text = doctor()

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert {name: check["state"] for name, check in checks.items()} == {
        "database": "ok",
        "lightning": "ok",
        "relays": "fail",
        "jobs": "fail",
        "prices": "fail",
    }
    assert checks["relays"]["detail"] == "0 of 2 relays connected"
    assert checks["jobs"]["detail"].startswith("last heartbeat 6")
    assert checks["prices"]["detail"] == "stale or missing: EUR"
    assert code == 1
    assert "FAIL  relays" in text
    assert "Start the relay bridge (or mostrod)." in text
    assert "Is `run_jobs` running?" in text
    assert "no price younger than 1800 s for EUR" in text
    assert "Not ready (relays, jobs, prices): /readyz answers 503." in text


def test_optional_checks_are_shown_but_do_not_decide(healthy, settings, client):
    settings.MOSTRO_READY_OPTIONAL_CHECKS = ["prices"]
    BtcPrice.objects.all().delete()

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"]["prices"] == {
        "state": "fail",
        "detail": "stale or missing: EUR, USD",
        "required": False,
        "ms": response.json()["checks"]["prices"]["ms"],
    }


def test_another_lnd_identity_fails_until_the_operator_accepts_it(healthy):
    RecordedLightningNode.objects.create(pubkey="02" + "ab" * 32, alias="old", recorded_at=timezone.now())

    [lightning] = [result for result in run_checks() if result.name == "lightning"]
    code, text = doctor()
    accepted_code, accepted_text = doctor("--accept-lnd-identity")

    assert (lightning.ok, lightning.detail) == (False, "answers with another node identity")
    assert "this node's escrows are on 02abab" in lightning.problem
    assert code == 1
    assert "--accept-lnd-identity" in text
    assert accepted_code == 0
    assert f"Recorded LND node {healthy.node('mostro')['pubkey']}" in accepted_text
    assert RecordedLightningNode.objects.get().pubkey == healthy.node("mostro")["pubkey"]


def test_unreachable_lnd_is_a_failed_check_with_the_node_s_error(healthy, settings):
    settings.MOSTRO_READY_LND_TIMEOUT_SECONDS = 5.0
    healthy.control.set_online("mostro", False)
    try:
        results = {result.name: result for result in run_checks()}
    finally:
        healthy.control.set_online("mostro", True)

    assert (results["lightning"].ok, results["lightning"].detail) == (False, "unreachable")
    assert "unavailable for GetInfo" in results["lightning"].problem
    assert "LND_GRPC_HOST" in results["lightning"].advice
    assert not is_ready(list(results.values()))


def test_doctor_json_is_the_readyz_body(healthy):
    code, text = doctor("--json")
    body = json.loads(text)
    assert code == 0
    assert body["status"] == "ok"
    assert sorted(body["checks"]) == ["database", "jobs", "lightning", "prices", "relays"]
