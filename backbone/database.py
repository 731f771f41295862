"""One SQL database per service: SQLite by default (WAL, immediate write transactions), PostgreSQL in production."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Dialect, MetaData, TypeDecorator, event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

BUSY_TIMEOUT_MS = 30_000  # SQLite: how long a connection waits for another's lock before it gives up


class Database:
    """The service's database: `begin()` for a write transaction, `read()` for queries."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(url, immediate=True, echo=echo)
            self._writing: contextlib.AbstractAsyncContextManager[object] = asyncio.Lock()
            # Readers never take the write lock: in WAL mode they see the last commit and never wait.
            self.reader = _sqlite_engine(url, immediate=False, echo=echo)
        else:
            # Plan every statement for its parameters: a cached generic plan made while a table was empty (a
            # fresh projection) keeps scanning it whole as it grows (measured: 30x slower batches).
            settings = {"plan_cache_mode": "force_custom_plan"}
            self.engine = create_async_engine(
                url,
                echo=echo,
                pool_size=10,
                pool_pre_ping=True,
                hide_parameters=True,
                connect_args={"server_settings": settings},
            )
            # A read sees one snapshot from its first query to its last: a page and its total (two queries) agree
            # while a projection commits between them. Read-only, such a transaction never fails to serialize.
            self.reader = self.engine.execution_options(isolation_level="REPEATABLE READ")
            self._writing = contextlib.nullcontext()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back if it raises.

        On SQLite, where one writer at a time holds the file's lock, this process's writers queue here for their
        turn instead of in SQLite's busy handler, which sleeps (1, 2, 5, 10 ms …) between tries."""
        async with self._writing, self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as conn:
            yield conn

    async def create(self, *metadata: MetaData) -> None:
        """Create missing tables, and missing indexes of existing ones (an index added in a later version reaches a
        database kept from before); replicas starting together on one new database take turns."""
        async with self.reader.connect() as conn:
            if not await conn.run_sync(_lacks_any, metadata):
                return
        async with self.begin() as conn:  # SQLite: BEGIN IMMEDIATE waits for the other replica
            if not self.is_sqlite:
                await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('create tables'))"))
            for schema in metadata:
                await conn.run_sync(schema.create_all)
                for table in schema.tables.values():
                    for index in table.indexes:
                        await conn.run_sync(index.create, checkfirst=True)

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.is_sqlite:  # on PostgreSQL the reader shares the engine's pool
            await self.reader.dispose()


def _lacks_any(sync: Connection, metadata: tuple[MetaData, ...]) -> bool:
    """Whether a table, or an index of a table, of `metadata` is missing from the database."""
    inspector = inspect(sync)
    existing = set(inspector.get_table_names())
    for schema in metadata:
        for table in schema.tables.values():
            if table.name not in existing:
                return True
            indexes = {index["name"] for index in inspector.get_indexes(table.name)}
            if any(index.name not in indexes for index in table.indexes):
                return True
    return False


def _sqlite_engine(url: str, *, immediate: bool, echo: bool) -> AsyncEngine:
    # hide_parameters: an error must never carry a child's name into a log.
    engine = create_async_engine(url, echo=echo, hide_parameters=True, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that BEGIN is ours to issue (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # the event log is the source of truth
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA secure_delete=ON")  # freed cells zeroed: erased data leaves the pages (backbone.scrub)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A write transaction takes the write lock at once, so a read-then-write never fails on upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class UtcDateTime(TypeDecorator[datetime]):
    """A moment in time, stored as UTC and read back with its zone on every database (SQLite drops zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: every moment this system stores carries its zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# PostgreSQL gave up one transaction to let the others go on: a deadlock, or a serialisation failure.
_RETRYABLE = {"40P01", "40001"}


def retryable(error: DBAPIError) -> bool:
    """Whether the transaction failed only because of others running at the same time: try it again."""
    return getattr(error.orig, "sqlstate", None) in _RETRYABLE
