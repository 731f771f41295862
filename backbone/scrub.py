"""Erasure in the files: personal data a service clears leaves no copy in its database files once it is scrubbed.

Clearing a row is not enough. SQLite zeroes freed cells (secure_delete, on for every connection), but the old page
stays in the write-ahead log until it is copied back and the log truncated; PostgreSQL keeps the old row version in
the table until a vacuum. So the transaction that clears personal data also `owe`s a scrub (a row here, kept across
a restart), and `scrub` pays every one owed once that transaction has committed: the service's erasure calls it
straight after, and a timer (`EVERY` seconds) pays what is still owed, whoever owed it.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import structlog
from sqlalchemy import BigInteger, ColumnElement, Integer, String, delete, insert, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backbone.database import BUSY_TIMEOUT_MS, Database
from backbone.store import Plumbing

log = structlog.get_logger("scrub")
ATTEMPTS = 5
PAUSE = 0.1  # seconds between attempts, and at most as long again waiting on readers in each
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
    transaction or one using the table (PostgreSQL), holds it up: it is tried `attempts` times, `pause` apart; if it
    is still held, a warning is logged and the scrub stays owed, for the timer or the next erasure."""
    async with db.read() as conn:
        owed = (await conn.execute(select(ScrubPending.id, ScrubPending.table_name, ScrubPending.xid))).all()
    if not owed:
        return True
    tables = sorted({row.table_name for row in owed})
    async with db.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        if db.is_sqlite:
            once = partial(_checkpoint, driver, pause)
        else:
            once = partial(_vacuum, db, driver, tables, max(row.xid or 0 for row in owed), pause)
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(pause)
            if await once():
                await conn.execute(delete(ScrubPending).where(ScrubPending.id.in_([row.id for row in owed])))
                await conn.commit()
                return True
    held_by = "a reader holds the write-ahead log" if db.is_sqlite else "an older transaction or a lock holds it"
    log.warning("scrub.deferred", attempts=attempts, tables=tables, reason=held_by)
    return False


async def _checkpoint(driver: Any, wait: float) -> bool:
    """One `wal_checkpoint(TRUNCATE)`, waiting at most `wait` seconds for readers (not the usual 30 s): True unless
    it was busy. It runs outside a transaction, so it goes to the driver directly."""
    await driver.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
    try:
        cursor = await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        busy, *_ = await cursor.fetchone()
        await cursor.close()
    finally:
        await driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return not busy


async def _vacuum(db: Database, driver: Any, tables: list[str], newest: int, wait: float) -> bool:
    """VACUUM FULL each table once no older transaction can see what the clearing transactions (up to `newest`)
    removed, waiting at most `wait` seconds for the table's lock (a queued VACUUM FULL would hold up every reader
    behind it): True unless it was held. VACUUM cannot run inside a transaction: to the driver directly."""
    if await driver.fetchval(SEEN_BY_OLDER, newest):
        return False
    quote = db.engine.dialect.identifier_preparer.quote
    await driver.execute(f"SET lock_timeout = {int(wait * 1000)}")
    try:
        for table in tables:
            await driver.execute(f"VACUUM FULL {quote(table)}")
    except Exception as error:
        if getattr(error, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        return False
    finally:
        await driver.execute("RESET lock_timeout")
    return True
