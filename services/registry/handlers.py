"""One handler per command: load the aggregate, decide in the domain, append and record in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone import context, scrub
from backbone.batching import GroupCommit
from backbone.runtime import Runtime
from backbone.store import Append, ConcurrencyConflict
from contracts import Event
from contracts.registry import (
    ChildGuardianshipChanged,
    ChildLeftProgramme,
    ChildNeedsChanged,
    ChildRiskChanged,
    GuardianConsentRecorded,
    GuardianConsentWithdrawn,
)
from contracts.vocabulary import CONSENT_AGE
from services.registry import domain, vault
from services.registry.enrolment import Enrolment, enrol
from services.registry.records import ChildRecord, ImportFingerprint

Decision = Callable[[domain.Child | None], Sequence[Event]]


async def _child(runtime: Runtime, conn: AsyncConnection, child_id: uuid.UUID) -> tuple[domain.Child | None, int]:
    history = await runtime.store.load(conn, str(child_id))
    state = None
    for recorded in history:
        state = domain.evolve(state, recorded.event())
    return state, len(history)


@dataclass(frozen=True)
class Registration:
    command: domain.RegisterChild
    personal: dict[str, Any]
    fingerprint: str | None = None  # set by imports: the same child imported again is skipped
    causes: context.Causes | None = None  # the request's, when it is written with others'


async def register_child(runtime: Runtime, command: domain.RegisterChild, personal: dict[str, Any]) -> None:
    """`personal` (name, ID number, birth date, places, guardian) is sealed with the child's new key. Registrations
    that arrive together are written in one transaction (backbone.batching), each with its request's causes."""
    group = _registering.get(runtime)
    if group is None:
        group = _registering[runtime] = GroupCommit(partial(_register_together, runtime))
    await group(Registration(command, personal, causes=context.current()))


async def _register_together(runtime: Runtime, registrations: Sequence[Registration]) -> list[None]:
    await register_children(runtime, registrations)
    return [None] * len(registrations)


_registering: WeakKeyDictionary[Runtime, GroupCommit[Registration, None]] = WeakKeyDictionary()


async def register_children(runtime: Runtime, registrations: Sequence[Registration]) -> set[str]:
    """Register many children in one transaction; returns the fingerprints that were already imported."""
    return await enrol(runtime, ChildRecord, registrations, _enter_child)


def _enter_child(enrolment: Enrolment, registration: Registration) -> None:
    command = registration.command
    (registered,) = domain.register_child(None, command)  # a new id: nothing to load
    age = domain.age_on(command.birth_date, command.today)
    state = domain.evolve(None, registered)
    events: list[Event] = [registered, *domain.reassess(state, age)]
    for event in events[1:]:
        state = domain.evolve(state, event)
    sealed = enrolment.add(
        command.child_id, events, registration.personal, registration.fingerprint, registration.causes
    )
    enrolment.records.append(
        {
            "id": command.child_id,
            "gender": command.gender,
            "county_code": command.county_code,
            "category": command.category,
            "risk_level": command.risk_level,
            "guardianship": command.guardianship,
            "age_band": registered.age_band,
            "needs": registered.needs,
            "languages": registered.languages,
            "flags": registered.flags,
            "registered_at": enrolment.now,
            "sealed": sealed,
            "version": len(events),
            "status": "active",
            **_eligibility(state, age),
        }
    )


async def change_child(
    runtime: Runtime,
    child_id: uuid.UUID,
    decisions: Sequence[Decision],
    *,
    expected_version: int | None = None,
    note: dict[str, Any] | None = None,
    updates: dict[str, Any] | None = None,
) -> bool:
    """Decide one or several changes against the same version, and append them together.

    `note` is the change's own personal part (a reason, who consented), sealed into its first event;
    `updates` changes the child's current personal fields. Eligibility for pairing and the purposes the
    child's data may be processed for are re-assessed every time.
    Returns whether anything changed.
    """
    async with runtime.transaction() as conn:
        state, version = await _child(runtime, conn, child_id)
        if expected_version is not None and expected_version != version:
            raise ConcurrencyConflict(str(child_id), expected_version, version)
        events: list[Event] = []
        for decide in decisions:
            new = decide(state)
            for event in new:
                state = domain.evolve(state, event)
            events += new
        key = await vault.key_of(conn, child_id)
        current = (await conn.execute(select(ChildRecord.sealed).where(ChildRecord.id == child_id))).one()
        personal = vault.unseal(key, child_id, current.sealed) or {}
        age = _age(personal, runtime.today())
        for event in domain.reassess(state, age):
            state = domain.evolve(state, event)
            events.append(event)
        if not events:  # nothing to append, but which birthdays to watch for may have changed
            await conn.execute(update(ChildRecord).where(ChildRecord.id == child_id).values(**_eligibility(state, age)))
            return False
        changes: dict[str, Any] = {"version": version + len(events)}
        for event in events:
            changes |= _record_change(event)
        changes |= _eligibility(state, age)
        sealed: list[bytes | None] = [None]
        if note or updates:
            if key is None:
                raise domain.DomainError("personal_data_erased", "the child's personal data was erased")
            if note:
                sealed[0] = vault.seal(key, child_id, note)
            if updates:
                changes["sealed"] = vault.seal(key, child_id, personal | updates)
        await runtime.append(conn, Append(str(child_id), version, events, sealed=sealed))
        await conn.execute(update(ChildRecord).where(ChildRecord.id == child_id).values(**changes))
    return True


def _age(personal: dict[str, Any], today: date) -> int | None:
    return domain.age_on(date.fromisoformat(personal["birth_date"]), today) if "birth_date" in personal else None


def _eligibility(state: domain.Child | None, age: int | None) -> dict[str, Any]:
    """The record's eligibility and purposes columns, from the state after the events."""
    if state is None:
        return {}
    return {
        "eligible_for_pairing": state.eligible,
        "ineligible_reasons": list(state.reasons),
        "allowed_purposes": list(state.purposes),
        # the 14th and 18th birthdays change eligibility and purposes: the timer watches children before their 18th
        "watch_birthdays": age is not None and age < domain.ADULT_AGE and not state.left and not state.erased,
    }


def _record_change(event: Event) -> dict[str, Any]:
    match event:
        case ChildRiskChanged(risk_level=risk_level):
            return {"risk_level": risk_level}
        case ChildNeedsChanged(needs=needs):
            return {"needs": needs}
        case ChildGuardianshipChanged(guardianship=guardianship):
            return {"guardianship": guardianship}
        case ChildLeftProgramme(reason=reason):
            return {"status": "left", "left_reason": reason}
        case GuardianConsentRecorded(scope=scope):
            return {"consent_scope": scope}
        case GuardianConsentWithdrawn():
            return {"consent_scope": None}
    return {}


async def erase_personal_data(runtime: Runtime, child_id: uuid.UUID) -> bool:
    """Destroy the child's key: every sealed copy becomes unreadable. True if this call erased anything."""
    async with runtime.transaction() as conn:
        state, version = await _child(runtime, conn, child_id)
        events: list[Event] = list(domain.erase_personal_data(state))
        if not events:
            return False
        for event in events:
            state = domain.evolve(state, event)
        events += domain.reassess(state, age=None)
        await vault.destroy_key(conn, child_id)
        await conn.execute(delete(ImportFingerprint).where(ImportFingerprint.person_id == child_id))
        await conn.execute(
            update(ChildRecord)
            .where(ChildRecord.id == child_id)
            .values(
                sealed=None, erased_at=runtime.clock.now(), version=version + len(events), **_eligibility(state, False)
            )
        )
        await runtime.append(conn, Append(str(child_id), version, events))
    await scrub.after_erasure(runtime.db)
    return True


async def children_with_birthdays(runtime: Runtime) -> int:
    """The timer's work: at 14 a child needs no guardian's consent to be paired, nor for any other purpose; at 18
    the programme ends."""
    today = runtime.today()
    async with runtime.db.read() as conn:
        waiting = (
            await conn.execute(
                select(
                    ChildRecord.id, ChildRecord.sealed, ChildRecord.eligible_for_pairing, ChildRecord.allowed_purposes
                ).where(ChildRecord.watch_birthdays.is_(True))
            )
        ).all()
        keys = await vault.keys_of(conn, [row.id for row in waiting])
    due = []
    for row in waiting:
        personal = vault.unseal(keys.get(row.id), row.id, row.sealed) or {}
        age = _age(personal, today)
        if age is not None and (age >= domain.ADULT_AGE or (age >= CONSENT_AGE and _still_under_consent(row))):
            due.append(row.id)
    for child_id in due:
        await change_child(runtime, child_id, [])
    return len(due)


def _still_under_consent(row: Row[Any]) -> bool:
    """A child of 14 whose record still shows what a guardian's consent (or its absence) allowed before that."""
    return not row.eligible_for_pairing or tuple(sorted(row.allowed_purposes or ())) != domain.PURPOSES
