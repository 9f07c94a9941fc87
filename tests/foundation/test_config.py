import pytest

from mostro_site.config import clear_node_config_cache, node_config
from mostro_site.models import NodeSettings

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh():
    clear_node_config_cache()
    yield
    clear_node_config_cache()


def test_defaults_equal_mostro_defaults():
    config = node_config(fresh=True)
    assert (config.fee, config.max_routing_fee, config.max_order_amount_sats, config.min_payment_amount_sats) == (
        0.0,
        0.002,
        1_000_000,
        100,
    )
    assert (config.expiration_hours, config.expiration_seconds, config.pow_bits, config.dev_fee_percentage) == (
        24,
        900,
        0,
        0.30,
    )
    assert config.fiat_currencies_accepted == ("USD", "EUR", "ARS", "CUP")
    assert config.protocol_version == 2
    assert config.dev_fee_lightning_address == "pivotaldeborah52@walletofsatoshi.com"
    assert (config.payment_attempts, config.payment_retries_interval, config.hold_invoice_cltv_delta) == (3, 60, 144)


def test_row_overrides_environment_live():
    NodeSettings.objects.create(id=1, fee=0.006, fiat_currencies_accepted="", relays="wss://a, wss://b")
    config = node_config(fresh=True)
    assert config.fee == 0.006
    assert config.fiat_currencies_accepted == ()
    assert config.relays == ("wss://a", "wss://b")
    assert config.max_order_amount_sats == 1_000_000
