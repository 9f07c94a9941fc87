from tests.orders.services.support import fake_ln, node  # noqa: F401 - fixtures
