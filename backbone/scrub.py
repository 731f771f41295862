"""Erasure in the files: personal data a service clears leaves no copy in its database files once it is scrubbed.

Clearing a row is not enough. SQLite zeroes freed cells (secure_delete, on for every connection), but the old page
stays in the write-ahead log until it is copied back and the log truncated; PostgreSQL keeps the old row version in
the table until a vacuum. So the transaction that clears personal data also `owe`s a scrub (a row here, kept across
a restart), and `scrub` pays every one owed once that transaction has committed: the service's erasure tries it
straight after (`after_erasure`, which never fails nor holds up the erasure's answer), and a timer (`EVERY`
seconds) pays what is still owed, whoever owed it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import structlog
from sqlalchemy import BigInteger, ColumnElement, Integer, String, delete, insert, literal_column, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backbone.database import BUSY_TIMEOUT_MS, Database
from backbone.store import Plumbing

log = structlog.get_logger("scrub")
ATTEMPTS = 5
PAUSE = 0.1  # seconds between attempts, and the longest a scrub waits for any lock (a reader's, a writer's, a table's)
EVERY = 1.0  # seconds between the timer's looks for a scrub still owed: one small read when none is
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL: lock_timeout ran out
# PostgreSQL: VACUUM FULL copies an old row version any snapshot may still see, and a snapshot taken while a
# transaction older than the clearing one runs (in any database of the server) may. True while one such is around:
# a transaction older than $1 still running, or a session of this database holding a snapshot from before it ended.
SEEN_BY_OLDER = """
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint <= $1::bigint OR EXISTS (
        SELECT 1 FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()
          AND age(backend_xmin) >= age(($1::bigint % 4294967296)::text::xid)
    )
"""


class ScrubPending(Plumbing):
    """A scrub owed: personal data was cleared from `table_name` and may still lie in the files. One row per
    clearing transaction (never updated, so clearings never wait on each other); the ids never come back, so a
    scrub deletes exactly the rows it paid for."""

    __tablename__ = "scrub_pending"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    table_name: Mapped[str] = mapped_column(String(64))
    xid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # PostgreSQL: the clearing transaction's id


async def owe(conn: AsyncConnection, model: type[DeclarativeBase]) -> None:
    """In the transaction that clears personal data from `model`'s table: a scrub is owed once it commits."""
    postgres = conn.dialect.name == "postgresql"
    xid: ColumnElement[Any] | None = literal_column("pg_current_xact_id()::text::bigint") if postgres else None
    await conn.execute(insert(ScrubPending).values(table_name=model.__tablename__, xid=xid))


async def scrub(db: Database, attempts: int = ATTEMPTS, pause: float = PAUSE) -> bool:
    """Pay every scrub owed; True once none is left.

    SQLite: checkpoint the write-ahead log and truncate it, so that old pages leave the files. PostgreSQL: rewrite
    each table owed (VACUUM FULL; a plain VACUUM leaves the freed bytes in the page) once no transaction older than
    the clearing ones can see the old rows any more. A reader in the middle of a read (SQLite), or such an older
    transaction or one using the table (PostgreSQL), holds it up: it is tried `attempts` times, waiting at most
    `pause` for a lock each time and `pause` between; if it is still held, a warning is logged and the scrub stays
    owed, for the timer or the next erasure. Any other database error is raised, with the scrub still owed."""
    async with db.read() as conn:
        owed = (await conn.execute(select(ScrubPending.id, ScrubPending.table_name, ScrubPending.xid))).all()
    if not owed:
        return True
    tables = sorted({row.table_name for row in owed})
    async with db.engine.connect() as conn, _waiting_at_most(conn, db.is_sqlite, pause) as driver:
        if db.is_sqlite:
            once = partial(_checkpoint, driver)
        else:
            once = partial(_vacuum, db, driver, tables, max(row.xid or 0 for row in owed))
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(pause)
            try:
                if await once():
                    await conn.execute(delete(ScrubPending).where(ScrubPending.id.in_([row.id for row in owed])))
                    await conn.commit()
                    return True
            except Exception as error:
                if not _held(error):
                    raise
                await conn.rollback()
    held_by = "a reader holds the write-ahead log" if db.is_sqlite else "an older transaction or a lock holds it"
    log.warning("scrub.deferred", attempts=attempts, tables=tables, reason=held_by)
    return False


async def after_erasure(db: Database) -> None:
    """Straight after an erasure has committed, in its request: one try at the scrub that never fails the request
    (its answer must say the erasure happened) nor holds it longer than a short lock wait; the timer pays whatever
    it leaves owed. A failure is logged by its kind only: a database's message can quote what it was working on."""
    try:
        await scrub(db, attempts=1)
    except Exception as error:
        cause = error.orig if isinstance(error, DBAPIError) else error
        log.warning("scrub.failed", error=type(cause).__name__, sqlstate=getattr(cause, "sqlstate", None))


@asynccontextmanager
async def _waiting_at_most(conn: AsyncConnection, sqlite: bool, wait: float) -> AsyncIterator[Any]:
    """`conn`'s driver (checkpoints and VACUUM run outside a transaction), every lock wait on it bounded by `wait`
    seconds: SQLite's usual busy timeout is 30 s and PostgreSQL has none, which would hold an erasure's answer that
    long, and leave a queued VACUUM FULL holding up every reader of its table. Put back before the pool has it."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    ms = max(1, round(wait * 1000))  # PostgreSQL reads a lock_timeout of 0 as "wait for ever"
    await driver.execute(f"PRAGMA busy_timeout={ms}" if sqlite else f"SET lock_timeout = {ms}")
    try:
        yield driver
    finally:
        await conn.rollback()  # PostgreSQL runs nothing more in a transaction that failed, not even the RESET
        await driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}" if sqlite else "RESET lock_timeout")


def _held(error: Exception) -> bool:
    """Whether `error` says only that another connection held a lock for longer than the scrub waits."""
    cause = error.orig if isinstance(error, DBAPIError) else error
    sqlite_code = getattr(cause, "sqlite_errorcode", None)  # an extended code: the primary one is its low byte
    busy = sqlite_code is not None and sqlite_code & 0xFF == sqlite3.SQLITE_BUSY
    return busy or getattr(cause, "sqlstate", None) == LOCK_NOT_AVAILABLE


async def _checkpoint(driver: Any) -> bool:
    """One `wal_checkpoint(TRUNCATE)`: True unless a reader or a writer kept it busy past the busy timeout."""
    cursor = await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    busy, *_ = await cursor.fetchone()
    await cursor.close()
    return not busy


async def _vacuum(db: Database, driver: Any, tables: list[str], newest: int) -> bool:
    """VACUUM FULL each table once no older transaction can see what the clearing transactions (up to `newest`)
    removed: True unless one still can. A lock held past the lock timeout raises."""
    if await driver.fetchval(SEEN_BY_OLDER, newest):
        return False
    quote = db.engine.dialect.identifier_preparer.quote
    for table in tables:
        await driver.execute(f"VACUUM FULL {quote(table)}")
    return True
