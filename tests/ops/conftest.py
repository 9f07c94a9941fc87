from tests.lightning.simnet_fixture import simnet  # noqa: F401 - session fixture
from tests.orders.services.support import fake_ln, node  # noqa: F401 - fixtures
