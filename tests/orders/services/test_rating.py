"""The rating arithmetic of docs/PROTOCOL.md §Rate-user (the corrected average) and the merge of
an imported attestation (§Import-reputation), in exact floats."""

import pytest

from orders.services.rating import RatingAggregate, rating_apply, reputation_merge

NEW = RatingAggregate(0, 0.0, 0, 0, 0)


@pytest.mark.parametrize(
    ("_case", "start", "vote", "expected"),
    [
        ("first vote counts half", NEW, 5, RatingAggregate(1, 2.5, 5, 5, 5)),
        ("second folds in the vote itself", RatingAggregate(1, 2.5, 5, 5, 5), 3, RatingAggregate(2, 2.75, 3, 5, 3)),
        # §Rate-user: 7 reviews at 4.5 plus a 5 give 4.5625 (the lagged formula, with last rating 4, gave 4.4375).
        ("spec example", RatingAggregate(7, 4.5, 4, 5, 3), 5, RatingAggregate(8, 4.5625, 5, 5, 3)),
        ("repeating fraction", RatingAggregate(2, 4.5, 5, 5, 4), 1, RatingAggregate(3, 3.333333333333333, 1, 5, 1)),
    ],
)
def test_rating_apply(_case, start, vote, expected):
    assert rating_apply(start, vote) == expected


def test_spec_votes_five_three_four():
    """§Rate-user: votes [5, 3, 4] give 3.1667 (the lagged formula gave 3.5)."""
    aggregate = NEW
    for vote in (5, 3, 4):
        aggregate = rating_apply(aggregate, vote)
    assert aggregate == RatingAggregate(3, 3.1666666666666665, 4, 5, 3)


def test_merge_weights_each_origin_by_its_reviews():
    merged = reputation_merge(RatingAggregate(2, 3.5, 4, 4, 3), reviews=214, rating=4.87)
    assert merged == RatingAggregate(216, (3.5 * 2 + 4.87 * 214) / 216, 4, 4, 3)


def test_merge_into_no_reputation_sets_min_max_last_to_the_rounded_rating():
    assert reputation_merge(NEW, reviews=214, rating=4.87) == RatingAggregate(214, 4.87, 5, 5, 5)
    # Rust's round: a half goes away from zero.
    assert reputation_merge(NEW, reviews=5, rating=2.5) == RatingAggregate(5, 2.5, 3, 3, 3)
    assert reputation_merge(NEW, reviews=5, rating=1.49) == RatingAggregate(5, 1.49, 1, 1, 1)
