from tests.orders.services.support import fake_ln, lnurl_server, node  # noqa: F401 - fixtures
