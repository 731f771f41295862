"""Personal data at rest: sealed with one key per person (AES-256-GCM); erasing a person destroys the key.

Keys live in their own table, apart from the records and events that hold the sealed data. Once a key is gone,
every copy of that person's personal fields, in the current record and in every old event, is unreadable.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import datetime
from typing import Any

import structlog
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Integer, LargeBinary, Uuid, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone.database import Database, UtcDateTime
from services.registry.records import Records

log = structlog.get_logger("vault")
NONCE_BYTES = 12
SCRUB_ATTEMPTS = 5
SCRUB_PAUSE = 0.1  # seconds between attempts, and at most as long again waiting on readers in each
BUSY_TIMEOUT_MS = 30_000  # the connections' own (see backbone.database), put back after each attempt


class PersonKey(Records):
    __tablename__ = "person_keys"

    person_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ScrubPending(Records):
    """A row here: an erasure's scrub could not finish (a reader held the write-ahead log), so a destroyed key may
    still be in the -wal file until `scrub_pending` or the next erasure finishes it. Kept in the database so that a
    restart does not forget it."""

    __tablename__ = "vault_scrub_pending"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


async def create_key(conn: AsyncConnection, person_id: uuid.UUID, now: datetime) -> bytes:
    key = new_key()
    await conn.execute(insert(PersonKey).values(person_id=person_id, key=key, created_at=now))
    return key


async def key_of(conn: AsyncConnection, person_id: uuid.UUID) -> bytes | None:
    found = await conn.scalar(select(PersonKey.key).where(PersonKey.person_id == person_id))
    return bytes(found) if found is not None else None


async def keys_of(conn: AsyncConnection, person_ids: list[uuid.UUID]) -> dict[uuid.UUID, bytes]:
    found: dict[uuid.UUID, bytes] = {}
    for start in range(0, len(person_ids), 500):
        chunk = person_ids[start : start + 500]
        rows = await conn.execute(select(PersonKey.person_id, PersonKey.key).where(PersonKey.person_id.in_(chunk)))
        found |= {person_id: bytes(key) for person_id, key in rows}
    return found


def seal(key: bytes, person_id: uuid.UUID, fields: dict[str, Any]) -> bytes:
    """Encrypt `fields`, bound to the person (a sealed blob moved to another person does not open)."""
    nonce = os.urandom(NONCE_BYTES)
    plaintext = json.dumps(fields, ensure_ascii=False, sort_keys=True).encode()
    return nonce + AESGCM(key).encrypt(nonce, plaintext, person_id.bytes)


def unseal(key: bytes | None, person_id: uuid.UUID, sealed: bytes | None) -> dict[str, Any] | None:
    """The personal fields, or None once the person's key is destroyed."""
    if key is None or sealed is None:
        return None
    plaintext = AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], person_id.bytes)
    opened: dict[str, Any] = json.loads(plaintext)
    return opened


async def destroy_key(conn: AsyncConnection, person_id: uuid.UUID) -> bool:
    """Delete the person's key; True if there was one. Call `scrub` after the transaction commits."""
    result = await conn.execute(delete(PersonKey).where(PersonKey.person_id == person_id))
    return bool(result.rowcount)


async def scrub(conn: AsyncConnection, attempts: int = SCRUB_ATTEMPTS, pause: float = SCRUB_PAUSE) -> bool:
    """Leave no copy of a deleted key in the files; True once none is left.

    SQLite zeroes freed cells (secure_delete), but the write-ahead log still holds the old page until it is copied
    back and truncated, which a reader in the middle of a read can hold up: the checkpoint then says it is busy. It
    is tried `attempts` times, `pause` apart; if a reader outlasts them all, the scrub is left pending (a warning is
    logged) for `scrub_pending` or the next erasure. PostgreSQL rewrites the (small) table. Both run outside a
    transaction, so they go to the driver directly."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    if conn.dialect.name != "sqlite":
        await driver.execute("VACUUM FULL person_keys")  # rewrites the table: plain VACUUM leaves freed bytes
        return True
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(pause)
        if await _checkpoint(driver, pause):
            await _settle(conn, pending=False)
            return True
    log.warning("vault.scrub_deferred", attempts=attempts, reason="a reader holds the write-ahead log")
    await _settle(conn, pending=True)
    return False


async def _checkpoint(driver: Any, wait: float) -> bool:
    """One `wal_checkpoint(TRUNCATE)`, waiting at most `wait` seconds for readers (not the usual 30 s): True unless
    it was busy."""
    await driver.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
    try:
        cursor = await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        busy, *_ = await cursor.fetchone()
        await cursor.close()
    finally:
        await driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return not busy


async def _settle(conn: AsyncConnection, *, pending: bool) -> None:
    """Remember an unfinished scrub, or forget one now finished (writing only when that changes something)."""
    was_pending = await conn.scalar(select(ScrubPending.id)) is not None
    if pending != was_pending:
        await conn.execute(insert(ScrubPending).values(id=1) if pending else delete(ScrubPending))
    await conn.commit()


async def scrub_pending(db: Database) -> int:
    """A timer's work: finish a scrub that a busy reader put off (1 if one was finished now)."""
    if not db.is_sqlite:
        return 0
    async with db.read() as conn:
        if await conn.scalar(select(ScrubPending.id)) is None:
            return 0
    async with db.engine.connect() as conn:
        return int(await scrub(conn))
