import pytest

from orders.services.amounts import (
    buyer_payout_sats,
    dev_fee_sats,
    fee_sats,
    range_remainder,
    seller_escrow_sats,
)


@pytest.mark.parametrize(
    ("amount", "rate", "expected"),
    [
        (100_000, 0.006, 300),
        (7_851, 0.006, 24),  # 23.553 -> 24
        (1_000, 0.001, 1),  # 0.5 rounds away from zero
        (3_000, 0.001, 2),  # 1.5 -> 2
        (999, 0.0, 0),
        (1_000_000, 1.0, 500_000),
    ],
)
def test_fee_is_half_of_the_rate_rounded_half_away(amount, rate, expected):
    assert fee_sats(amount_sats=amount, fee_rate=rate) == expected


@pytest.mark.parametrize(
    ("fee", "pct", "expected"),
    [(300, 0.30, 180), (24, 0.30, 14), (1, 0.10, 0), (5, 0.25, 3), (300, 1.0, 600)],
)
def test_dev_fee_is_a_share_of_both_fees(fee, pct, expected):
    assert dev_fee_sats(fee_sats=fee, dev_fee_percentage=pct) == expected


def test_escrow_and_payout_split():
    assert seller_escrow_sats(amount_sats=100_000, fee_sats=300) == 100_300
    assert buyer_payout_sats(amount_sats=100_000, fee_sats=300) == 99_700


@pytest.mark.parametrize(
    ("min_fiat", "max_fiat", "taken", "expected"),
    [(10, 100, 30, (10, 70)), (10, 100, 90, (10, 10)), (10, 100, 95, None), (10, 100, 100, None)],
)
def test_range_remainder(min_fiat, max_fiat, taken, expected):
    assert range_remainder(min_fiat=min_fiat, max_fiat=max_fiat, taken_fiat=taken) == expected
