"""mostrod's startup guards: the operator login shown once, and refusing a bad configuration (the
bridge too: a poll that would never wait, docs/OPERATIONS.md §Idle wake-ups)."""

import os
import subprocess
import sys

import pytest
from django.contrib.auth.models import User

from mostro_site.runtime.bootstrap import ensure_operator_login
from tests.relays.net import REPO_ROOT

pytestmark = pytest.mark.django_db


def test_operator_login_is_created_and_printed_once(tmp_path):
    first = ensure_operator_login(tmp_path)
    password = first.split("password: ")[1].strip()
    user = User.objects.get(username="operator")
    assert user.is_superuser
    assert user.groups.filter(name="operator").exists()
    assert user.check_password(password)
    second = ensure_operator_login(tmp_path)
    assert "password:" not in second
    assert "shown at first start" in second
    assert password not in (tmp_path / "operator-login-shown").read_text()


def test_login_is_recreated_when_the_database_was_reset(tmp_path):
    ensure_operator_login(tmp_path)
    User.objects.all().delete()
    assert "password:" in ensure_operator_login(tmp_path)


def test_existing_operator_keeps_its_password(tmp_path):
    User.objects.create_user("operator", password="mine")
    assert "already exists" in ensure_operator_login(tmp_path)
    assert User.objects.get(username="operator").check_password("mine")


def _manage(tmp_path, *command: str, **environment: str) -> subprocess.CompletedProcess:
    """`manage.py <command>` with the local settings on `tmp_path`, none of this process's node settings."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MOSTRO_", "LND_", "DJANGO_", "DATABASE_"))},
        "DJANGO_SETTINGS_MODULE": "mostro_site.settings.local",
        "MOSTRO_VAR_DIR": str(tmp_path),
        "MOSTRO_ENV_FILE": str(tmp_path / ".env"),
        "MOSTRO_NSEC_PRIVKEY": "1" * 64,
        "LIGHTNING_BACKEND": "lightning.fake.FakeLightningClient",
        **environment,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *command], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_refuses_to_start_on_configuration_errors(tmp_path):
    result = _manage(
        tmp_path,
        "mostrod",
        "--no-migrate",
        MOSTRO_FEE="2",
        LIGHTNING_BACKEND="lightning.lnd.LndClient",
        LND_CERT_FILE=str(tmp_path / "missing.cert"),
        LND_MACAROON_FILE=str(tmp_path / "missing.macaroon"),
    )
    assert result.returncode == 1
    assert "(mostro.E004) MOSTRO_FEE=2.0 is outside 0–1." in result.stderr
    assert "(mostro.E015) LND_CERT_FILE=" in result.stderr
    assert "Mostro node is running" not in result.stdout


def test_busy_web_port_stops_in_order_with_exit_code_1(tmp_path):
    import socket

    from tests.relays.net import free_port

    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        result = _manage(
            tmp_path, "mostrod", "--port", str(port), "--no-bridge", "--no-cluster", MOSTRO_NSEC_PRIVKEY="2" * 64
        )
    assert result.returncode == 1
    assert f"cannot listen: Couldn't listen on 127.0.0.1:{port}" in result.stderr
    assert "node stopped" in result.stderr
    assert "Mostro node is running" not in result.stdout


def test_mostrod_refuses_to_start_on_a_bad_poll(tmp_path):
    result = _manage(
        tmp_path,
        "mostrod",
        "--no-migrate",
        MOSTRO_BRIDGE_INBOX_POLL_SECONDS="0.25s!",
        MOSTRO_INVOICE_WATCHER_POLL_SECONDS="0",
        MOSTRO_Q_POLL_SECONDS="fast",
        MOSTRO_Q_SCHEDULER="ture",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "(mostro.E020) MOSTRO_INVOICE_WATCHER_POLL_SECONDS=0.0 must be a finite number of seconds above 0." in (
        result.stderr
    )
    assert "(mostro.E020) MOSTRO_Q_POLL_SECONDS='fast' is not a number." in result.stderr
    assert "(mostro.E021) MOSTRO_Q_SCHEDULER='ture' is neither true nor false." in result.stderr
    assert "MOSTRO_BRIDGE_INBOX_POLL_SECONDS" not in result.stderr  # read as 0.25 by django-environ, as before
    assert "Mostro node is running" not in result.stdout


@pytest.mark.parametrize("command", ["mostrod", "nostr_bridge", "invoice_watcher"])
def test_a_loop_neither_uvloop_nor_asyncio_is_refused(command, tmp_path):
    result = _manage(tmp_path, command, MOSTRO_EVENT_LOOP="libuv")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "(mostro.E031) MOSTRO_EVENT_LOOP='libuv' is neither uvloop nor asyncio." in result.stderr
    assert "READY" not in result.stdout
    assert "Mostro node is running" not in result.stdout


def test_the_bridge_refuses_to_start_on_a_bad_poll(tmp_path):
    result = _manage(tmp_path, "nostr_bridge", MOSTRO_BRIDGE_CONFIG_POLL_SECONDS="-3")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "(mostro.E020) MOSTRO_BRIDGE_CONFIG_POLL_SECONDS=-3.0 must be a finite number of seconds above 0." in (
        result.stderr
    )
    assert "READY" not in result.stdout
