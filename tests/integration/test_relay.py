"""The relay: the SQL log reaches JetStream in order, once, through crashes, outages and late commits."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from prometheus_client import REGISTRY as METRICS
from sqlalchemy import delete
from sqlalchemy.engine import make_url

from backbone.database import Database
from backbone.natsserver import NatsServer
from backbone.relay import Relay
from backbone.store import Append, EventRecord, EventStore, Plumbing
from backbone.streams import ensure_streams
from contracts.matching import ChildVisitDue
from services.registry.app import SPEC as REGISTRY
from tests.helpers import ServiceProcess, read_stream, wait_until
from tests.integration.test_event_store import registered


async def append_children(db: Database, store: EventStore, count: int, per_child: int = 1) -> list[str]:
    """`count` children, each with `per_child` events, one transaction per child; returns event ids in order."""
    ids = []
    for _ in range(count):
        child = uuid.uuid4()
        async with db.begin() as conn:
            ids += map(str, await store.append(conn, Append(str(child), 0, [registered(child)] * per_child)))
    return ids


def visit_due(child: uuid.UUID) -> ChildVisitDue:
    return ChildVisitDue(child_id=child, county_code="450325", risk_level="high", due_at=None, because="left_programme")


async def published(relay: Relay, count: int, within: float = 30.0) -> int:
    """Publish until `count` events went out (or time is up): on PostgreSQL a transaction still open anywhere on the
    server, another test's or a backup's, holds publication back for a while (never loses it)."""
    total = 0
    deadline = asyncio.get_running_loop().time() + within
    while total < count and asyncio.get_running_loop().time() < deadline:
        total += await relay.publish_pending()
        if total < count:
            await asyncio.sleep(0.1)
    return total


def msg_ids(msgs: list) -> list[str]:  # type: ignore[type-arg]
    return [m.headers["Nats-Msg-Id"] for m in msgs]


async def test_relay_publishes_in_commit_order_once_even_when_it_starts_over(db: Database, nc: NATS) -> None:
    store = EventStore(postgres=not db.is_sqlite)
    js = nc.jetstream()
    await ensure_streams(js)
    ids = await append_children(db, store, 40, per_child=30)  # 1,200 events: several batches
    relay = Relay(db, store, nc, stream="REGISTRY", source="registry", batch_size=500)
    assert await published(relay, 1200) == 1200
    stored = await read_stream(js, "REGISTRY")
    assert msg_ids(stored) == ids
    assert [m.subject for m in stored] == ["registry.child.registered"] * 1200

    async with db.begin() as conn:  # forget the position, as if it had never been recorded
        await store.save_relay_position(conn, "REGISTRY", (-1, 0))
    assert await published(relay, 1200) == 1200  # published again from the start: the duplicate window drops all
    assert msg_ids(await read_stream(js, "REGISTRY")) == ids

    await js.delete_stream("REGISTRY")  # the stream's store is lost: the log fills it again, in order
    await ensure_streams(js)
    assert await published(relay, 1200) == 1200
    assert msg_ids(await read_stream(js, "REGISTRY")) == ids


async def test_events_appended_while_nats_is_down_arrive_when_it_is_back(
    db: Database, nc: NATS, nats_server: NatsServer
) -> None:
    store = EventStore(postgres=not db.is_sqlite)
    js = nc.jetstream()
    await ensure_streams(js)
    relay = Relay(db, store, nc, stream="REGISTRY", source="registry", ack_timeout=1.0)
    running = asyncio.create_task(relay.run())
    try:
        ids = await append_children(db, store, 50)
        await wait_until(lambda: _count(js, 50), what="the first 50 events")
        nats_server.stop()
        ids += await append_children(db, store, 50)  # the relay keeps failing meanwhile
        await asyncio.sleep(1.5)
        nats_server.start()
        ids += await append_children(db, store, 50)
        await wait_until(lambda: _count(js, 150), within=30, what="all 150 events after the outage")
    finally:
        relay.stop()
        await asyncio.wait_for(running, 10)
    assert msg_ids(await read_stream(js, "REGISTRY")) == ids


async def _count(js, expected: int) -> bool:  # type: ignore[no-untyped-def]
    try:
        return bool((await js.stream_info("REGISTRY")).state.messages >= expected)
    except Exception:
        return False


@pytest.mark.postgres
async def test_relay_never_skips_an_event_whose_transaction_commits_late(postgres_url: str, nc: NATS) -> None:
    """A writer takes a lower position and holds its transaction open; a later writer commits first."""
    db = Database(postgres_url)
    await db.create(Plumbing.metadata)
    store = EventStore(postgres=True)
    js = nc.jetstream()
    await ensure_streams(js)
    relay = Relay(db, store, nc, stream="REGISTRY", source="registry")
    early, late = uuid.uuid4(), uuid.uuid4()
    try:
        async with db.engine.connect() as held:
            transaction = await held.begin()
            await store.append(held, Append(str(early), 0, [registered(early)]))  # lower position, not committed
            async with db.begin() as conn:
                await store.append(conn, Append(str(late), 0, [registered(late)]))  # higher position, committed
            assert await relay.publish_pending() == 0  # holding back: an older transaction is still open
            await transaction.commit()
        assert await published(relay, 2) == 2
        subjects = [m.headers["Nats-Msg-Id"] for m in await read_stream(js, "REGISTRY")]
        async with db.read() as conn:
            expected = [str(e.event_id) for s in (early, late) for e in await store.load(conn, str(s))]
        assert subjects == expected
    finally:
        await db.dispose()


async def test_relay_killed_between_publishing_and_recording_its_position(
    database_url: str, nc: NATS, nats_server: NatsServer, tmp_path: Path
) -> None:
    """The registry process publishes a batch, is blocked from recording how far it got, and is killed."""
    db = Database(database_url)
    await db.create(Plumbing.metadata, REGISTRY.views)
    store = EventStore(postgres=not db.is_sqlite)
    js = nc.jetstream()
    await ensure_streams(js)
    ids = await append_children(db, store, 60)
    service = ServiceProcess("registry", nats_url=nats_server.url, database_url=database_url, data_dir=tmp_path)
    release = await _block_relay_position_writes(database_url)
    try:
        service.start()
        await wait_until(lambda: _count(js, 60), what="the batch to be published")
        service.kill()
    finally:
        await release()
    async with db.read() as conn:
        assert await store.relay_position(conn, "REGISTRY") == (-1, 0)  # it died before recording anything
    ids += await append_children(db, store, 20)
    service.start()
    try:
        await wait_until(lambda: _count(js, 80), what="the restarted relay to catch up")
        await asyncio.sleep(0.5)  # give a wrong re-publication the time to show up
        assert msg_ids(await read_stream(js, "REGISTRY")) == ids  # every event once, in order
    finally:
        service.stop()
        await db.dispose()


async def _block_relay_position_writes(database_url: str):  # type: ignore[no-untyped-def]
    """Hold a lock that lets the relay read and publish but not record its position; returns the release."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        lock = sqlite3.connect(url.database, timeout=30, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the one writer slot; readers still read (WAL)

        async def release_sqlite() -> None:
            lock.execute("ROLLBACK")
            lock.close()

        return release_sqlite
    conn = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    transaction = conn.transaction()
    await transaction.start()
    await conn.execute("LOCK TABLE relay_positions IN EXCLUSIVE MODE")  # plain reads still pass

    async def release_postgres() -> None:
        await transaction.rollback()
        await conn.close()

    return release_postgres


class CountingRelay(Relay):
    published = 0

    async def _send(self, js, batch):  # type: ignore[no-untyped-def]
        self.published += len(batch)
        return await super()._send(js, batch)


async def test_one_relay_publishes_at_a_time_and_another_takes_over_when_it_stops(db: Database, nc: NATS) -> None:
    store = EventStore(postgres=not db.is_sqlite)
    js = nc.jetstream()
    await ensure_streams(js)
    first, second = (CountingRelay(db, store, nc, stream="REGISTRY", source="registry") for _ in range(2))
    running = {relay: asyncio.create_task(relay.run()) for relay in (first, second)}
    try:
        ids = await append_children(db, store, 30)
        await wait_until(lambda: _count(js, 30), what="the first events")
        leader, follower = (first, second) if first.published else (second, first)
        assert (leader.published, follower.published) == (30, 0)
        leader.stop()
        await asyncio.wait_for(running[leader], 5)
        ids += await append_children(db, store, 30)
        await wait_until(lambda: _count(js, 60), what="the follower to take over")
        assert follower.published == 30
    finally:
        for relay, task in running.items():
            relay.stop()
            await asyncio.wait_for(task, 5)
    assert msg_ids(await read_stream(js, "REGISTRY")) == ids


async def test_a_relay_waiting_for_its_turn_stops_when_told(db: Database, nc: NATS) -> None:
    store = EventStore(postgres=not db.is_sqlite)
    js = nc.jetstream()
    await ensure_streams(js)
    leader, waiting = (CountingRelay(db, store, nc, stream="REGISTRY", source="registry") for _ in range(2))
    leading = asyncio.create_task(leader.run())
    await append_children(db, store, 5)
    await wait_until(lambda: _count(js, 5), what="the first relay to lead and publish")
    queued = asyncio.create_task(waiting.run())
    await append_children(db, store, 5)
    await wait_until(lambda: _count(js, 10), what="the leader to publish while the other waits")
    assert (leader.published, waiting.published) == (10, 0)
    assert not queued.done()  # it waits for the role, which the leader never gives up on its own
    waiting.stop()
    await asyncio.wait_for(queued, 10)  # would wait for ever if stopping did not reach a relay waiting its turn
    assert waiting.published == 0
    leader.stop()
    await asyncio.wait_for(leading, 5)


async def test_a_foreign_message_in_the_stream_does_not_stop_the_relay(db: Database, nc: NATS) -> None:
    store = EventStore(postgres=not db.is_sqlite)
    js = nc.jetstream()
    await ensure_streams(js)
    relay = Relay(db, store, nc, stream="REGISTRY", source="registry", ack_timeout=1.0)
    ids = await append_children(db, store, 10)
    assert await published(relay, 10) == 10
    # Someone else's message lands last: the relay publishes on after it (no expected-last checks: see the relay).
    await js.publish("registry.child.noted", b"{}", headers={"Nats-Msg-Id": "foreign"})
    later = await append_children(db, store, 10)
    running = asyncio.create_task(relay.run())
    try:
        await wait_until(lambda: _count(js, 21), what="the relay to publish after the foreign message")
        await asyncio.sleep(0.3)
    finally:
        relay.stop()
        await asyncio.wait_for(running, 5)
    assert msg_ids(await read_stream(js, "REGISTRY")) == [*ids, "foreign", *later]


async def test_an_event_the_stream_refuses_stalls_the_relay_visibly_and_nothing_after_it_is_skipped(
    db: Database, nc: NATS
) -> None:
    store = EventStore(postgres=not db.is_sqlite)
    js = nc.jetstream()
    await ensure_streams(js)
    before = await append_children(db, store, 5)
    async with db.begin() as conn:  # an event of another context in this log: the REGISTRY stream refuses it
        stray = uuid.uuid4()
        await store.append(conn, Append(str(stray), 0, [visit_due(stray)]))
    after = await append_children(db, store, 5)
    relay = Relay(db, store, nc, stream="REGISTRY", source="registry", ack_timeout=1.0, stall_after=0.5)
    running = asyncio.create_task(relay.run())
    try:
        await wait_until(lambda: _true(relay.stalled is not None), what="the relay to report itself stalled")
        assert sample("relay_stalled") == 1
        assert sample("relay_failures_total") >= 2
        async with db.read() as conn:  # the acknowledged prefix is recorded, and nothing past the refused event
            position = await store.relay_position(conn, "REGISTRY")
            assert position == await store.position_of(conn, before[-1])
        async with db.begin() as conn:  # an operator takes the stray event out of the log
            await conn.execute(delete(EventRecord).where(EventRecord.stream_id == str(stray)))
        await wait_until(lambda: _true(relay.stalled is None), what="the relay to recover")
        await wait_until(lambda: _count(js, 10), what="every event after the refused one")
    finally:
        relay.stop()
        await asyncio.wait_for(running, 5)
    assert sample("relay_stalled") == 0
    assert msg_ids(await read_stream(js, "REGISTRY")) == [*before, *after]  # the ones sent with it: once each


def sample(name: str) -> float | None:
    return METRICS.get_sample_value(name, {"stream": "REGISTRY"})


async def _true(value: bool) -> bool:
    return value


async def test_after_a_refusal_only_the_refused_event_is_sent_again_not_the_rest_of_its_batch(
    db: Database, nc: NATS, nats_server: NatsServer
) -> None:
    store = EventStore(postgres=not db.is_sqlite)
    js = nc.jetstream()
    await ensure_streams(js)
    async with db.begin() as conn:
        stray = uuid.uuid4()
        (refused,) = await store.append(conn, Append(str(stray), 0, [visit_due(stray)]))
    after = await append_children(db, store, 5)

    async def all_readable() -> bool:  # another test's open transaction on PostgreSQL holds newer events back a while
        async with db.read() as conn:
            return len(await store.committed_after(conn, (-1, 0), 10)) == 6

    await wait_until(all_readable, what="the six events readable by the relay, so they go out as one batch")
    sent: list[str] = []

    async def tap(msg: Msg) -> None:
        sent.append((msg.headers or {}).get("Nats-Msg-Id", ""))

    listener = await nats.connect(nats_server.url)
    await listener.subscribe("registry.>", cb=tap)
    await listener.subscribe("matching.>", cb=tap)
    await listener.flush()
    relay = Relay(db, store, nc, stream="REGISTRY", source="registry", ack_timeout=1.0, stall_after=60)
    running = asyncio.create_task(relay.run())
    try:
        await wait_until(lambda: _true(sent.count(str(refused)) >= 4), what="the refused event tried again and again")
    finally:
        relay.stop()
        await asyncio.wait_for(running, 5)
        await listener.close()
    assert all(sent.count(event_id) == 1 for event_id in after)  # each sent once: no copies past the window


async def test_a_stream_restored_from_a_backup_gets_the_events_it_lacks_from_the_log(db: Database, nc: NATS) -> None:
    store = EventStore(postgres=not db.is_sqlite)
    js = nc.jetstream()
    await ensure_streams(js)
    ids = await append_children(db, store, 20)
    relay = Relay(db, store, nc, stream="REGISTRY", source="registry")
    assert await published(relay, 20) == 20
    backup = (await read_stream(js, "REGISTRY"))[:12]  # taken when the stream held the first 12
    await js.delete_stream("REGISTRY")
    await ensure_streams(js)
    for msg in backup:
        await js.publish(msg.subject, msg.data, headers=msg.headers)
    assert await published(relay, 8) == 8  # from the stream's last event on, though its position says 20
    assert msg_ids(await read_stream(js, "REGISTRY")) == ids


async def test_a_replica_that_stalled_is_not_stalled_while_another_one_publishes(
    db: Database, nc: NATS, nats_server: NatsServer
) -> None:
    store = EventStore(postgres=not db.is_sqlite)
    await ensure_streams(nc.jetstream())
    await append_children(db, store, 3)
    gone = await nats.connect(nats_server.url)
    await gone.close()  # this replica's NATS connection is lost
    stalled = Relay(db, store, gone, stream="REGISTRY", source="registry", stall_after=0.0)
    first = asyncio.create_task(stalled.run())
    try:
        await wait_until(lambda: _true(stalled.stalled is not None), what="the replica to stall")
    finally:
        stalled.stop()
        await asyncio.wait_for(first, 5)
    leader = Relay(db, store, nc, stream="REGISTRY", source="registry")
    leading = asyncio.create_task(leader.run())
    await wait_until(lambda: _count(nc.jetstream(), 3), what="the other replica to publish")
    stalled._stopping.clear()
    second = asyncio.create_task(stalled.run())
    try:
        await wait_until(lambda: _true(stalled.stalled is None), what="the waiting replica to drop its stall")
        assert sample("relay_stalled") == 0
    finally:
        for relay, task in ((stalled, second), (leader, leading)):
            relay.stop()
            await asyncio.wait_for(task, 5)
