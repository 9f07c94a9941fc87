import pytest

from lightning.fake import FakeLightningClient
from tests.lightning.simnet_fixture import simnet  # noqa: F401 - re-exported fixture


@pytest.fixture
def fake_client() -> FakeLightningClient:
    return FakeLightningClient()


@pytest.fixture
def nodes(simnet):  # noqa: F811
    """(mostro, alice, bob) LndClients; every node back online afterwards."""
    yield simnet.client("mostro"), simnet.client("alice"), simnet.client("bob")
    for name in ("mostro", "alice", "bob"):
        simnet.control.set_online(name, True)
