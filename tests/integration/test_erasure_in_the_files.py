"""Erasure in the files, on SQLite and PostgreSQL: what a service clears of a person leaves no copy in what the
database keeps, dead row versions and write-ahead log included; a reader or an older transaction that holds the
scrub up only defers it."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from backbone import scrub
from backbone.database import Database
from backbone.store import Plumbing
from contracts.registry import ChildPersonalDataErased
from services.registry import vault
from services.registry.records import Records
from tests.helpers import RegistryEvents, auth, wait_until

CLIENT_TIMEOUT = 5.0  # seconds: httpx's default; an erasure's answer must come before a client gives up on it
XINGAN = "450325"
COORDINATOR = auth("coordinator", [XINGAN])
NOTE = "隐私笔记：外婆说孩子常在夜里哭"
AVAILABILITY = "周六上午隐私时段"
CHILD = {
    "name": "覃文件甲",
    "birth_date": "2014-05-06",
    "gender": "female",
    "category": "left_behind",
    "county_code": XINGAN,
    "township": "溶江镇",
    "village": "五甲村",
    "risk_level": "medium",
    "guardianship": "grandparents",
    "guardian_name": "覃文件乙",
    "guardian_phone": "13907731234",
}
VOLUNTEER = {
    "name": "黄文件丙",
    "phone": "13977731234",
    "kind": "caring_parent",
    "county_code": XINGAN,
    "township": "溶江镇",
    "village": "五甲村",
    "availability": AVAILABILITY,
}


async def stored(database_url: str, *tables: str) -> bytes:
    """What the database keeps of `tables`, byte for byte, dead row versions included: on SQLite every file of the
    database (the main one, -wal, -shm); on PostgreSQL every page of the tables and of their TOAST tables, as
    pageinspect reads them from the buffers (a superuser's extension: the tests' server allows it), the tables locked
    against rewrites while they are read."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        return b"".join(file.read_bytes() for file in path.parent.glob(f"{path.name}*"))
    db = Database(database_url)
    try:
        async with db.begin() as conn:
            await conn.execute(text("CREATE EXTENSION IF NOT EXISTS pageinspect"))
        pages = []
        async with db.begin() as conn:
            for table in tables:
                # Held to the end of this read: a scrub's VACUUM FULL (or a vacuum's truncation) would otherwise give
                # the table new, shorter files between reading its size and reading its pages.
                await conn.execute(text(f"LOCK TABLE {table} IN ACCESS SHARE MODE"))
                toast = await conn.scalar(
                    text("SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = CAST(:t AS regclass)"),
                    {"t": table},
                )
                for relation in [table, toast] if toast != "-" else [table]:
                    size = "pg_relation_size(CAST(:r AS regclass)) / current_setting('block_size')::int"
                    blocks = await conn.scalar(text(f"SELECT {size}"), {"r": relation})
                    for block in range(blocks):
                        page = text("SELECT get_raw_page(:r, :b)")
                        pages.append(bytes(await conn.scalar(page, {"r": relation, "b": block})))
        return b"".join(pages)
    finally:
        await db.dispose()


async def gone_from(database_url: str, tables: tuple[str, ...], *values: bytes) -> None:
    """Wait (a bounded time: the scrub's timer looks every second) until none of `values` is kept in `tables`."""
    found: list[bytes] = []

    async def scrubbed() -> bool:
        nonlocal found
        kept = await stored(database_url, *tables)
        found = [value for value in values if value in kept]
        return not found

    try:
        await wait_until(scrubbed, within=20, what="the erased values gone from the files")
    except AssertionError:
        raise AssertionError(f"{len(found)} of {len(values)} erased values still in {tables}") from None


async def test_erasing_a_child_leaves_no_copy_of_the_key(registry: httpx.AsyncClient, database_url: str) -> None:
    child_id, key = await child_with_key(registry, database_url)
    assert key in await stored(database_url, "person_keys")  # what the check below is for

    erased = await registry.delete(f"/children/{child_id}/personal-data", headers=COORDINATOR)

    assert erased.status_code == 204, erased.text
    assert (await registry.get(f"/children/{child_id}", headers=COORDINATOR)).json()["name"] is None
    assert await key_of(database_url, child_id) is None
    assert await keys_held(database_url) == 0  # the table's live rows: the child had the only key
    await gone_from(database_url, ("person_keys",), key)


async def test_erasing_a_volunteer_leaves_no_copy_of_the_key_or_their_availability(
    registry: httpx.AsyncClient, database_url: str
) -> None:
    created = await registry.post("/volunteers", json=VOLUNTEER, headers=COORDINATOR)
    assert created.status_code == 201, created.text
    volunteer_id = uuid.UUID(created.json()["id"])
    key = await key_of(database_url, volunteer_id)
    assert key is not None
    tables = ("person_keys", "volunteers")
    before = await stored(database_url, *tables)
    assert key in before
    assert AVAILABILITY.encode() in before  # free text, on the record until erased

    erased = await registry.delete(f"/volunteers/{volunteer_id}/personal-data", headers=COORDINATOR)

    assert erased.status_code == 204, erased.text
    assert (await registry.get(f"/volunteers/{volunteer_id}", headers=COORDINATOR)).json()["availability"] is None
    assert await key_of(database_url, volunteer_id) is None
    await gone_from(database_url, tables, key, AVAILABILITY.encode())


async def test_a_contact_note_cleared_on_erasure_leaves_matchings_files(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, database_url: str
) -> None:
    child_id = await registry_events.child("high")

    async def known() -> bool:
        return (await matching.get(f"/children/{child_id}/contacts", headers=COORDINATOR)).status_code == 200

    await wait_until(known, what="the child known to matching")
    visit = {
        "kind": "visit",
        "in_person": True,
        "occurred_at": (datetime.now(UTC) - timedelta(hours=3)).isoformat(),
        "duration_minutes": 40,
        "visitor": "child_director",
        "note": NOTE,
    }
    posted = await matching.post(f"/children/{child_id}/contacts", json=visit, headers=COORDINATOR)
    assert posted.status_code == 201, posted.text
    assert NOTE.encode() in await stored(database_url, "contacts")  # what the check below is for

    await registry_events.emit(ChildPersonalDataErased(child_id=child_id))

    async def cleared() -> bool:
        page = await matching.get(f"/children/{child_id}/contacts", headers=COORDINATOR)
        return [item["note"] for item in page.json()["items"]] == [None]

    await wait_until(cleared, what="the note cleared with the child's personal data")
    await gone_from(database_url, ("contacts",), NOTE.encode())


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_on_postgresql_a_transaction_older_than_the_erasure_holds_the_scrub_until_it_ends(
    registry: httpx.AsyncClient, database_url: str, postgres_server: str
) -> None:
    child_id, key = await child_with_key(registry, database_url)
    # A transaction begun before the erasure, in another database of the same server: VACUUM FULL keeps (copies)
    # every row version deleted after the oldest transaction still running started, whatever its database.
    older = await asyncpg.connect(driver_dsn(postgres_server))
    try:
        await older.execute("BEGIN")
        await older.fetchval("SELECT pg_current_xact_id()")
        with capture_logs() as logs:
            erased = await registry.delete(f"/children/{child_id}/personal-data", headers=COORDINATOR)
        assert erased.status_code == 204, erased.text
        assert await key_of(database_url, child_id) is None
        assert key in await stored(database_url, "person_keys")  # what the wait is for: the dead row is still there
        assert [entry["tables"] for entry in logs if entry["event"] == "scrub.deferred"][:1] == [["person_keys"]]
        assert str(child_id) not in str(logs)
        assert await owed(database_url) == ["person_keys"]
    finally:
        await older.execute("ROLLBACK")
        await older.close()

    await gone_from(database_url, ("person_keys",), key)  # the timer finishes it once the older one has ended
    assert await owed(database_url) == []


async def test_an_erasure_the_scrub_cannot_finish_answers_as_usual_and_the_timer_finishes_it(
    registry: httpx.AsyncClient, database_url: str
) -> None:
    child_id, key = await child_with_key(registry, database_url)

    async with scrub_held_up(database_url):
        with capture_logs() as logs:
            erased = await asyncio.wait_for(
                registry.delete(f"/children/{child_id}/personal-data", headers=COORDINATOR), CLIENT_TIMEOUT
            )
        assert erased.status_code == 204, erased.text
        assert await key_of(database_url, child_id) is None
        assert key in await stored(database_url, "person_keys")  # the scrub did not finish: still owed
        assert await owed(database_url) == ["person_keys"]
        said = [entry for entry in logs if entry["event"] in ("scrub.deferred", "scrub.failed")]
        assert {entry["log_level"] for entry in said} == {"warning"}  # one at least: an operator sees it
        assert str(child_id) not in str(logs)

    await gone_from(database_url, ("person_keys",), key)  # the timer finishes it once nothing holds it up
    assert await owed(database_url) == []


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_on_postgresql_an_older_snapshot_in_the_same_database_holds_the_scrub_until_it_ends(
    registry: httpx.AsyncClient, database_url: str
) -> None:
    child_id, key = await child_with_key(registry, database_url)
    # A report in one REPEATABLE READ snapshot, begun before the erasure: read-only, so it holds no transaction id,
    # only a snapshot that can still read the key. It reads the children, not the keys: a read of the keys' table
    # would hold a lock that keeps VACUUM FULL out by itself, and the check is that the snapshot alone does.
    report = await asyncpg.connect(driver_dsn(database_url))
    try:
        await report.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        assert await report.fetchval("SELECT count(*) FROM children") == 1
        with capture_logs() as logs:
            erased = await registry.delete(f"/children/{child_id}/personal-data", headers=COORDINATOR)
            assert erased.status_code == 204, erased.text
            assert await owed(database_url) == ["person_keys"]  # the erasure's own try left it owed

            async def tried_again() -> bool:  # the erasure's own try, then at least one of the timer's
                return len([entry for entry in logs if entry["event"] == "scrub.deferred"]) >= 2

            await wait_until(tried_again, what="the timer to try the scrub again while the report runs")
        assert await owed(database_url) == ["person_keys"]
        assert key in await stored(database_url, "person_keys")
        held_key = await report.fetchval("SELECT key FROM person_keys WHERE person_id = $1", child_id)
        assert held_key == key  # what the scrub waits for: the report's snapshot still reads the erased key
    finally:
        await report.execute("ROLLBACK")
        await report.close()

    await gone_from(database_url, ("person_keys",), key)  # the report has ended: the timer finishes it
    assert await owed(database_url) == []


async def test_on_sqlite_a_busy_reader_defers_the_scrub_with_a_warning_and_the_timer_finishes_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "registry.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.create(Plumbing.metadata, Records.metadata)
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
            assert await scrub.scrub(db, attempts=3, pause=0.05) is False
        assert key in await stored(str(db.url))  # what the check is for: the key still lies in the files
        (warning,) = [entry for entry in logs if entry["event"] == "scrub.deferred"]
        assert (warning["log_level"], warning["attempts"], warning["tables"]) == ("warning", 3, ["person_keys"])
        assert str(person) not in str(logs)
        assert key.hex() not in str(logs)
        assert await scrub.scrub(db) is False  # the timer tries again: still busy, still owed
        assert await owed(str(db.url)) == ["person_keys"]
    finally:
        reader.execute("COMMIT")
        reader.close()

    assert await scrub.scrub(db) is True  # the reader is gone: the timer finishes it
    assert key not in await stored(str(db.url))
    assert await owed(str(db.url)) == []  # and nothing is left owed
    await db.dispose()


async def test_on_sqlite_the_next_erasure_also_pays_a_scrub_left_owed(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.create(Plumbing.metadata, Records.metadata)
    first, second = uuid.uuid4(), uuid.uuid4()
    async with db.begin() as conn:
        keys = [await vault.create_key(conn, person, datetime.now(UTC)) for person in (first, second)]
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM person_keys").fetchone()
    async with db.begin() as conn:
        await vault.destroy_key(conn, first)
    assert await scrub.scrub(db, attempts=2, pause=0.05) is False
    reader.execute("COMMIT")
    reader.close()

    async with db.begin() as conn:
        await vault.destroy_key(conn, second)
    assert await scrub.scrub(db) is True
    kept = await stored(str(db.url))
    assert [key for key in keys if key in kept] == []
    assert await owed(str(db.url)) == []
    await db.dispose()


async def child_with_key(registry: httpx.AsyncClient, database_url: str) -> tuple[uuid.UUID, bytes]:
    """A child registered, and the key its personal data is sealed with."""
    created = await registry.post("/children", json=CHILD, headers=COORDINATOR)
    assert created.status_code == 201, created.text
    child_id = uuid.UUID(created.json()["id"])
    key = await key_of(database_url, child_id)
    assert key is not None
    return child_id, key


def driver_dsn(database_url: str) -> str:
    """A PostgreSQL URL as asyncpg itself takes it, for a session of its own beside the service's."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


async def owed(database_url: str) -> list[str]:
    """The tables a scrub is still owed for."""
    db = Database(database_url)
    try:
        async with db.read() as conn:
            return list((await conn.scalars(select(scrub.ScrubPending.table_name))).all())
    finally:
        await db.dispose()


async def key_of(database_url: str, person_id: uuid.UUID) -> bytes | None:
    db = Database(database_url)
    try:
        async with db.read() as conn:
            return await vault.key_of(conn, person_id)
    finally:
        await db.dispose()


async def keys_held(database_url: str) -> int:
    db = Database(database_url)
    try:
        async with db.read() as conn:
            return int(await conn.scalar(select(func.count()).select_from(vault.PersonKey)) or 0)
    finally:
        await db.dispose()


# An operator's answer to a VACUUM FULL queued ahead of every reader of its table: cancel it.
CANCEL_WAITING_REWRITES = """
    SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND query LIKE 'VACUUM FULL%' AND wait_event_type = 'Lock'
"""


@contextlib.asynccontextmanager
async def scrub_held_up(database_url: str) -> AsyncIterator[None]:
    """While the block runs, the scrub cannot finish. SQLite: another process's report in the middle of a read holds
    the write-ahead log. PostgreSQL: a session holds a lock on the keys' table (with no snapshot, so the rewrite is
    tried and waits for the lock), and an operator cancels every rewrite seen waiting for it: an error that is not a
    lock timeout."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        reader = sqlite3.connect(str(url.database), isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM person_keys").fetchone()
        try:
            yield
        finally:
            reader.execute("COMMIT")
            reader.close()
        return
    holder, operator = await asyncpg.connect(driver_dsn(database_url)), await asyncpg.connect(driver_dsn(database_url))
    stop = asyncio.Event()

    async def cancel_waiting_rewrites() -> None:
        while not stop.is_set():
            await operator.fetchval(CANCEL_WAITING_REWRITES)
            await asyncio.sleep(0.01)

    try:
        await holder.execute("BEGIN")
        await holder.execute("LOCK TABLE person_keys IN ACCESS SHARE MODE")
        cancelling = asyncio.create_task(cancel_waiting_rewrites())
        try:
            yield
        finally:
            stop.set()
            await cancelling
    finally:
        await holder.close()  # its transaction ends with it
        await operator.close()
