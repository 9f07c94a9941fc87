import pytest
from django.contrib.auth.models import Group, User

from mostro_site.config import clear_node_config_cache
from tests.orders.services.support import fake_ln, node  # noqa: F401 - fixtures


@pytest.fixture(autouse=True)
def _fresh_config():
    clear_node_config_cache()
    yield
    clear_node_config_cache()


@pytest.fixture
def operator_user(db):
    user = User.objects.create_user("olga", password="pw", is_staff=True)
    user.groups.add(Group.objects.get_or_create(name="operator")[0])
    return user


@pytest.fixture
def operator_client(client, operator_user):
    client.force_login(operator_user)
    return client
