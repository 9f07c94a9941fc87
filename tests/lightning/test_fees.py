import pytest

from lightning.fees import routing_fee_cap_sats


@pytest.mark.parametrize(
    ("amount", "cap"),
    [(1, 10), (100, 10), (999, 10), (1_000, 10), (1_001, 2), (5_000, 10), (10_000, 20), (1_000_000, 2_000)],
)
def test_routing_fee_cap(amount, cap):
    assert routing_fee_cap_sats(amount, max_routing_fee=0.002) == cap


def test_small_payments_get_one_percent_once_above_ten_sats():
    assert routing_fee_cap_sats(1_000) == 10
    assert routing_fee_cap_sats(999, max_routing_fee=0.5) == 10


def test_rate_comes_from_settings(settings):
    settings.MOSTRO_MAX_ROUTING_FEE = 0.01
    assert routing_fee_cap_sats(50_000) == 500
