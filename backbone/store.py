"""The event store: each service's own SQL log of events, appended with optimistic concurrency.

The log is also the outbox. On PostgreSQL every row carries the id of the transaction that wrote it, so the relay
can hold back rows until every older transaction has ended and never skips one that commits late.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
    Uuid,
    func,
    insert,
    literal,
    select,
    text,
    tuple_,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backbone import context
from backbone.clock import Clock, SystemClock
from backbone.database import UtcDateTime
from contracts import Event, upcast


class Plumbing(DeclarativeBase):
    """Tables of the plumbing itself (events, relay position, projection tracking); views have their own."""

    metadata = MetaData()


POSITION = BigInteger().with_variant(Integer, "sqlite")


class EventRecord(Plumbing):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("stream_id", "version", name="uq_events_stream_version"),
        Index("ix_events_tx_position", "tx_id", "position"),
    )

    position: Mapped[int] = mapped_column(POSITION, primary_key=True, autoincrement=True)
    tx_id: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    stream_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(128))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)
    correlation_id: Mapped[str] = mapped_column(String(64))
    causation_id: Mapped[str | None] = mapped_column(String(64))
    traceparent: Mapped[str | None] = mapped_column(String(64))
    # The event's personal part, encrypted with its person's key; never published (see the registry's vault).
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class RelayPosition(Plumbing):
    __tablename__ = "relay_positions"

    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    tx_id: Mapped[int] = mapped_column(BigInteger)
    position: Mapped[int] = mapped_column(BigInteger)


class ConcurrencyConflict(Exception):
    """Someone appended to the stream since it was read: reload and decide again (HTTP 409)."""

    def __init__(self, stream_id: str, expected: int, actual: int | None = None) -> None:
        self.stream_id, self.expected, self.actual = stream_id, expected, actual
        found = "a concurrent append" if actual is None else f"version {actual}"
        super().__init__(f"stream {stream_id}: expected version {expected}, found {found}")


class OutOfOrder(ConcurrencyConflict):
    """The stream's last event was written by a transaction that began after this one (on PostgreSQL the relay
    publishes in transaction order): nothing the caller decided was wrong, and running the transaction again fixes
    it."""

    def __init__(self, stream_id: str, expected: int) -> None:
        super().__init__(stream_id, expected)


@dataclass(frozen=True)
class Append:
    """New events for one stream, to be written only if the stream is still at `expected_version`.

    `sealed`, if given, holds the encrypted personal part of the first events, in order (None: that event has none).
    `causes`, if given, replaces the context's (a reaction appending for several delivered events at once).
    """

    stream_id: str
    expected_version: int
    events: Sequence[Event]
    sealed: Sequence[bytes | None] = ()
    causes: context.Causes | None = None


@dataclass(frozen=True)
class RecordedEvent:
    position: int
    tx_id: int
    event_id: uuid.UUID
    stream_id: str
    version: int
    type: str
    data: dict[str, Any]
    recorded_at: datetime
    correlation_id: str
    causation_id: str | None
    traceparent: str | None
    sealed: bytes | None = None

    def event(self) -> Event:
        """The event as the newest version of its type."""
        return upcast(self.type, self.data)

    @property
    def subject(self) -> str:
        return self.type.rsplit(".", 1)[0]


_COLUMNS = [getattr(EventRecord, field) for field in RecordedEvent.__dataclass_fields__]


class EventStore:
    def __init__(self, *, postgres: bool, clock: Clock | None = None) -> None:
        self.postgres = postgres
        self.clock = clock or SystemClock()
        self._tx_id = text("pg_current_xact_id()::text::bigint") if postgres else literal(0)

    async def append(self, conn: AsyncConnection, *appends: Append) -> list[uuid.UUID]:
        """Append in the caller's transaction; raise ConcurrencyConflict if any stream moved on."""
        heads = await self._heads(conn, [append.stream_id for append in appends])
        current_tx_id = None
        for append in appends:
            actual, last_tx_id = heads.get(append.stream_id, (0, 0))
            if actual != append.expected_version:
                raise ConcurrencyConflict(append.stream_id, append.expected_version, actual)
            if self.postgres and actual:
                if current_tx_id is None:
                    current_tx_id = await conn.scalar(text("SELECT pg_current_xact_id()::text::bigint"))
                if last_tx_id > current_tx_id:
                    # This transaction began writing before the one that wrote the stream's last event; the relay
                    # orders by transaction, so it would publish our later version first. Retrying fixes it.
                    raise OutOfOrder(append.stream_id, append.expected_version)
        current = context.current()
        now = self.clock.now()
        rows: list[dict[str, Any]] = [
            {
                "event_id": uuid.uuid4(),
                "stream_id": append.stream_id,
                "version": append.expected_version + offset,
                "type": event.type_name,
                "data": event.model_dump(mode="json"),
                "recorded_at": now,
                "correlation_id": (append.causes or current).correlation_id,
                "causation_id": (append.causes or current).causation_id,
                "traceparent": (append.causes or current).traceparent,
                "sealed": append.sealed[offset - 1] if offset <= len(append.sealed) else None,
            }
            for append in appends
            for offset, event in enumerate(append.events, start=1)
        ]
        if not rows:
            return []
        try:
            await conn.execute(insert(EventRecord).values(tx_id=self._tx_id), rows)
        except IntegrityError as error:
            stream = appends[0].stream_id if len(appends) == 1 else "one of " + ", ".join(a.stream_id for a in appends)
            raise ConcurrencyConflict(stream, appends[0].expected_version) from error
        return [row["event_id"] for row in rows]

    async def version(self, conn: AsyncConnection, stream_id: str) -> int:
        return (await self._heads(conn, [stream_id])).get(stream_id, (0, 0))[0]

    async def versions(self, conn: AsyncConnection, stream_ids: list[str]) -> dict[str, int]:
        """The version of each of these streams that exists."""
        return {stream: version for stream, (version, _) in (await self._heads(conn, stream_ids)).items()}

    async def _heads(self, conn: AsyncConnection, stream_ids: list[str]) -> dict[str, tuple[int, int]]:
        """Each existing stream's version and the id of the transaction that wrote its last event."""
        heads: dict[str, tuple[int, int]] = {}
        for start in range(0, len(stream_ids), 500):  # a bulk import appends to thousands of new streams
            query = (
                select(EventRecord.stream_id, func.max(EventRecord.version), func.max(EventRecord.tx_id))
                .where(EventRecord.stream_id.in_(stream_ids[start : start + 500]))
                .group_by(EventRecord.stream_id)
            )
            heads |= {stream: (int(version), int(tx_id)) for stream, version, tx_id in await conn.execute(query)}
        return heads

    async def load(self, conn: AsyncConnection, stream_id: str) -> list[RecordedEvent]:
        result = await conn.execute(
            select(*_COLUMNS).where(EventRecord.stream_id == stream_id).order_by(EventRecord.version)
        )
        return [RecordedEvent(**row._mapping) for row in result]

    async def committed_after(self, conn: AsyncConnection, after: tuple[int, int], limit: int) -> list[RecordedEvent]:
        """Events past `after` = (tx_id, position) that no still-running transaction can precede."""
        query = select(*_COLUMNS).limit(limit)
        if self.postgres:
            query = query.where(
                tuple_(EventRecord.tx_id, EventRecord.position) > tuple_(*after),
                text("events.tx_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"),
            ).order_by(EventRecord.tx_id, EventRecord.position)
        else:  # one writer at a time: the log's order is its positions (tx_id is 0), and the primary key finds them
            query = query.where(EventRecord.position > after[1]).order_by(EventRecord.position)
        result = await conn.execute(query)
        return [RecordedEvent(**row._mapping) for row in result]

    async def position_of(self, conn: AsyncConnection, event_id: str) -> tuple[int, int] | None:
        """Where an event sits in the relay's order, if it is in this log."""
        try:
            key = uuid.UUID(event_id)
        except ValueError:
            return None
        row = (
            await conn.execute(select(EventRecord.tx_id, EventRecord.position).where(EventRecord.event_id == key))
        ).first()
        return (row.tx_id, row.position) if row else None

    async def relay_position(self, conn: AsyncConnection, stream: str) -> tuple[int, int]:
        row = (
            await conn.execute(
                select(RelayPosition.tx_id, RelayPosition.position).where(RelayPosition.stream == stream)
            )
        ).first()
        return (row.tx_id, row.position) if row else (-1, 0)

    async def save_relay_position(self, conn: AsyncConnection, stream: str, position: tuple[int, int]) -> None:
        await conn.execute(
            upsert(conn, RelayPosition, ["stream"]),
            {"stream": stream, "tx_id": position[0], "position": position[1]},
        )


def dialect_insert(conn: AsyncConnection, model: Any) -> Any:
    """An INSERT that knows ON CONFLICT, for the connection's dialect (SQLite and PostgreSQL)."""
    from sqlalchemy.dialects import postgresql, sqlite

    if conn.dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def upsert(conn: AsyncConnection, model: Any, keys: Sequence[str], set_: Sequence[str] | None = None) -> Any:
    """INSERT … ON CONFLICT (keys) DO UPDATE every other column (or only those in `set_`; none: DO NOTHING).

    Built once per dialect, table and columns: projections run it for every batch."""
    return _upsert(conn.dialect.name, model, tuple(keys), None if set_ is None else tuple(set_))


@functools.cache
def _upsert(dialect: str, model: Any, keys: tuple[str, ...], set_: tuple[str, ...] | None) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    statement = (postgresql if dialect == "postgresql" else sqlite).insert(model)
    names = [c.name for c in model.__table__.columns if c.name not in keys] if set_ is None else set_
    if not names:
        return statement.on_conflict_do_nothing(index_elements=list(keys))
    return statement.on_conflict_do_update(index_elements=list(keys), set_={n: statement.excluded[n] for n in names})
