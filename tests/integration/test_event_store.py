"""One contract suite for the event store, run against every adapter (SQLite file and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from backbone.database import Database
from backbone.store import Append, ConcurrencyConflict, EventRecord, EventStore, OutOfOrder, Plumbing
from contracts.registry import ChildRegistered


def registered(child_id: uuid.UUID | None = None, risk: str = "high") -> ChildRegistered:
    return ChildRegistered(
        child_id=child_id or uuid.uuid4(), county_code="450325", category="orphan", risk_level=risk, age_band="9-11"
    )


@pytest.fixture
def store(db: Database) -> EventStore:
    return EventStore(postgres=not db.is_sqlite)


async def test_appended_events_load_in_version_order(db: Database, store: EventStore) -> None:
    child = uuid.uuid4()
    async with db.begin() as conn:
        await store.append(conn, Append(str(child), 0, [registered(child), registered(child, "low")]))
    async with db.begin() as conn:
        await store.append(conn, Append(str(child), 2, [registered(child, "medium")]))
    async with db.read() as conn:
        history = await store.load(conn, str(child))
    assert [e.version for e in history] == [1, 2, 3]
    assert [e.event().risk_level for e in history] == ["high", "low", "medium"]  # type: ignore[attr-defined]
    assert all(e.recorded_at.tzinfo is not None for e in history)


async def test_a_stale_expected_version_is_a_conflict_and_writes_nothing(db: Database, store: EventStore) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    async with db.begin() as conn:
        await store.append(conn, Append(str(second), 0, [registered(second)]))
    with pytest.raises(ConcurrencyConflict) as raised:
        async with db.begin() as conn:
            # one transaction, two streams: the second is stale, so neither may be written
            await store.append(conn, Append(str(first), 0, [registered(first)]), Append(str(second), 0, [registered()]))
    assert raised.value.stream_id == str(second)
    async with db.read() as conn:
        assert await store.load(conn, str(first)) == []
        assert len(await store.load(conn, str(second))) == 1


async def test_of_concurrent_appends_at_the_same_version_exactly_one_wins(db: Database, store: EventStore) -> None:
    child = str(uuid.uuid4())
    async with db.read() as conn:
        seen = await store.version(conn, child)  # every writer decided against this same version
    writers = 8

    async def write() -> str:
        try:
            async with db.begin() as conn:
                await store.append(conn, Append(child, seen, [registered(uuid.UUID(child))]))
        except ConcurrencyConflict:
            return "conflict"
        return "won"

    outcomes = await asyncio.gather(*(write() for _ in range(writers)))
    assert sorted(outcomes) == ["conflict"] * (writers - 1) + ["won"]
    async with db.read() as conn:
        assert [e.version for e in await store.load(conn, child)] == [1]


@pytest.mark.postgres
async def test_postgres_writers_racing_inside_open_transactions_one_wins(postgres_url: str) -> None:
    """Both read version 0 in their own transaction, then both insert version 1: the unique key decides."""
    db = Database(postgres_url)
    await db.create(Plumbing.metadata)
    store = EventStore(postgres=True)
    child = str(uuid.uuid4())
    both_read = asyncio.Barrier(2)

    async def write() -> str:
        try:
            async with db.begin() as conn:
                version = await store.version(conn, child)
                await both_read.wait()
                await store.append(conn, Append(child, version, [registered(uuid.UUID(child))]))
        except ConcurrencyConflict:
            return "conflict"
        return "won"

    try:
        assert sorted(await asyncio.gather(write(), write())) == ["conflict", "won"]
    finally:
        await db.dispose()


async def test_old_event_versions_load_as_the_newest(db: Database, store: EventStore) -> None:
    child = uuid.uuid4()
    v1 = {"child_id": str(child), "county_code": "450325", "category": "orphan", "risk_level": "high", "age": 13}
    async with db.begin() as conn:
        await conn.execute(
            insert(EventRecord).values(
                event_id=uuid.uuid4(),
                stream_id=str(child),
                version=1,
                type="registry.child.registered.v1",
                data=v1,
                recorded_at=datetime(2023, 1, 10, tzinfo=UTC),
                correlation_id="c",
            )
        )
    async with db.read() as conn:
        (recorded,) = await store.load(conn, str(child))
    event = recorded.event()
    assert isinstance(event, ChildRegistered)
    assert event.age_band == "12-14"
    assert recorded.type == "registry.child.registered.v1"  # the log itself is never rewritten


async def test_relay_reads_committed_events_in_order_after_a_position(db: Database, store: EventStore) -> None:
    children = [uuid.uuid4() for _ in range(5)]
    for child in children:
        async with db.begin() as conn:
            await store.append(conn, Append(str(child), 0, [registered(child)]))
    # On PostgreSQL the relay reads only below the oldest transaction still open on the server, in any database:
    # another test's transaction (tests run side by side) holds the five back for as long as it is open.
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        async with db.read() as conn:
            everything = await store.committed_after(conn, (-1, 0), 100)
        if len(everything) == len(children) or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    async with db.read() as conn:
        later = await store.committed_after(conn, (everything[1].tx_id, everything[1].position), 2)
    assert [e.stream_id for e in everything] == [str(c) for c in children]
    assert [e.stream_id for e in later] == [str(c) for c in children[2:4]]
    async with db.begin() as conn:
        await store.save_relay_position(conn, "REGISTRY", (later[-1].tx_id, later[-1].position))
    async with db.read() as conn:
        assert await store.relay_position(conn, "REGISTRY") == (later[-1].tx_id, later[-1].position)


@pytest.mark.postgres
async def test_postgres_refuses_an_append_from_a_transaction_older_than_the_streams_last_writer(
    postgres_url: str,
) -> None:
    """The relay orders by transaction id: an older transaction appending a later version must retry."""
    db = Database(postgres_url)
    await db.create(Plumbing.metadata)
    store = EventStore(postgres=True)
    child, elsewhere = uuid.uuid4(), uuid.uuid4()
    try:
        async with db.engine.connect() as older:
            transaction = await older.begin()
            await store.append(older, Append(str(elsewhere), 0, [registered(elsewhere)]))  # takes its id now
            async with db.begin() as conn:
                await store.append(conn, Append(str(child), 0, [registered(child)]))  # a younger one writes v1
            with pytest.raises(OutOfOrder):
                await store.append(older, Append(str(child), 1, [registered(child)]))
            await transaction.rollback()
        async with db.begin() as conn:  # a fresh attempt succeeds
            await store.append(conn, Append(str(child), 1, [registered(child)]))
        async with db.read() as conn:
            assert [e.version for e in await store.load(conn, str(child))] == [1, 2]
    finally:
        await db.dispose()
