"""Volunteer commands, and the timer that notices a check or training expiring with nobody touching it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone import scrub
from backbone.runtime import Runtime
from backbone.store import Append
from contracts import Event
from contracts.volunteers import (
    VolunteerCapacityChanged,
    VolunteerEligibilityChanged,
    VolunteerRegistered,
    VolunteerScreeningRecorded,
    VolunteerServiceRecorded,
    VolunteerTrainingRecorded,
)
from services.registry import account_handlers, vault
from services.registry import volunteer as domain
from services.registry.enrolment import Enrolment, enrol
from services.registry.records import ImportFingerprint, VolunteerRecord

Decision = Callable[[domain.Volunteer | None, datetime], list[Event]]


async def _load(
    runtime: Runtime, conn: AsyncConnection, volunteer_id: uuid.UUID
) -> tuple[domain.Volunteer | None, int]:
    history = await runtime.store.load(conn, str(volunteer_id))
    state = None
    for recorded in history:
        state = domain.evolve(state, recorded.event())
    return state, len(history)


@dataclass(frozen=True)
class VolunteerRegistration:
    registered: VolunteerRegistered
    availability: str | None
    personal: dict[str, Any]  # name, phone, township, village: sealed with the volunteer's new key
    fingerprint: str | None = None  # set by imports: the same volunteer imported again is skipped


async def register(runtime: Runtime, registration: VolunteerRegistration) -> None:
    await register_volunteers(runtime, [registration])


async def register_volunteers(runtime: Runtime, registrations: Sequence[VolunteerRegistration]) -> set[str]:
    """Register many volunteers in one transaction; returns the fingerprints that were already imported."""
    return await enrol(runtime, VolunteerRecord, registrations, _enter_volunteer)


def _enter_volunteer(enrolment: Enrolment, registration: VolunteerRegistration) -> None:
    registered = registration.registered
    events = domain.register(None, registered, enrolment.now)  # a new id: nothing to load
    sealed = enrolment.add(registered.volunteer_id, events, registration.personal, registration.fingerprint)
    fresh = domain.Volunteer(registered.volunteer_id, registered.county_code)
    enrolment.records.append(
        {
            "id": registered.volunteer_id,
            "kind": registered.kind,
            "county_code": registered.county_code,
            "capacity": registered.capacity,
            "skills": registered.skills,
            "languages": registered.languages,
            "availability": registration.availability,
            "registered_at": enrolment.now,
            "sealed": sealed,
            "version": len(events),
            "screenings": {},
            "trainings": [],
            "eligible": False,
            "ineligible_reasons": [],
            "eligibility_changes_at": None,
            "service_hours": 0.0,
            **_changes(events, fresh, enrolment.now),
        }
    )


async def change(
    runtime: Runtime,
    volunteer_id: uuid.UUID,
    decide: Decision,
    also: Callable[[AsyncConnection], Awaitable[None]] | None = None,
) -> None:
    """Decide, append and update the record in one transaction (with `also`, when a change needs more)."""
    now = runtime.clock.now()
    async with runtime.transaction() as conn:
        state, version = await _load(runtime, conn, volunteer_id)
        events = decide(state, now)
        if not events:
            if state is not None:  # nothing changed, but the next moment to look again may have moved
                await conn.execute(
                    update(VolunteerRecord)
                    .where(VolunteerRecord.id == volunteer_id)
                    .values(eligibility_changes_at=domain.next_change(state, now))
                )
            return
        await runtime.append(conn, Append(str(volunteer_id), version, events))
        current = (await conn.execute(select(VolunteerRecord).where(VolunteerRecord.id == volunteer_id))).one()
        values = _changes(events, state, now, current._mapping)
        await conn.execute(
            update(VolunteerRecord)
            .where(VolunteerRecord.id == volunteer_id)
            .values(version=version + len(events), **values)
        )
        if also is not None:
            await also(conn)


def _changes(events: list[Event], state: domain.Volunteer | None, now: datetime, current: Any = None) -> dict[str, Any]:
    """What the events change in the volunteer's record."""
    screenings = dict(current["screenings"]) if current else {}
    trainings = list(current["trainings"]) if current else []
    values: dict[str, Any] = {}
    for event in events:
        state = domain.evolve(state, event)
        match event:
            case VolunteerScreeningRecorded():
                screenings[event.step] = event.model_dump(mode="json", exclude={"volunteer_id"})
                values["screenings"] = screenings
            case VolunteerTrainingRecorded():
                trainings.append(event.model_dump(mode="json", exclude={"volunteer_id"}))
                values["trainings"] = trainings
            case VolunteerEligibilityChanged():
                values |= {"eligible": event.eligible, "ineligible_reasons": event.reasons}
            case VolunteerCapacityChanged():
                values["capacity"] = event.capacity
            case VolunteerServiceRecorded():
                values["service_hours"] = (current["service_hours"] if current else 0.0) + event.hours
    if state is not None:
        values["eligibility_changes_at"] = domain.next_change(state, now)
    return values


async def reassess_due(runtime: Runtime) -> int:
    """The timer's work: re-assess every volunteer whose pass or training has expired by now."""
    now = runtime.clock.now()
    async with runtime.db.read() as conn:
        due = (
            (
                await conn.execute(
                    select(VolunteerRecord.id).where(VolunteerRecord.eligibility_changes_at <= now).limit(1000)
                )
            )
            .scalars()
            .all()
        )
    for volunteer_id in due:
        await change(runtime, volunteer_id, _reassess)
    return len(due)


def _reassess(state: domain.Volunteer | None, now: datetime) -> list[Event]:
    return list(domain.reassess(state, now)) if state else []


async def erase(runtime: Runtime, volunteer_id: uuid.UUID) -> None:
    """Destroy the volunteer's key: every sealed copy becomes unreadable; they can no longer be paired."""

    async def forget(conn: AsyncConnection) -> None:
        await vault.destroy_key(conn, volunteer_id)
        await conn.execute(delete(ImportFingerprint).where(ImportFingerprint.person_id == volunteer_id))
        await conn.execute(
            update(VolunteerRecord)
            .where(VolunteerRecord.id == volunteer_id)
            .values(sealed=None, availability=None, erased_at=runtime.clock.now())  # free text: may name someone
        )
        await scrub.owe(conn, VolunteerRecord)  # the availability's text, in the old row version
        await account_handlers.close_accounts_of(conn, volunteer_id, runtime.clock.now())

    await change(runtime, volunteer_id, domain.erase, also=forget)
    await scrub.after_erasure(runtime.db)
