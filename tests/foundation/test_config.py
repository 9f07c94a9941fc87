import contextlib

import pytest
from django.db import connection, transaction

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


def test_row_values_arrive_as_the_orm_reads_them():
    """The row is read by a query compiled once (`_row_query`); its values still go through the
    ORM's conversions: a boolean is True, not SQLite's 1, a big integer an int."""
    NodeSettings.objects.create(id=1, bond_enabled=True, bond_base_amount_sats=2_500, max_order_amount_sats=7_000_000)
    config = node_config(fresh=True)
    assert (config.bond_enabled, type(config.bond_enabled)) == (True, bool)
    assert (config.bond_base_amount_sats, config.max_order_amount_sats) == (2_500, 7_000_000)
    NodeSettings.objects.filter(pk=1).update(bond_enabled=False)
    assert (node_config(fresh=True).bond_enabled, node_config().bond_enabled) == (False, False)


def test_no_row_table_yet_leaves_the_environment():
    """Before `migrate` (a fresh machine's `manage.py check`) the environment applies alone."""

    class Undo(Exception):
        pass

    fees_read = []
    with contextlib.suppress(Undo), transaction.atomic():  # the rename is rolled back (on PostgreSQL too)
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE mostro_site_nodesettings RENAME TO mostro_site_nodesettings_gone")
        fees_read.append(node_config(fresh=True).fee)
        raise Undo
    assert fees_read == [0.0]
    NodeSettings.objects.create(id=1, fee=0.004)
    assert node_config(fresh=True).fee == 0.004
