import io
import os
import stat

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from nostrbridge.node_identity import decode_npub, parse_secret_key, xonly_pubkey_hex

# sha256-free fixed key: 0x11 repeated; its npub was cross-checked against nostr-sdk.
FIXED_NPUB = "npub1fu64hh9hes90w2808n8tjc2ajp5yhddjef0ctx4s7zmsgp6cwx4qgy4eg9"


def _run(*args) -> str:
    out = io.StringIO()
    call_command("mostro_keys", *args, stdout=out)
    return out.getvalue()


def test_shows_npub_of_configured_key():
    assert _run().splitlines()[0] == f"npub: {FIXED_NPUB}"


def test_generate_writes_nsec_only_where_told(tmp_path):
    env_file = tmp_path / "node.env"
    output = _run("--generate", "--write-env", str(env_file))
    npub = output.splitlines()[0].removeprefix("npub: ")
    line, secret_key_line = env_file.read_text().splitlines()  # and Django's secret key, if unset
    assert secret_key_line.startswith("DJANGO_SECRET_KEY=")
    assert line.startswith("MOSTRO_NSEC_PRIVKEY=nsec1")
    secret = parse_secret_key(line.split("=", 1)[1])
    assert xonly_pubkey_hex(secret) == decode_npub(npub)
    assert "nsec1" not in output
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600


def test_generate_refuses_to_overwrite_a_key(tmp_path):
    env_file = tmp_path / "node.env"
    env_file.write_text("MOSTRO_NSEC_PRIVKEY=abc\n")
    with pytest.raises(CommandError):
        _run("--generate", "--write-env", str(env_file))
    assert env_file.read_text() == "MOSTRO_NSEC_PRIVKEY=abc\n"


def test_generate_without_target_does_not_print_secret():
    output = _run("--generate")
    assert "nsec1" not in output
    assert "not stored" in output


def test_invalid_configured_key_is_a_clear_error():
    with override_settings(MOSTRO_NSEC_PRIVKEY="nsec1xyz"), pytest.raises(CommandError) as exc:
        _run()
    assert str(exc.value) == "MOSTRO_NSEC_PRIVKEY not a valid nsec (bad bech32 checksum or characters)"
