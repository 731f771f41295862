"""Projections: read models folded from a stream, with their tracking rows in the same SQL transaction.

A projection follows whole aggregates (e.g. every `registry.child.*` event). For each aggregate it records the last
version applied, so a redelivered event changes nothing and an event that arrives before its predecessor waits.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import BigInteger, Boolean, Integer, String, Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone.store import Plumbing, dialect_insert, upsert
from contracts import CloudEvent, Event


class ProjectionState(Plumbing):
    """One row per projection. Every batch locks it first, so batches and resets never interleave."""

    __tablename__ = "projection_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    batches: Mapped[int] = mapped_column(BigInteger, default=0)
    # While a rebuild replays the stream, live consumers wait; the rebuild hands over to them when done.
    replaying: Mapped[bool] = mapped_column(Boolean, default=False)


class ProjectionCursor(Plumbing):
    """The last version of each aggregate a projection applied (or dead-lettered)."""

    __tablename__ = "projection_cursors"

    projection: Mapped[str] = mapped_column(String(64), primary_key=True)
    aggregate_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


@dataclass(frozen=True)
class Delivered:
    """An event as a consumer received it: the envelope, the data read as the newest version, where it sits."""

    envelope: CloudEvent
    event: Event
    stream_sequence: int

    @property
    def aggregate_id(self) -> str:
        return self.envelope.subject

    @property
    def version(self) -> int:
        return self.envelope.sequence


class Projection(ABC):
    """A read model. `apply` gets events in order, already filtered to those not applied yet."""

    name: ClassVar[str]
    stream: ClassVar[str]
    subjects: ClassVar[list[str]]
    views: ClassVar[list[Table]]

    @abstractmethod
    async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None: ...


async def insert_rows(conn: AsyncConnection, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Insert a batch's new rows (of a mapped class's table) in one statement."""
    if rows:
        await conn.execute(insert(model.__table__), list(rows))


async def update_rows(conn: AsyncConnection, model: Any, key: str, changes: Mapping[Any, dict[str, Any]]) -> None:
    """Set columns on the rows with these keys: one statement per set of columns, sent once with every row's values
    (a batch's events folded first, so each row appears once, with its last values)."""
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for value, columns in changes.items():
        groups.setdefault(frozenset(columns), []).append({**columns, "key_": value})
    for params in groups.values():
        await conn.execute(_update_by(model.__table__, key), params)


@functools.cache
def _update_by(table: Table, key: str) -> Any:
    """UPDATE … WHERE key = :key_, the columns set being those of the parameters (SQLAlchemy's executemany form)."""
    return update(table).where(table.c[key] == bindparam("key_"))


class StaleGeneration(Exception):
    """The projection was reset while this batch was in hand; the batch belongs to the old generation."""


async def begin_batch(conn: AsyncConnection, projection: str, generation: int) -> None:
    """Lock the projection's state row for this transaction; refuse if the projection was reset meanwhile."""
    result = await conn.execute(
        update(ProjectionState)
        .where(ProjectionState.name == projection, ProjectionState.generation == generation)
        .values(batches=ProjectionState.batches + 1)
    )
    if result.rowcount != 1:
        raise StaleGeneration(projection)


@dataclass(frozen=True)
class State:
    generation: int
    replaying: bool


async def state(conn: AsyncConnection, projection: str) -> State | None:
    found = (
        await conn.execute(
            select(ProjectionState.generation, ProjectionState.replaying).where(ProjectionState.name == projection)
        )
    ).first()
    return State(found.generation, found.replaying) if found else None


async def register(conn: AsyncConnection, projection: str) -> State:
    """The projection's state, creating it (generation 1, live) on first use."""
    await conn.execute(
        dialect_insert(conn, ProjectionState)
        .values(name=projection, generation=1, batches=0, replaying=False)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    found = await state(conn, projection)
    assert found is not None
    return found


async def cursors(conn: AsyncConnection, projection: str, aggregate_ids: set[str]) -> dict[str, int]:
    result = await conn.execute(
        select(ProjectionCursor.aggregate_id, ProjectionCursor.version).where(
            ProjectionCursor.projection == projection, ProjectionCursor.aggregate_id.in_(aggregate_ids)
        )
    )
    return {row.aggregate_id: row.version for row in result}


async def save_cursors(conn: AsyncConnection, projection: str, versions: dict[str, int]) -> None:
    if versions:
        await conn.execute(
            upsert(conn, ProjectionCursor, ["projection", "aggregate_id"]),
            [{"projection": projection, "aggregate_id": a, "version": v} for a, v in versions.items()],
        )


async def reset(conn: AsyncConnection, projection: Projection) -> int:
    """Drop the projection's rows and tracking, start a new generation in replay; returns the generation."""
    await register(conn, projection.name)
    await conn.execute(  # incremented in SQL: two rebuilds at once still get two generations
        update(ProjectionState)
        .where(ProjectionState.name == projection.name)
        .values(generation=ProjectionState.generation + 1, replaying=True)
    )
    current = await state(conn, projection.name)
    assert current is not None
    generation = current.generation
    for table in projection.views:
        await conn.execute(delete(table))
    await conn.execute(delete(ProjectionCursor).where(ProjectionCursor.projection == projection.name))
    return generation


async def finish_replay(conn: AsyncConnection, projection: str, generation: int) -> None:
    await conn.execute(
        update(ProjectionState)
        .where(ProjectionState.name == projection, ProjectionState.generation == generation)
        .values(replaying=False)
    )
