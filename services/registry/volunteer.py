"""The volunteer aggregate: vetting steps and trainings that expire, and the eligibility they add up to.

Pure: the current time comes in with each decision. A volunteer is eligible while every screening step's latest
result is a pass that has not expired and at least one training is current. Every pass and every training is
recorded with its expiry: one without would keep a volunteer eligible for ever, Art. 62's record query included.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from uuid import UUID

from backbone.clock import PROGRAMME_TIMEZONE, local_date
from contracts import Event
from contracts.volunteers import (
    SCREENING_STEPS,
    ScreeningStep,
    VolunteerCapacityChanged,
    VolunteerEligibilityChanged,
    VolunteerPersonalDataErased,
    VolunteerRegistered,
    VolunteerScreeningRecorded,
    VolunteerTrainingRecorded,
)
from services.registry.domain import DomainError


@dataclass(frozen=True)
class Volunteer:
    volunteer_id: UUID
    county_code: str
    capacity: int = 1
    screenings: dict[ScreeningStep, VolunteerScreeningRecorded] = field(default_factory=dict)
    trainings: tuple[VolunteerTrainingRecorded, ...] = ()
    eligible: bool = False
    reasons: tuple[str, ...] = ()
    erased: bool = False


def _expired(expires_at: date | None, now: datetime) -> bool:
    """A pass or training without an expiry (recorded before one was required) counts as expired, not eternal."""
    return expires_at is None or expires_at <= local_date(now)


def _lapsed(step: str, expires_at: date | None) -> str:
    return f"{step}: expired on {expires_at}" if expires_at else f"{step}: passed without an expiry date"


def assess(volunteer: Volunteer, now: datetime) -> tuple[bool, tuple[str, ...]]:
    """Eligible or not at `now`, with every reason why not."""
    if volunteer.erased:
        return False, ("personal data erased",)
    reasons: list[str] = []
    for step in SCREENING_STEPS:
        latest = volunteer.screenings.get(step)
        if latest is None:
            reasons.append(f"{step}: not done")
        elif latest.result == "failed":
            reasons.append(f"{step}: failed")
        elif _expired(latest.expires_at, now):
            reasons.append(_lapsed(step, latest.expires_at))
    if not any(not _expired(t.expires_at, now) for t in volunteer.trainings):
        reasons.append("training: none current")
    return not reasons, tuple(reasons)


def next_change(volunteer: Volunteer, now: datetime) -> datetime | None:
    """When eligibility could next change by the clock alone (a pass or a training expiring)."""
    dates = [s.expires_at for s in volunteer.screenings.values() if s.expires_at and s.expires_at > local_date(now)]
    dates += [t.expires_at for t in volunteer.trainings if t.expires_at and t.expires_at > local_date(now)]
    return datetime.combine(min(dates), time(), PROGRAMME_TIMEZONE) if dates else None


def reassess(volunteer: Volunteer, now: datetime) -> list[VolunteerEligibilityChanged]:
    eligible, reasons = assess(volunteer, now)
    if (eligible, reasons) == (volunteer.eligible, volunteer.reasons):
        return []
    return [
        VolunteerEligibilityChanged(
            volunteer_id=volunteer.volunteer_id, eligible=eligible, reasons=list(reasons), as_of=now
        )
    ]


def register(state: Volunteer | None, registered: VolunteerRegistered, now: datetime) -> list[Event]:
    if state is not None:
        raise DomainError("already_registered", "the volunteer is already registered")
    return [registered, *reassess(Volunteer(registered.volunteer_id, registered.county_code), now)]


def record(
    state: Volunteer | None, event: VolunteerScreeningRecorded | VolunteerTrainingRecorded, now: datetime
) -> list[Event]:
    if state is None:
        raise DomainError("not_found", "no such volunteer")
    done = event.checked_at if isinstance(event, VolunteerScreeningRecorded) else event.completed_at
    if done > local_date(now):
        raise DomainError("in_future", "a check or training cannot be recorded before it happened")
    if event.expires_at is None and _must_expire(event):
        what = f"a passed {event.step}" if isinstance(event, VolunteerScreeningRecorded) else "a training"
        raise DomainError("expiry_required", f"{what} needs its expiry date (expires_at): until when does it count?")
    if event.expires_at is not None and event.expires_at <= done:
        raise DomainError("expires_before_done", "the expiry date must come after the date it was done")
    return [event, *reassess(_with(state, event), now)]


def _must_expire(event: VolunteerScreeningRecorded | VolunteerTrainingRecorded) -> bool:
    """Every pass (application, interview, the Art. 62 record query, references) and every training: a volunteer
    is vetted again from time to time. A failure needs none: it never makes anyone eligible."""
    return not isinstance(event, VolunteerScreeningRecorded) or event.result == "passed"


def change_capacity(state: Volunteer | None, capacity: int) -> list[Event]:
    """Fewer places never end a pairing: matching refuses new confirmations until the volunteer is below it."""
    if state is None:
        raise DomainError("not_found", "no such volunteer")
    if state.erased:
        raise DomainError("erased", "the volunteer's personal data was erased; they take no more children")
    return (
        []
        if capacity == state.capacity
        else [VolunteerCapacityChanged(volunteer_id=state.volunteer_id, capacity=capacity)]
    )


def erase(state: Volunteer | None, now: datetime) -> list[Event]:
    """Erasing ends the vetting too: nobody can be paired with a volunteer the programme no longer knows."""
    if state is None:
        raise DomainError("not_found", "no such volunteer")
    if state.erased:
        return []
    return [VolunteerPersonalDataErased(volunteer_id=state.volunteer_id), *reassess(replace(state, erased=True), now)]


def evolve(state: Volunteer | None, event: Event) -> Volunteer | None:
    if isinstance(event, VolunteerRegistered):
        return Volunteer(event.volunteer_id, event.county_code, event.capacity)
    return None if state is None else _with(state, event)


def _with(state: Volunteer, event: Event) -> Volunteer:
    match event:
        case VolunteerScreeningRecorded():
            return replace(state, screenings={**state.screenings, event.step: event})
        case VolunteerTrainingRecorded():
            return replace(state, trainings=(*state.trainings, event))
        case VolunteerEligibilityChanged():
            return replace(state, eligible=event.eligible, reasons=tuple(event.reasons))
        case VolunteerPersonalDataErased():
            return replace(state, erased=True)
        case VolunteerCapacityChanged():
            return replace(state, capacity=event.capacity)
    return state
