"""One handler per command: load the aggregate, decide in the domain, append and record in one transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone.runtime import Runtime
from backbone.store import Append
from services.registry import domain, vault
from services.registry.records import ChildRecord


async def _child(runtime: Runtime, conn: AsyncConnection, child_id: uuid.UUID) -> tuple[domain.Child | None, int]:
    history = await runtime.store.load(conn, str(child_id))
    state = None
    for recorded in history:
        state = domain.evolve(state, recorded.event())
    return state, len(history)


async def register_child(runtime: Runtime, command: domain.RegisterChild, personal: dict[str, Any]) -> None:
    """`personal` (name, birth date, places) is sealed with the child's new key, in the event and the record."""
    now = runtime.clock.now()
    async with runtime.transaction() as conn:
        state, version = await _child(runtime, conn, command.child_id)
        events = domain.register_child(state, command)
        key = await vault.create_key(conn, command.child_id, now)
        sealed = vault.seal(key, command.child_id, personal)
        await runtime.append(conn, Append(str(command.child_id), version, events, sealed=[sealed]))
        (registered,) = events
        await conn.execute(
            insert(ChildRecord).values(
                id=command.child_id,
                gender=command.gender,
                county_code=command.county_code,
                category=command.category,
                risk_level=command.risk_level,
                guardianship=command.guardianship,
                age_band=registered.age_band,
                needs=registered.needs,
                languages=registered.languages,
                flags=registered.flags,
                registered_at=now,
                sealed=sealed,
            )
        )


async def erase_personal_data(runtime: Runtime, child_id: uuid.UUID) -> bool:
    """Destroy the child's key: every sealed copy becomes unreadable. True if this call erased anything."""
    async with runtime.transaction() as conn:
        state, version = await _child(runtime, conn, child_id)
        events = domain.erase_personal_data(state)
        if not events:
            return False
        await vault.destroy_key(conn, child_id)
        await conn.execute(
            update(ChildRecord).where(ChildRecord.id == child_id).values(sealed=None, erased_at=runtime.clock.now())
        )
        await runtime.append(conn, Append(str(child_id), version, events))
    async with runtime.db.engine.connect() as conn:
        await vault.scrub(conn)
    return True
