"""Volunteer commands, and the timer that notices a check or training expiring with nobody touching it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone.runtime import Runtime
from backbone.store import Append
from contracts import Event
from contracts.volunteers import (
    VolunteerEligibilityChanged,
    VolunteerRegistered,
    VolunteerScreeningRecorded,
    VolunteerServiceRecorded,
    VolunteerTrainingRecorded,
)
from services.registry import vault
from services.registry import volunteer as domain
from services.registry.records import VolunteerRecord

Decision = Callable[[domain.Volunteer | None, datetime], list[Event]]


async def _load(
    runtime: Runtime, conn: AsyncConnection, volunteer_id: uuid.UUID
) -> tuple[domain.Volunteer | None, int]:
    history = await runtime.store.load(conn, str(volunteer_id))
    state = None
    for recorded in history:
        state = domain.evolve(state, recorded.event())
    return state, len(history)


async def register(
    runtime: Runtime, registered: VolunteerRegistered, record: dict[str, Any], personal: dict[str, Any]
) -> None:
    now = runtime.clock.now()
    async with runtime.transaction() as conn:
        state, version = await _load(runtime, conn, registered.volunteer_id)
        events = domain.register(state, registered, now)
        key = await vault.create_key(conn, registered.volunteer_id, now)
        sealed = vault.seal(key, registered.volunteer_id, personal)
        await runtime.append(conn, Append(str(registered.volunteer_id), version, events, sealed=[sealed]))
        await conn.execute(
            insert(VolunteerRecord).values(
                id=registered.volunteer_id,
                kind=registered.kind,
                county_code=registered.county_code,
                capacity=registered.capacity,
                skills=registered.skills,
                languages=registered.languages,
                registered_at=now,
                sealed=sealed,
                version=version + len(events),
                **record,
                **_changes(events, domain.Volunteer(registered.volunteer_id, registered.county_code), now),
            )
        )


async def change(runtime: Runtime, volunteer_id: uuid.UUID, decide: Decision) -> None:
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
