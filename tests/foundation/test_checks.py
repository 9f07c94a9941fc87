import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from mostro_site.checks import check_mostro_settings


def _ids(**overrides) -> list[str]:
    with override_settings(**overrides):
        return sorted(e.id for e in check_mostro_settings() if e.level >= checks.ERROR)


def test_default_test_settings_are_valid():
    assert _ids() == []


@pytest.mark.parametrize(
    ("_case", "overrides", "expected"),
    [
        ("missing key", {"MOSTRO_NSEC_PRIVKEY": ""}, ["mostro.E001"]),
        ("malformed nsec", {"MOSTRO_NSEC_PRIVKEY": "nsec1qqqq"}, ["mostro.E002"]),
        ("short hex", {"MOSTRO_NSEC_PRIVKEY": "ab" * 16}, ["mostro.E002"]),
        ("zero secret", {"MOSTRO_NSEC_PRIVKEY": "0" * 64}, ["mostro.E002"]),
        ("dev fee low", {"MOSTRO_DEV_FEE_PERCENTAGE": 0.05}, ["mostro.E003"]),
        ("dev fee high", {"MOSTRO_DEV_FEE_PERCENTAGE": 1.01}, ["mostro.E003"]),
        ("fee negative", {"MOSTRO_FEE": -0.1}, ["mostro.E004"]),
        ("fee above one", {"MOSTRO_FEE": 1.5}, ["mostro.E004"]),
        ("routing fee", {"MOSTRO_MAX_ROUTING_FEE": 2.0}, ["mostro.E005"]),
        ("protocol 3", {"MOSTRO_PROTOCOL_VERSION": 3}, ["mostro.E006"]),
        ("pow", {"MOSTRO_POW": 300}, ["mostro.E007"]),
        ("min above max", {"MOSTRO_MIN_PAYMENT_AMOUNT": 10, "MOSTRO_MAX_ORDER_AMOUNT": 5}, ["mostro.E008"]),
        ("no relays", {"MOSTRO_RELAYS": []}, ["mostro.E011"]),
        ("http relay", {"MOSTRO_RELAYS": ["http://relay"]}, ["mostro.E012"]),
        ("bad fiat", {"MOSTRO_FIAT_CURRENCIES_ACCEPTED": ["usd"]}, ["mostro.E013"]),
    ],
)
def test_bad_setting_reported(_case, overrides, expected):
    assert _ids(**overrides) == expected


def test_unreadable_lnd_cert_reported(tmp_path):
    macaroon = tmp_path / "admin.macaroon"
    macaroon.write_bytes(b"\x01")
    ids = _ids(
        LIGHTNING_BACKEND="lightning.lnd.LndClient",
        LND_CERT_FILE=str(tmp_path / "missing.cert"),
        LND_MACAROON_FILE=str(macaroon),
    )
    assert ids == ["mostro.E015"]


def test_lnd_files_readable_pass(tmp_path):
    cert, macaroon = tmp_path / "tls.cert", tmp_path / "admin.macaroon"
    cert.write_text("cert")
    macaroon.write_bytes(b"\x01")
    assert (
        _ids(LIGHTNING_BACKEND="lightning.lnd.LndClient", LND_CERT_FILE=str(cert), LND_MACAROON_FILE=str(macaroon))
        == []
    )


def test_each_problem_is_its_own_line():
    with override_settings(MOSTRO_FEE=2, MOSTRO_PROTOCOL_VERSION=9), pytest.raises(SystemCheckError) as exc:
        call_command("check")
    text = str(exc.value)
    assert "MOSTRO_FEE=2 is outside 0–1." in text
    assert "MOSTRO_PROTOCOL_VERSION=9 is unknown." in text
