"""Projection consumers: batches, redelivery, poison events, two replicas, rebuilds, a service's own settings."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import Integer, MetaData, String, Table, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backbone.consumer import ProjectionConsumer, durable_name
from backbone.database import Database
from backbone.natsserver import NatsServer
from backbone.projection import Delivered, Projection
from backbone.rebuild import replay
from backbone.runtime import Runtime
from backbone.settings import Settings
from backbone.store import Plumbing
from backbone.streams import ensure_streams
from services.matching.app import SPEC as MATCHING
from tests.helpers import RegistryEvents, ServiceProcess, candidates, child_event, publish, read_stream, wait_until


class TallyBase(DeclarativeBase):
    metadata = MetaData()


class TallyRow(TallyBase):
    """What a test projection saw: each aggregate version, in the order it was applied, and by which replica."""

    __tablename__ = "tally"

    aggregate_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied: Mapped[int] = mapped_column(Integer)
    replica: Mapped[str] = mapped_column(String(8))


class Tally(Projection):
    name: ClassVar[str] = "tests-tally"
    stream: ClassVar[str] = "REGISTRY"
    subjects: ClassVar[list[str]] = ["registry.child.>"]
    views: ClassVar[list[Table]] = [TallyRow.__table__]  # type: ignore[list-item]

    def __init__(self, replica: str = "a", poison: frozenset[tuple[str, int]] = frozenset()) -> None:
        self.replica, self.poison = replica, poison

    async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None:
        applied = int(await conn.scalar(select(TallyRow.applied).order_by(TallyRow.applied.desc()).limit(1)) or 0)
        for delivered in events:
            if (delivered.aggregate_id, delivered.version) in self.poison:
                raise ValueError(f"cannot apply version {delivered.version} of {delivered.aggregate_id}")
            applied += 1
            await conn.execute(
                insert(TallyRow).values(
                    aggregate_id=delivered.aggregate_id,
                    version=delivered.version,
                    applied=applied,
                    replica=self.replica,
                )
            )


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.create(Plumbing.metadata, TallyBase.metadata, MATCHING.views)
    yield database
    await database.dispose()


@pytest.fixture
async def js(nc: NATS) -> JetStreamContext:
    stream = nc.jetstream()
    await ensure_streams(stream)
    return stream


def interleaved(aggregates: list[str], versions: int) -> list:  # type: ignore[type-arg]
    return [child_event(a, v) for v in range(1, versions + 1) for a in aggregates]


async def tally(db: Database) -> dict[str, list[int]]:
    """Per aggregate: its versions in the order they were applied."""
    async with db.read() as conn:
        result = await conn.execute(select(TallyRow.aggregate_id, TallyRow.version).order_by(TallyRow.applied))
        seen: dict[str, list[int]] = {}
        for aggregate_id, version in result:
            seen.setdefault(aggregate_id, []).append(version)
        return seen


async def run_until(consumers: list[ProjectionConsumer], check) -> None:  # type: ignore[no-untyped-def]
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    try:
        await wait_until(check, within=30)
    finally:
        for consumer in consumers:
            consumer.stop()
        await asyncio.wait(tasks, timeout=5)


async def applied_count(db: Database, expected: int) -> bool:
    return sum(map(len, (await tally(db)).values())) >= expected


async def test_batches_apply_every_event_once_in_order_and_redelivery_changes_nothing(
    db: Database, js: JetStreamContext
) -> None:
    aggregates = [str(uuid.uuid4()) for _ in range(3)]
    await publish(js, interleaved(aggregates, 50))
    consumer = ProjectionConsumer(db, js, Tally(), batch_size=64)
    await run_until([consumer], lambda: applied_count(db, 150))
    assert await tally(db) == {a: list(range(1, 51)) for a in aggregates}

    # Every message again, as after a lost ack: a fresh consumer from the first message on.
    await js.delete_consumer("REGISTRY", durable_name(consumer.projection, 1))
    again = ProjectionConsumer(db, js, Tally(), batch_size=64)
    await run_until([again], lambda: _consumer_done(js, again))
    assert await tally(db) == {a: list(range(1, 51)) for a in aggregates}


async def test_an_event_whose_predecessor_is_late_waits_for_it_however_long_and_is_never_dead_lettered(
    db: Database, js: JetStreamContext
) -> None:
    late = str(uuid.uuid4())
    await publish(js, [child_event(late, 2)])  # version 1 is late: its relay could not publish for a while
    consumer = ProjectionConsumer(db, js, Tally(), warn_after_waits=3)
    running = asyncio.create_task(consumer.run())
    try:

        async def waited_long() -> bool:
            try:
                info = await js.consumer_info("REGISTRY", durable_name(consumer.projection, 1))
            except NotFoundError:
                return False  # not created yet
            return (info.num_redelivered or 0) > 0 and info.delivered.consumer_seq > 6  # past 3 waits, twice

        await wait_until(waited_long, what="version 2 to have waited longer than warn_after_waits")
        assert await tally(db) == {}
        await publish(js, [child_event(late, 1)])
        await wait_until(lambda: applied_count(db, 2), what="both versions, in order")
    finally:
        consumer.stop()
        await asyncio.wait_for(running, 5)
    assert await tally(db) == {late: [1, 2]}
    assert (await js.stream_info("DEADLETTER")).state.messages == 0


async def _consumer_done(js: JetStreamContext, consumer: ProjectionConsumer) -> bool:
    try:
        info = await js.consumer_info("REGISTRY", durable_name(consumer.projection, 1))
    except NotFoundError:
        return False  # not created yet
    return (info.num_pending or 0) + (info.num_ack_pending or 0) == 0 and info.delivered.stream_seq > 0


async def test_a_poison_event_is_dead_lettered_and_later_events_still_project(
    db: Database, js: JetStreamContext
) -> None:
    sick, healthy = str(uuid.uuid4()), str(uuid.uuid4())
    await publish(js, interleaved([sick, healthy], 5))
    await js.publish("registry.child.registered", b"{not json", stream="REGISTRY")
    consumer = ProjectionConsumer(db, js, Tally(poison=frozenset({(sick, 3)})), batch_size=4, max_deliveries=3)

    async def settled() -> bool:
        dead = (await js.stream_info("DEADLETTER")).state.messages
        return dead == 2 and await applied_count(db, 9)

    await run_until([consumer], settled)
    assert await tally(db) == {sick: [1, 2, 4, 5], healthy: [1, 2, 3, 4, 5]}
    dead = await read_stream(js, "DEADLETTER")
    by_error = sorted(dead, key=lambda m: m.headers["Error"])
    assert "cannot apply version 3" in by_error[1].headers["Error"]
    assert by_error[1].headers["Deliveries"] == "3"
    assert by_error[1].headers["Original-Subject"] == "registry.child.registered"
    assert by_error[0].data == b"{not json"  # kept byte for byte, for an operator to inspect
    assert "MalformedMessage" in by_error[0].headers["Error"]


async def test_two_replicas_keep_each_aggregates_order(db: Database, js: JetStreamContext) -> None:
    aggregates = [str(uuid.uuid4()) for _ in range(10)]
    await publish(js, interleaved(aggregates, 60))
    replicas = [ProjectionConsumer(db, js, Tally(replica=r), batch_size=7) for r in ("a", "b")]
    await run_until(replicas, lambda: applied_count(db, 600))
    assert await tally(db) == {a: list(range(1, 61)) for a in aggregates}
    async with db.read() as conn:
        workers = set((await conn.execute(select(TallyRow.replica).distinct())).scalars())
    assert workers == {"a", "b"}  # both replicas really did share the work


def runtime_for(db: Database, nc: NATS) -> Runtime:
    runtime = Runtime(MATCHING, Settings(database_url=db.url.render_as_string(hide_password=False)))
    runtime.db, runtime.nc = db, nc
    return runtime


async def test_rebuild_replays_the_stream_to_identical_rows(db: Database, js: JetStreamContext, nc: NATS) -> None:
    from services.matching.candidates import CandidateChild, Candidates

    await publish(js, [child_event(str(uuid.uuid4()), 1, risk=r) for r in ("high", "medium", "low") * 400])
    runtime = runtime_for(db, nc)
    table = CandidateChild.__table__
    consumer = ProjectionConsumer(db, js, Candidates())

    async def engaged() -> bool:
        async with db.read() as conn:
            return len((await conn.execute(select(table))).all()) == 1200

    await run_until([consumer], engaged)
    async with db.read() as conn:
        before = sorted((await conn.execute(select(table))).all())
    count, _ = await replay(runtime, Candidates())
    async with db.read() as conn:
        after = sorted((await conn.execute(select(table))).all())
    assert count == 1200
    assert after == before


async def test_a_rebuild_whose_nats_server_restarts_half_way_still_replays_every_event_once(
    db: Database, js: JetStreamContext, nc: NATS, nats_server: NatsServer
) -> None:
    # The replay's consumer lives in the server's memory and its requests in flight: a restart loses both, and
    # messages on the way. The replay must notice (no event while some remain), start again just past the last event
    # it received, and end with the same rows as an uninterrupted one; each event applied once.
    from services.matching.candidates import CandidateChild, Candidates

    await publish(js, [child_event(str(uuid.uuid4()), 1, risk=r) for r in ("high", "medium", "low") * 400])
    table = CandidateChild.__table__
    await replay(runtime_for(db, nc), Candidates())
    async with db.read() as conn:
        uninterrupted = sorted((await conn.execute(select(table))).all())
    restarts = 0

    def restart_once(applied: int, total: int, seconds: float) -> None:
        nonlocal restarts
        if restarts == 0 and applied < total:
            restarts += 1
            nats_server.kill()  # blocks the replay meanwhile: it cannot have finished before the server is back
            nats_server.start()

    count, _ = await replay(runtime_for(db, nc), Candidates(), batch_size=100, progress=restart_once)
    async with db.read() as conn:
        after = sorted((await conn.execute(select(table))).all())
    assert restarts == 1
    assert count == 1200
    assert after == uninterrupted


async def test_a_rebuild_under_live_traffic_hands_over_without_losing_or_repeating(
    db: Database, js: JetStreamContext, nc: NATS
) -> None:
    aggregates = [str(uuid.uuid4()) for _ in range(20)]
    await publish(js, interleaved(aggregates, 50))
    replicas = [ProjectionConsumer(db, js, Tally(replica=r), batch_size=50, fetch_timeout=0.2) for r in ("a", "b")]
    live = [asyncio.create_task(c.run()) for c in replicas]

    async def more_events() -> None:  # versions 51..80 keep arriving during the rebuild
        for version in range(51, 81):
            await publish(js, [child_event(a, version) for a in aggregates])
            await asyncio.sleep(0.02)

    try:
        await wait_until(lambda: applied_count(db, 1000), within=30)
        arriving = asyncio.create_task(more_events())
        replayed, _ = await replay(runtime_for(db, nc), Tally(replica="r"))
        await arriving
        # And some after the rebuild handed over (a fast replay may have read all of 51..80 itself): these only the
        # live consumers can apply.
        await publish(js, [child_event(a, version) for version in range(81, 86) for a in aggregates])
        await wait_until(lambda: applied_count(db, 1700), within=60, what="the live consumers to take over")
        await asyncio.sleep(0.5)  # a repeat would show up now
    finally:
        for consumer in replicas:
            consumer.stop()
        await asyncio.wait(live, timeout=5)
    assert replayed >= 1000
    assert await tally(db) == {a: list(range(1, 86)) for a in aggregates}
    async with db.read() as conn:
        workers = set((await conn.execute(select(TallyRow.replica).distinct())).scalars())
    assert "r" in workers
    assert workers & {"a", "b"}


class Flaky(Tally):
    """Fails as an unreachable database would, a few times, then works."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("database is away"))
        await super().apply(conn, events)


async def test_an_unreachable_database_holds_the_batch_and_dead_letters_nothing(
    db: Database, js: JetStreamContext
) -> None:
    aggregate = str(uuid.uuid4())
    await publish(js, interleaved([aggregate], 3))
    consumer = ProjectionConsumer(db, js, Flaky(failures=4), max_deliveries=2, ack_wait=2.0)
    await run_until([consumer], lambda: applied_count(db, 3))
    assert await tally(db) == {aggregate: [1, 2, 3]}
    assert (await js.stream_info("DEADLETTER")).state.messages == 0


async def test_an_event_of_an_unknown_type_is_dead_lettered_without_blocking_its_aggregate(
    db: Database, js: JetStreamContext
) -> None:
    aggregate = str(uuid.uuid4())
    newer = child_event(aggregate, 2).model_copy(update={"type": "registry.child.renamed.v9"})
    await publish(js, [child_event(aggregate, 1), newer, child_event(aggregate, 3)])
    consumer = ProjectionConsumer(db, js, Tally(), max_deliveries=2)
    await run_until([consumer], lambda: applied_count(db, 2))
    assert await tally(db) == {aggregate: [1, 3]}
    (dead,) = await read_stream(js, "DEADLETTER")
    assert "registry.child.renamed.v9" in dead.headers["Error"]


async def test_a_rebuild_reads_an_aggregate_whose_events_sit_out_of_order_in_the_stream(
    db: Database, js: JetStreamContext, nc: NATS
) -> None:
    early, late = str(uuid.uuid4()), str(uuid.uuid4())
    # `early`: version 2 was stored before version 1 (a publish retried after a lost connection);
    # `late`: version 2 is the last event when the replay catches up, version 1 comes after it.
    await publish(js, [child_event(early, 2), child_event(early, 1), child_event(early, 3), child_event(late, 2)])
    runtime = runtime_for(db, nc)
    replayed, _ = await replay(runtime, Tally(replica="r"))
    assert replayed == 4
    live = runtime.consumer(Tally(replica="a"))
    durable = await js.consumer_info("REGISTRY", durable_name(live.projection, 2))
    assert durable.config.max_deliver == live.config(2).max_deliver  # the live bounds, not the replay's
    await publish(js, [child_event(late, 1), child_event(late, 3)])
    await run_until([live], lambda: applied_count(db, 6))
    assert await tally(db) == {early: [1, 2, 3], late: [1, 2, 3]}
    assert (await js.stream_info("DEADLETTER")).state.messages == 0


class WiderTally(Tally):
    """The same projection in a newer version that follows volunteers as well."""

    subjects: ClassVar[list[str]] = ["registry.child.>", "registry.volunteer.>"]


async def test_a_projection_that_follows_more_subjects_waits_for_a_rebuild_instead_of_missing_events(
    db: Database, js: JetStreamContext, nc: NATS
) -> None:
    children, volunteer = [str(uuid.uuid4()) for _ in range(3)], str(uuid.uuid4())
    await publish(js, [child_event(c, 1) for c in children])
    await run_until([ProjectionConsumer(db, js, Tally())], lambda: applied_count(db, 3))
    await publish(js, [child_event(volunteer, 1)], subject="registry.volunteer.registered")

    newer = ProjectionConsumer(db, js, WiderTally())
    await run_until([newer], lambda: _blocked(newer))

    assert set(await tally(db)) == set(children)  # the old durable would never deliver the volunteer
    runtime = runtime_for(db, nc)
    runtime.consumers.append(newer)
    assert "projection tests-tally" in await runtime.problems()  # not ready: an operator must act
    count, _ = await replay(runtime, WiderTally())
    assert count == 4
    assert set(await tally(db)) == {*children, volunteer}
    later = str(uuid.uuid4())
    await publish(js, [child_event(later, 1)], subject="registry.volunteer.registered")
    rebuilt = ProjectionConsumer(db, js, WiderTally())
    await run_until([rebuilt], lambda: applied_count(db, 5))
    assert rebuilt.blocked is None
    assert set(await tally(db)) == {*children, volunteer, later}


async def _blocked(consumer: ProjectionConsumer) -> bool:
    return consumer.blocked is not None


async def test_consumer_max_deliveries_set_for_the_service_is_how_often_its_durable_consumer_tries_an_event(
    nats_server: NatsServer, nc: NATS, database_url: str, tmp_path: Path
) -> None:
    """CONSUMER_MAX_DELIVERIES as an operator sets it: an event matching cannot read is tried exactly that many
    times by the service's durable consumer, then dead-lettered, and the events after it still project."""
    matching = ServiceProcess(
        "matching", nats_url=nats_server.url, database_url=database_url, data_dir=tmp_path, CONSUMER_MAX_DELIVERIES="2"
    ).start()
    try:
        js = nc.jetstream()
        unreadable = child_event(str(uuid.uuid4()), 1).model_copy(update={"data": {"county_code": "450325"}})
        await publish(js, [unreadable])
        await RegistryEvents(js).child("low")
        async with httpx.AsyncClient(base_url=matching.url) as http:
            await candidates(http, "children", 1)  # the child published after it is in the view: nothing held up

        async def dead_lettered() -> bool:
            return (await js.stream_info("DEADLETTER")).state.messages > 0

        await wait_until(dead_lettered, what="the unreadable event in DEADLETTER")
        (dead,) = await read_stream(js, "DEADLETTER")
        assert dead.headers["Projection"] == "matching-candidates"
        assert dead.headers["Deliveries"] == "2"
        sequence = int(dead.headers["Original-Sequence"])
        tries = [
            line["deliveries"]
            for line in _log(matching)
            if line.get("event") == "consumer.event_failed" and line.get("stream_sequence") == sequence
        ]
        assert tries == [1, 2]
        durable = await js.consumer_info("REGISTRY", "matching-candidates-g1")
        assert durable.config.max_deliver == -1  # the server never gives up on an event before the service does
    finally:
        matching.kill()


def _log(service: ServiceProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in service.log.read_text().splitlines() if line.startswith("{")]
