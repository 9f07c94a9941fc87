"""`next_created_at`: max(now, previous + 1) per (kind, d), one upsert (nostrbridge.statements.advance_clock)."""

import pytest
from django.db import transaction

from nostrbridge.models import AddressableClock
from nostrbridge.outbox import next_created_at

pytestmark = pytest.mark.django_db


def clocks() -> dict[tuple[int, str], int]:
    return {(row.kind, row.d_tag): row.last_created_at for row in AddressableClock.objects.all()}


def test_first_revision_takes_now_and_later_ones_strictly_increase():
    with transaction.atomic():
        values = [
            next_created_at(kind=38383, d_tag="a", now=1_700_000_000),
            next_created_at(kind=38383, d_tag="a", now=1_700_000_000),  # same second
            next_created_at(kind=38383, d_tag="a", now=1_699_999_990),  # the clock went back
            next_created_at(kind=38383, d_tag="a", now=1_700_000_050),  # later: now wins
        ]

    assert values == [1_700_000_000, 1_700_000_001, 1_700_000_002, 1_700_000_050]
    assert clocks() == {(38383, "a"): 1_700_000_050}


def test_each_kind_and_d_tag_has_its_own_clock():
    with transaction.atomic():
        next_created_at(kind=38383, d_tag="a", now=100)
        next_created_at(kind=38383, d_tag="a", now=100)
        other_d = next_created_at(kind=38383, d_tag="b", now=100)
        other_kind = next_created_at(kind=38386, d_tag="a", now=100)

    assert (other_d, other_kind) == (100, 100)
    assert clocks() == {(38383, "a"): 101, (38383, "b"): 100, (38386, "a"): 100}


def test_an_existing_clock_row_is_continued():
    AddressableClock.objects.create(kind=38383, d_tag="a", last_created_at=500)

    with transaction.atomic():
        value = next_created_at(kind=38383, d_tag="a", now=400)

    assert value == 501
    assert AddressableClock.objects.count() == 1
