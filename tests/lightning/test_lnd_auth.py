"""TLS and macaroon failures give clear, typed errors."""

import pytest

from lightning.errors import LightningConfigError, LightningPermissionDenied, LightningUnavailable
from lightning.lnd_channel import normalize_target
from lightning.simnet.credentials import make_tls


def test_wrong_macaroon_is_permission_denied(simnet, tmp_path):
    wrong = tmp_path / "admin.macaroon"
    wrong.write_bytes(b"\x02not-this-node")
    client = simnet.client("mostro", macaroon_file=str(wrong))
    with pytest.raises(LightningPermissionDenied) as denied:
        client.get_info()
    assert denied.value.code == "UNKNOWN"
    assert denied.value.details == "verification failed: signature mismatch after caveat verification"
    assert "permission denied" in denied.value.message
    assert "macaroon rejected" in denied.value.message


def test_another_nodes_macaroon_is_refused(simnet):
    client = simnet.client("mostro", macaroon_file=simnet.node("alice")["macaroon"])
    with pytest.raises(LightningPermissionDenied):
        client.get_info()


def test_wrong_certificate_fails_the_tls_handshake(simnet, tmp_path):
    other_cert, _ = make_tls("somebody-else")
    cert_path = tmp_path / "tls.cert"
    cert_path.write_bytes(other_cert)
    client = simnet.client("mostro", cert_file=str(cert_path), call_timeout_seconds=2)
    with pytest.raises(LightningUnavailable) as failed:
        client.get_info()
    assert failed.value.code == "UNAVAILABLE"
    assert "TLS handshake" in failed.value.message
    assert str(cert_path) in failed.value.message


def test_unreadable_certificate_names_the_path(simnet, tmp_path):
    missing = tmp_path / "nope" / "tls.cert"
    client = simnet.client("mostro", cert_file=str(missing))
    with pytest.raises(LightningConfigError) as config:
        client.get_info()
    assert str(missing) in config.value.message
    assert "LND_CERT_FILE" in config.value.message
    assert isinstance(config.value, LightningUnavailable)  # nothing reached the node


def test_not_a_certificate(simnet, tmp_path):
    junk = tmp_path / "tls.cert"
    junk.write_text("hello")
    with pytest.raises(LightningConfigError) as config:
        simnet.client("mostro", cert_file=str(junk)).get_info()
    assert config.value.message == f"LND_CERT_FILE={junk} is not a PEM certificate"


def test_constructing_a_client_reads_nothing():
    from lightning.lnd import LndClient

    client = LndClient(host="127.0.0.1:1", cert_file="/does/not/exist", macaroon_file="/nor/this")
    with pytest.raises(LightningConfigError):
        client.get_info()


@pytest.mark.parametrize(
    ("host", "target"),
    [("https://node:10009/", "node:10009"), ("127.0.0.1:10009", "127.0.0.1:10009"), (" http://x:1 ", "x:1")],
)
def test_target_normalisation(host, target):
    assert normalize_target(host) == target
