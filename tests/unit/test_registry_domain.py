"""The child aggregate's decisions: pure, no I/O."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from contracts.registry import ChildRegistered
from services.registry.domain import (
    DomainError,
    RegisterChild,
    age_on,
    erase_personal_data,
    evolve,
    register_child,
)

TODAY = date(2023, 1, 10)


def command(**change: object) -> RegisterChild:
    fields: dict[str, object] = {
        "child_id": uuid.UUID(int=1),
        "county_code": "450325",
        "category": "left_behind",
        "gender": "female",
        "risk_level": "high",
        "guardianship": "grandparents",
        "birth_date": date(2014, 1, 11),
        "today": TODAY,
        "needs": ("tutoring", "tutoring"),
        "languages": ("zh",),
    }
    return RegisterChild(**(fields | change))  # type: ignore[arg-type]


def test_registration_carries_an_age_band_not_the_birth_date() -> None:
    (event,) = register_child(None, command())
    assert isinstance(event, ChildRegistered)
    assert event.age_band == "6-8"  # 8 years old: the day before the ninth birthday
    assert event.needs == ["tutoring"]
    assert "birth_date" not in event.model_dump()


@pytest.mark.parametrize(
    ("born", "age"), [(date(2014, 1, 10), 9), (date(2014, 1, 11), 8), (date(2005, 1, 11), 17), (date(2023, 1, 10), 0)]
)
def test_age_counts_whole_years(born: date, age: int) -> None:
    assert age_on(born, TODAY) == age


@pytest.mark.parametrize(
    ("change", "code"),
    [({"birth_date": date(2023, 1, 11)}, "birth_date_in_future"), ({"birth_date": date(2005, 1, 10)}, "not_a_minor")],
)
def test_registration_refuses_what_the_programme_cannot_serve(change: dict[str, object], code: str) -> None:
    with pytest.raises(DomainError) as refused:
        register_child(None, command(**change))
    assert refused.value.code == code


def test_a_child_is_registered_only_once() -> None:
    state = evolve(None, register_child(None, command())[0])
    with pytest.raises(DomainError) as refused:
        register_child(state, command())
    assert refused.value.code == "already_registered"


def test_erasure_is_decided_once() -> None:
    state = evolve(None, register_child(None, command())[0])
    (erased,) = erase_personal_data(state)
    assert erase_personal_data(evolve(state, erased)) == []
    with pytest.raises(DomainError):
        erase_personal_data(None)
