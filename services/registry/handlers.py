"""One handler per command: load the aggregate, decide in the domain, append and record in one transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from backbone.runtime import Runtime
from backbone.store import Append
from services.registry import domain
from services.registry.records import ChildRecord


async def register_child(runtime: Runtime, command: domain.RegisterChild, personal: dict[str, Any]) -> None:
    stream = str(command.child_id)
    async with runtime.transaction() as conn:
        history = await runtime.store.load(conn, stream)
        state = None
        for recorded in history:
            state = domain.evolve(state, recorded.event())
        events = domain.register_child(state, command)
        await runtime.append(conn, Append(stream, len(history), events))
        await conn.execute(
            insert(ChildRecord).values(
                id=command.child_id,
                county_code=command.county_code,
                category=command.category,
                risk_level=command.risk_level,
                birth_date=command.birth_date,
                needs=list(command.needs),
                languages=list(command.languages),
                flags=list(command.flags),
                registered_at=runtime.clock.now(),
                **personal,
            )
        )
