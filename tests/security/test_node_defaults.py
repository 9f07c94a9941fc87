"""A node nobody configured: a generated Django secret key, DEBUG off, secrets kept 0600, the
admin's static files still served."""

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from channels.testing import HttpCommunicator
from django.core.checks import Warning
from django.core.management import call_command

from mostro_site.checks import check_mostro_settings
from mostro_site.config.env import INSECURE_SECRET_KEY
from mostro_site.runtime.node import node_application
from tests.operator.test_import_mostrod import SETTINGS_TOML

REPO_ROOT = Path(__file__).resolve().parents[2]


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_placeholder_secret_key_is_a_check_warning(settings):
    settings.SECRET_KEY = INSECURE_SECRET_KEY
    [warning] = [problem for problem in check_mostro_settings() if problem.id == "mostro.W002"]
    assert isinstance(warning, Warning)
    assert warning.msg.startswith("DJANGO_SECRET_KEY is not set")
    settings.SECRET_KEY = "k" * 50
    assert "mostro.W002" not in [problem.id for problem in check_mostro_settings()]


def test_generate_writes_both_secrets_and_makes_a_world_readable_env_0600(tmp_path, monkeypatch):
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("MOSTRO_RELAYS=ws://127.0.0.1:7000\n")
    env_file.chmod(0o644)
    call_command("mostro_keys", "--generate", "--write-env", str(env_file), stdout=io.StringIO())
    values = _values(env_file)
    assert list(values) == ["MOSTRO_RELAYS", "MOSTRO_NSEC_PRIVKEY", "DJANGO_SECRET_KEY"]
    assert values["MOSTRO_NSEC_PRIVKEY"].startswith("nsec1")
    key = values["DJANGO_SECRET_KEY"]
    assert len(key) == 67  # 50 random bytes, URL-safe base64 (no "$" or "#" for django-environ)
    assert set(key) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert _mode(env_file) == 0o600


def test_an_existing_django_secret_key_is_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("DJANGO_SECRET_KEY=mine\n")
    call_command("mostro_keys", "--generate", "--write-env", str(env_file), stdout=io.StringIO())
    assert [line.split("=")[0] for line in env_file.read_text().splitlines()] == [
        "DJANGO_SECRET_KEY",
        "MOSTRO_NSEC_PRIVKEY",
    ]
    assert _values(env_file)["DJANGO_SECRET_KEY"] == "mine"


@pytest.mark.django_db
def test_importer_makes_a_world_readable_env_0600(tmp_path):
    toml = tmp_path / "settings.toml"
    toml.write_text(SETTINGS_TOML)
    env_file = tmp_path / "node.env"
    env_file.write_text("# mine\n")
    env_file.chmod(0o644)
    call_command("import_mostrod", "--toml", str(toml), "--write-env", str(env_file), stdout=io.StringIO())
    assert env_file.read_text() == "# mine\nMOSTRO_NSEC_PRIVKEY=nsec1secretsecretsecretsecretsecretsecret\n"
    assert _mode(env_file) == 0o600


def _local_settings(env_extra: dict) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MOSTRO_"))}
    env |= {"DJANGO_SETTINGS_MODULE": "mostro_site.settings.local", "MOSTRO_ENV_FILE": "/nonexistent", **env_extra}
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_debug_is_off_unless_asked():
    assert _local_settings({}) == "False"
    assert _local_settings({"DJANGO_DEBUG": "true"}) == "True"


async def test_node_serves_admin_static_files_with_debug_off(settings):
    settings.DEBUG = False
    communicator = HttpCommunicator(node_application(), "GET", "/static/admin/css/base.css")
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(timeout=10)  # the file itself streams after this
    assert (start["type"], start["status"]) == ("http.response.start", 200)
    assert dict(start["headers"])[b"Content-Type"] == b"text/css"
    await communicator.wait(timeout=10)
