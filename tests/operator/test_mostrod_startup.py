"""mostrod's startup guards: the operator login shown once, and refusing a bad configuration."""

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


def test_refuses_to_start_on_configuration_errors(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MOSTRO_", "LND_", "DJANGO_", "DATABASE_"))},
        "DJANGO_SETTINGS_MODULE": "mostro_site.settings.local",
        "MOSTRO_VAR_DIR": str(tmp_path),
        "MOSTRO_ENV_FILE": str(tmp_path / ".env"),
        "MOSTRO_NSEC_PRIVKEY": "1" * 64,
        "MOSTRO_FEE": "2",
        "LIGHTNING_BACKEND": "lightning.lnd.LndClient",
        "LND_CERT_FILE": str(tmp_path / "missing.cert"),
        "LND_MACAROON_FILE": str(tmp_path / "missing.macaroon"),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "mostrod", "--no-migrate"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
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
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("MOSTRO_", "LND_", "DJANGO_", "DATABASE_"))},
            "DJANGO_SETTINGS_MODULE": "mostro_site.settings.local",
            "MOSTRO_VAR_DIR": str(tmp_path),
            "MOSTRO_ENV_FILE": str(tmp_path / ".env"),
            "MOSTRO_NSEC_PRIVKEY": "2" * 64,
            "LIGHTNING_BACKEND": "lightning.fake.FakeLightningClient",
        }
        result = subprocess.run(
            [sys.executable, "manage.py", "mostrod", "--port", str(port), "--no-bridge", "--no-cluster"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot listen: Couldn't listen on 127.0.0.1:{port}" in result.stderr
    assert "node stopped" in result.stderr
    assert "Mostro node is running" not in result.stdout
