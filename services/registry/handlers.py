"""One handler per command: load the aggregate, decide in the domain, append and record in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

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
from services.registry import domain, vault
from services.registry.fingerprints import already_imported
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


async def register_child(runtime: Runtime, command: domain.RegisterChild, personal: dict[str, Any]) -> None:
    """`personal` (name, ID number, birth date, places, guardian) is sealed with the child's new key."""
    await register_children(runtime, [Registration(command, personal)])


async def register_children(runtime: Runtime, registrations: Sequence[Registration]) -> set[str]:
    """Register many children in one transaction; returns the fingerprints that were already imported."""
    now = runtime.clock.now()
    async with runtime.transaction() as conn:
        known = await already_imported(conn, [r.fingerprint for r in registrations if r.fingerprint])
        appends, keys, records, fingerprints = [], [], [], []
        for registration in registrations:
            if registration.fingerprint in known:
                continue
            command = registration.command
            (registered,) = domain.register_child(None, command)  # a new id: nothing to load
            key = vault.new_key()
            sealed = vault.seal(key, command.child_id, registration.personal)
            keys.append({"person_id": command.child_id, "key": key, "created_at": now})
            appends.append(Append(str(command.child_id), 0, [registered], sealed=[sealed]))
            records.append(
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
                    "registered_at": now,
                    "sealed": sealed,
                    "version": 1,
                    "status": "active",
                }
            )
            if registration.fingerprint:
                fingerprints.append({"fingerprint": registration.fingerprint, "person_id": command.child_id})
        if appends:
            await conn.execute(insert(vault.PersonKey), keys)
            await runtime.append(conn, *appends)
            await conn.execute(insert(ChildRecord), records)
        if fingerprints:
            await conn.execute(insert(ImportFingerprint), fingerprints)
    return known


async def change_child(
    runtime: Runtime,
    child_id: uuid.UUID,
    decisions: Sequence[Decision],
    *,
    expected_version: int | None = None,
    note: dict[str, Any] | None = None,
    personal: dict[str, Any] | None = None,
) -> bool:
    """Decide one or several changes against the same version, and append them together.

    `note` is the change's own personal part (a reason, who consented), sealed into its first event;
    `personal` updates the child's current personal fields. Returns whether anything changed.
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
        if not events:
            return False
        changes: dict[str, Any] = {"version": version + len(events)}
        for event in events:
            changes |= _record_change(event)
        sealed: list[bytes | None] = [None]
        if note or personal:
            key = await vault.key_of(conn, child_id)
            if key is None:
                raise domain.DomainError("personal_data_erased", "the child's personal data was erased")
            if note:
                sealed[0] = vault.seal(key, child_id, note)
            if personal:
                record = (await conn.execute(select(ChildRecord.sealed).where(ChildRecord.id == child_id))).one()
                current = vault.unseal(key, child_id, record.sealed) or {}
                changes["sealed"] = vault.seal(key, child_id, current | personal)
        await runtime.append(conn, Append(str(child_id), version, events, sealed=sealed))
        await conn.execute(update(ChildRecord).where(ChildRecord.id == child_id).values(**changes))
    return True


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
        events = domain.erase_personal_data(state)
        if not events:
            return False
        await vault.destroy_key(conn, child_id)
        await conn.execute(delete(ImportFingerprint).where(ImportFingerprint.person_id == child_id))
        await conn.execute(
            update(ChildRecord)
            .where(ChildRecord.id == child_id)
            .values(sealed=None, erased_at=runtime.clock.now(), version=version + 1)
        )
        await runtime.append(conn, Append(str(child_id), version, events))
    async with runtime.db.engine.connect() as conn:
        await vault.scrub(conn)
    return True
