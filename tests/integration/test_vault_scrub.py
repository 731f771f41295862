"""Erasure on SQLite: a reader holding the write-ahead log puts the scrub off; it is retried, not forgotten."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

from structlog.testing import capture_logs

from backbone.database import Database
from services.registry import vault
from services.registry.records import Records


def database_files(folder: Path) -> bytes:
    """Every file of the database: the main file, its -wal and -shm (and a -journal, were there one)."""
    return b"".join(path.read_bytes() for path in folder.glob("registry.db*"))


async def test_a_busy_reader_defers_the_scrub_with_a_warning_and_it_is_finished_once_the_reader_is_gone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "registry.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.create(Records.metadata)
    person = uuid.uuid4()
    async with db.begin() as conn:
        key = await vault.create_key(conn, person, datetime.now(UTC))
    reader = sqlite3.connect(path, isolation_level=None)  # another process's report, in the middle of a read
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM person_keys").fetchone()
    try:
        async with db.begin() as conn:
            assert await vault.destroy_key(conn, person)
        with capture_logs() as logs:
            async with db.engine.connect() as conn:
                assert await vault.scrub(conn, attempts=3, pause=0.05) is False
        assert key in database_files(tmp_path)  # what the check is for: the key still lies in the files
        (warning,) = [entry for entry in logs if entry["event"] == "vault.scrub_deferred"]
        assert (warning["log_level"], warning["attempts"]) == ("warning", 3)
        assert str(person) not in str(logs)
        assert key.hex() not in str(logs)
        assert await vault.scrub_pending(db) == 0  # the timer tries again: still busy, still pending
    finally:
        reader.execute("COMMIT")
        reader.close()

    assert await vault.scrub_pending(db) == 1  # the reader is gone: the timer finishes it
    assert key not in database_files(tmp_path)
    assert await vault.scrub_pending(db) == 0  # and nothing is left pending
    await db.dispose()


async def test_the_next_erasure_also_finishes_a_scrub_left_pending(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.create(Records.metadata)
    first, second = uuid.uuid4(), uuid.uuid4()
    async with db.begin() as conn:
        keys = [await vault.create_key(conn, person, datetime.now(UTC)) for person in (first, second)]
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM person_keys").fetchone()
    async with db.begin() as conn:
        await vault.destroy_key(conn, first)
    async with db.engine.connect() as conn:
        assert await vault.scrub(conn, attempts=2, pause=0.05) is False
    reader.execute("COMMIT")
    reader.close()

    async with db.begin() as conn:
        await vault.destroy_key(conn, second)
    async with db.engine.connect() as conn:
        assert await vault.scrub(conn) is True
    stored = database_files(tmp_path)
    assert not [key for key in keys if key in stored]
    assert await vault.scrub_pending(db) == 0
    await db.dispose()
