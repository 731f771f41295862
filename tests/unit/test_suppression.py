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


def test_a_small_cell_of_a_breakdown_takes_the_next_smallest_with_it() -> None:
    shown = suppressed({"children": 21, "children_by_category": {"orphan": 3, "left_behind": 12, "in_difficulty": 6}})

    assert shown == {"children": 21, "children_by_category": {"orphan": "<5", "left_behind": 12, "in_difficulty": "x"}}


def test_two_small_cells_are_not_left_to_be_worked_out_from_the_total() -> None:
    shown = suppressed({"children": 32, "children_by_risk": {"high": 1, "medium": 1, "low": 30}})

    # 32 - 30 would say both are exactly 1: the 30 is hidden too, and 32 - ? says nothing
    assert shown == {"children": 32, "children_by_risk": {"high": "<5", "medium": "<5", "low": "x"}}


def test_the_wishes_that_add_up_to_those_posted_are_protected_the_same_way() -> None:
    wishes = {"posted": 18, "on_board": 2, "claimed": 6, "fulfilled": 10, "thanked": 1}

    assert suppressed({"wishes": wishes}) == {
        "wishes": {"posted": 18, "on_board": "<5", "claimed": "x", "fulfilled": 10, "thanked": "<5"}
    }


def test_the_visits_of_each_kind_of_visitor_add_up_to_the_visits_and_are_protected_too() -> None:
    visitors = {
        "volunteer": {"people": 40, "children": 60, "visits": 117},
        "cadre": {"people": 3, "children": 3, "visits": 3},
    }

    shown = suppressed({"visits": 120, "visitors": visitors})

    assert shown["visits"] == 120
    assert shown["visitors"]["cadre"] == {"people": "<5", "children": "<5", "visits": "<5"}
    assert shown["visitors"]["volunteer"]["visits"] == "x"  # else 120 - 117 = 3 cadre visits


def test_caring_parents_are_hidden_when_the_other_active_volunteers_are_few() -> None:
    shown = suppressed({"volunteers_active": 120, "caring_parents_active": 117})

    assert shown == {"volunteers_active": 120, "caring_parents_active": "x"}  # else 3 others
    assert suppressed({"volunteers_active": 120, "caring_parents_active": 100})["caring_parents_active"] == 100


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
