"""The child aggregate: pure decisions and state, no I/O, no clock, no ids made here."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from uuid import UUID

from contracts.registry import ChildPersonalDataErased, ChildRegistered
from contracts.vocabulary import Category, Flag, Gender, Guardianship, Language, Need, RiskLevel, age_band


class DomainError(ValueError):
    """A command the programme's rules refuse; `code` is what the API reports."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Child:
    child_id: UUID
    county_code: str
    risk_level: RiskLevel
    erased: bool = False


@dataclass(frozen=True)
class RegisterChild:
    child_id: UUID
    county_code: str
    category: Category
    gender: Gender
    risk_level: RiskLevel
    guardianship: Guardianship
    birth_date: date
    today: date
    needs: tuple[Need, ...] = ()
    languages: tuple[Language, ...] = ()
    flags: tuple[Flag, ...] = ()


def age_on(birth_date: date, today: date) -> int:
    return today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))


def register_child(state: Child | None, command: RegisterChild) -> list[ChildRegistered]:
    if state is not None:
        raise DomainError("already_registered", f"child {command.child_id} is already registered")
    if command.birth_date > command.today:
        raise DomainError("birth_date_in_future", "the birth date lies in the future")
    age = age_on(command.birth_date, command.today)
    if age > 17:
        raise DomainError("not_a_minor", f"a child of {age} is not a minor; the programme serves under-18s")
    return [
        ChildRegistered(
            child_id=command.child_id,
            county_code=command.county_code,
            category=command.category,
            risk_level=command.risk_level,
            age_band=age_band(age),
            needs=sorted(set(command.needs)),
            languages=sorted(set(command.languages)),
            flags=sorted(set(command.flags)),
            guardianship=command.guardianship,
        )
    ]


def erase_personal_data(state: Child | None) -> list[ChildPersonalDataErased]:
    """Erasure is final and idempotent: a second request decides nothing new."""
    if state is None:
        raise DomainError("not_found", "no such child")
    return [] if state.erased else [ChildPersonalDataErased(child_id=state.child_id)]


def evolve(state: Child | None, event: object) -> Child | None:
    if isinstance(event, ChildRegistered):
        return Child(event.child_id, event.county_code, event.risk_level)
    if isinstance(event, ChildPersonalDataErased) and state is not None:
        return replace(state, erased=True)
    return state
