from django.test import override_settings

from lightning import get_lightning_client
from lightning.fake import FakeLightningClient
from lightning.lnd import LndClient


def test_backend_comes_from_settings_and_is_cached():
    assert isinstance(get_lightning_client(), FakeLightningClient)
    assert get_lightning_client() is get_lightning_client()


def test_cache_is_cleared_when_the_backend_setting_changes(simnet):
    before = get_lightning_client()
    with override_settings(**simnet.lnd_settings("alice")):
        client = get_lightning_client()
        info = client.get_info()
    after = get_lightning_client()

    assert isinstance(client, LndClient)
    assert info.alias == "alice"
    assert isinstance(after, FakeLightningClient)
    assert after is not before


def test_constructing_the_client_opens_nothing():
    client = LndClient()
    assert (client._sync, client._target) == (None, None)
