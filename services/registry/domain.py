"""The child aggregate: pure decisions and state, no I/O, no clock, no ids made here."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import get_args
from uuid import UUID

from contracts.registry import (
    ChildGuardianshipChanged,
    ChildLeftProgramme,
    ChildNeedsChanged,
    ChildPairingEligibilityChanged,
    ChildPersonalDataErased,
    ChildPurposesChanged,
    ChildRegistered,
    ChildRiskChanged,
    GuardianConsentRecorded,
    GuardianConsentWithdrawn,
)
from contracts.vocabulary import (
    CONSENT_AGE,
    Category,
    ConsentScope,
    Flag,
    Gender,
    Guardianship,
    Language,
    LeavingReason,
    Need,
    RiskLevel,
    age_band,
)

ADULT_AGE = 18
PURPOSES: tuple[ConsentScope, ...] = tuple(sorted(get_args(ConsentScope)))


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
    guardianship: Guardianship | None = None
    needs: tuple[Need, ...] = ()
    left: bool = False
    consent: tuple[ConsentScope, ...] | None = None
    erased: bool = False
    eligible: bool = False
    reasons: tuple[str, ...] = ()
    purposes: tuple[ConsentScope, ...] = ()  # as last published: none until the registry says otherwise


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
    township_key: str | None = None
    village_key: str | None = None


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
            township_key=command.township_key,
            village_key=command.village_key,
            gender=command.gender,
        )
    ]


def _active(state: Child | None) -> Child:
    if state is None:
        raise DomainError("not_found", "no such child")
    if state.left:
        raise DomainError("left_programme", "the child has left the programme")
    return state


def change_risk(state: Child | None, risk_level: RiskLevel) -> list[ChildRiskChanged]:
    child = _active(state)
    if risk_level == child.risk_level:
        return []
    return [
        ChildRiskChanged(
            child_id=child.child_id,
            county_code=child.county_code,
            previous_risk_level=child.risk_level,
            risk_level=risk_level,
        )
    ]


def change_needs(state: Child | None, needs: tuple[Need, ...]) -> list[ChildNeedsChanged]:
    child = _active(state)
    wanted = sorted(set(needs))
    return [] if wanted == sorted(child.needs) else [ChildNeedsChanged(child_id=child.child_id, needs=wanted)]


def change_guardianship(
    state: Child | None, guardianship: Guardianship, *, guardian_changed: bool
) -> list[ChildGuardianshipChanged]:
    """A new guardian with the same kind of guardianship (another relative) is a change too."""
    child = _active(state)
    if guardianship == child.guardianship and not guardian_changed:
        return []
    return [ChildGuardianshipChanged(child_id=child.child_id, guardianship=guardianship)]


def leave_programme(state: Child | None, reason: LeavingReason) -> list[ChildLeftProgramme]:
    child = _active(state)
    return [ChildLeftProgramme(child_id=child.child_id, reason=reason)]


def record_consent(state: Child | None, scope: tuple[ConsentScope, ...]) -> list[GuardianConsentRecorded]:
    child = _active(state)
    if not scope:
        raise DomainError("empty_consent", "a consent names at least one purpose")
    return [GuardianConsentRecorded(child_id=child.child_id, scope=sorted(set(scope)))]


def withdraw_consent(state: Child | None) -> list[GuardianConsentWithdrawn]:
    if state is None:
        raise DomainError("not_found", "no such child")
    if state.consent is None:
        raise DomainError("no_consent", "there is no consent to withdraw")
    return [GuardianConsentWithdrawn(child_id=state.child_id)]


def assess(child: Child, age: int | None) -> tuple[bool, tuple[str, ...]]:
    """May the child be proposed a volunteer? Under 14 only with a guardian's consent to pairing; not from 18.
    `age` is None once the birth date is erased."""
    reasons = []
    if child.left:
        reasons.append("left the programme")
    if child.erased:
        reasons.append("personal data erased")
    if age is not None and age < CONSENT_AGE and "pairing" not in (child.consent or ()):
        reasons.append(f"under {CONSENT_AGE}: no guardian consent to pairing")
    if age is not None and age >= ADULT_AGE:
        reasons.append(f"aged {ADULT_AGE} or over")
    return not reasons, tuple(reasons)


def purposes(child: Child, age: int | None) -> tuple[ConsentScope, ...]:
    """What the child's data may be processed for beyond the minimum record: everything from 14 (the child decides
    then), under 14 only what a guardian consented to, nothing once the personal data is erased."""
    if child.erased or age is None:
        return ()
    if age >= CONSENT_AGE:
        return PURPOSES
    return tuple(sorted(child.consent or ()))


def reassess(state: Child | None, age: int | None) -> list[ChildPairingEligibilityChanged | ChildPurposesChanged]:
    """What a change, or only the clock, did to the child's eligibility for pairing and allowed purposes."""
    if state is None:
        return []
    events: list[ChildPairingEligibilityChanged | ChildPurposesChanged] = []
    eligible, reasons = assess(state, age)
    if (eligible, reasons) != (state.eligible, state.reasons):
        events.append(ChildPairingEligibilityChanged(child_id=state.child_id, eligible=eligible, reasons=list(reasons)))
    if (allowed := purposes(state, age)) != state.purposes:
        events.append(ChildPurposesChanged(child_id=state.child_id, allowed=list(allowed)))
    return events


def erase_personal_data(state: Child | None) -> list[ChildPersonalDataErased]:
    """Erasure is final and idempotent: a second request decides nothing new."""
    if state is None:
        raise DomainError("not_found", "no such child")
    return [] if state.erased else [ChildPersonalDataErased(child_id=state.child_id)]


def evolve(state: Child | None, event: object) -> Child | None:
    if isinstance(event, ChildRegistered):
        return Child(event.child_id, event.county_code, event.risk_level, event.guardianship, tuple(event.needs))
    if state is None:
        return None
    match event:
        case ChildRiskChanged(risk_level=risk_level):
            return replace(state, risk_level=risk_level)
        case ChildNeedsChanged(needs=needs):
            return replace(state, needs=tuple(needs))
        case ChildGuardianshipChanged(guardianship=guardianship):
            return replace(state, guardianship=guardianship)
        case ChildLeftProgramme():
            return replace(state, left=True)
        case GuardianConsentRecorded(scope=scope):
            return replace(state, consent=tuple(scope))
        case GuardianConsentWithdrawn():
            return replace(state, consent=None)
        case ChildPersonalDataErased():
            return replace(state, erased=True)
        case ChildPairingEligibilityChanged(eligible=eligible, reasons=reasons):
            return replace(state, eligible=eligible, reasons=tuple(reasons))
        case ChildPurposesChanged(allowed=allowed):
            return replace(state, purposes=tuple(allowed))
    return state
