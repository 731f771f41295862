"""What donors see of the figures: counts from 1 to 4 as "<5", and nothing that lets one work such a count out."""

from __future__ import annotations

from decimal import Decimal

from services.matching.summary import suppressed


def test_a_small_count_is_shown_as_under_five_and_zero_and_larger_ones_stay() -> None:
    assert suppressed({"children": 0, "visits": 3, "children_paired": 5}) == {
        "children": 0,
        "visits": "<5",
        "children_paired": 5,
    }


def test_a_lone_small_cell_of_a_breakdown_takes_the_next_smallest_with_it() -> None:
    shown = suppressed({"children": 21, "children_by_category": {"orphan": 3, "left_behind": 12, "in_difficulty": 6}})

    assert shown == {"children": 21, "children_by_category": {"orphan": "<5", "left_behind": 12, "in_difficulty": "x"}}


def test_two_small_cells_hide_each_other() -> None:
    shown = suppressed({"children_by_risk": {"high": 2, "medium": 1, "low": 30}})

    assert shown == {"children_by_risk": {"high": "<5", "medium": "<5", "low": 30}}


def test_the_wishes_that_add_up_to_those_posted_are_protected_the_same_way() -> None:
    wishes = {"posted": 18, "on_board": 2, "claimed": 6, "fulfilled": 10, "thanked": 1}

    assert suppressed({"wishes": wishes}) == {
        "wishes": {"posted": 18, "on_board": "<5", "claimed": "x", "fulfilled": 10, "thanked": "<5"}
    }


def test_the_yuan_of_aid_to_fewer_than_five_children_is_hidden() -> None:
    aid = {
        "warm_pack": {"children": 3, "quantity": 3, "value_yuan": Decimal("1090.92")},
        "allowance": {"children": 40, "quantity": 40, "value_yuan": Decimal("20000")},
    }

    assert suppressed({"aid": aid}) == {
        "aid": {
            "warm_pack": {"children": "<5", "quantity": "<5", "value_yuan": None},
            "allowance": {"children": 40, "quantity": 40, "value_yuan": Decimal("20000")},
        }
    }


def test_visitors_are_counted_as_people_children_and_visits_eachsuppressed() -> None:
    visitors = {"cadre": {"people": 3, "children": 20, "visits": 20}}

    assert suppressed({"visitors": visitors}) == {"visitors": {"cadre": {"people": "<5", "children": 20, "visits": 20}}}
