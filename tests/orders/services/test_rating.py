"""The rating arithmetic of docs/PROTOCOL.md §Rate-user, with its one-step lag, in exact floats."""

import pytest

from orders.services.rating import RatingAggregate, rating_apply

NEW = RatingAggregate(0, 0.0, 0, 0, 0)


@pytest.mark.parametrize(
    ("_case", "start", "vote", "expected"),
    [
        ("first vote counts half", NEW, 5, RatingAggregate(1, 2.5, 5, 5, 5)),
        (
            "second folds in the previous last rating",
            RatingAggregate(1, 2.5, 5, 5, 5),
            3,
            RatingAggregate(2, 3.75, 3, 5, 3),
        ),
        ("spec example", RatingAggregate(7, 4.5, 4, 5, 3), 5, RatingAggregate(8, 4.4375, 5, 5, 3)),
        ("repeating fraction", RatingAggregate(2, 4.5, 5, 5, 4), 1, RatingAggregate(3, 4.666666666666667, 1, 5, 1)),
    ],
)
def test_rating_apply(_case, start, vote, expected):
    assert rating_apply(start, vote) == expected
