"""A 3-node cluster under node loss: a restarted stream leader catches up, and a second loss does not stall writes.

Real nats-server processes from the wheel; the relay and a projection consumer of this process write and read each
of the three contexts' streams while nodes are killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from nats.aio.client import Client as NATS
from sqlalchemy import Integer, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backbone.consumer import ProjectionConsumer
from backbone.database import Database
from backbone.projection import Delivered, Projection
from backbone.relay import Relay
from backbone.store import Append, EventStore, Plumbing
from contracts import Event
from contracts.matching import ChildVisitDue
from contracts.notifications import NoticeRecorded
from contracts.registry import ChildRegistered
from deploy.natscluster import NatsCluster
from tests.faults.cluster import copies, ensured, leader_of, node_named, stored_at_least
from tests.helpers import wait_until


def child_registered(aggregate: uuid.UUID) -> Event:
    return ChildRegistered(
        child_id=aggregate, county_code="450325", category="orphan", risk_level="high", age_band="9-11"
    )


def visit_due(aggregate: uuid.UUID) -> Event:
    return ChildVisitDue(
        child_id=aggregate, county_code="450325", risk_level="high", due_at=None, because="left_programme"
    )


def notice_recorded(aggregate: uuid.UUID) -> Event:
    return NoticeRecorded(
        notice_id=aggregate,
        recipient_id="county:450325:child_directors",
        reason="overdue_escalated",
        channels=["inbox"],
        urgency="urgent",
        county_code="450325",
        about_id=aggregate,
        cause_event_id=uuid.uuid4(),
    )


STREAMS: dict[str, tuple[str, Callable[[uuid.UUID], Event]]] = {
    "REGISTRY": ("registry", child_registered),
    "MATCHING": ("matching", visit_due),
    "NOTIFICATIONS": ("notifications", notice_recorded),
}


class SeenBase(DeclarativeBase):
    metadata = MetaData()


class SeenRow(SeenBase):
    __tablename__ = "seen"

    aggregate_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)


def seen_projection(stream: str, context: str) -> Projection:
    class Seen(Projection):
        """The view under test: one row per event applied, which the consumer hands over in each aggregate's order."""

        name: ClassVar[str] = f"tests-seen-{context}"
        subjects: ClassVar[list[str]] = [f"{context}.>"]
        views: ClassVar[list[Table]] = [SeenRow.__table__]  # type: ignore[list-item]

        async def apply(self, conn: AsyncConnection, events: Sequence[Delivered]) -> None:
            if not events:  # a batch of redeliveries only: nothing new (an empty executemany inserts a NULL row)
                return
            await conn.execute(
                insert(SeenRow), [{"aggregate_id": d.aggregate_id, "version": d.version} for d in events]
            )

    Seen.stream = stream
    return Seen()


class Writer:
    """Appends to the log as a busy service would: each transaction starts new aggregates and gives the ones the
    previous transaction started their second version, so an aggregate's events lie in different batches."""

    def __init__(self, db: Database, store: EventStore, relay: Relay, event: Callable[[uuid.UUID], Event]) -> None:
        self.db, self.store, self.relay, self.event = db, store, relay, event
        self.written: list[tuple[str, int]] = []  # (aggregate, version) of every event, in log order
        self._open: list[uuid.UUID] = []  # started by the last transaction, at version 1

    async def write(self, count: int, per_transaction: int = 10) -> None:
        for _ in range(0, count, per_transaction):
            started = [uuid.uuid4() for _ in range(per_transaction)]
            appends = [Append(str(a), 1, [self.event(a)]) for a in self._open]
            appends += [Append(str(a), 0, [self.event(a)]) for a in started]
            async with self.db.begin() as conn:
                await self.store.append(conn, *appends)
            self.written += [(str(a), 2) for a in self._open] + [(str(a), 1) for a in started]
            self._open = started
            self.relay.wake()
            await asyncio.sleep(0.01)

    async def write_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.write(100, per_transaction=25)


@pytest.mark.parametrize("stream", list(STREAMS))
async def test_a_killed_stream_leader_catches_up_and_a_second_loss_does_not_stall_writes(
    stream: str, cluster: NatsCluster, nc: NATS, tmp_path: Path
) -> None:
    context, event = STREAMS[stream]
    js = nc.jetstream(timeout=2.0)
    await wait_until(lambda: ensured(js), within=30, what="the streams to be created")
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'service.db'}")
    await db.create(Plumbing.metadata, SeenBase.metadata)
    store = EventStore(postgres=False)
    relay = Relay(db, store, nc, stream=stream, source=context, ack_timeout=2.0)
    view = ProjectionConsumer(db, js, seen_projection(stream, context), fetch_timeout=0.5)
    writer = Writer(db, store, relay, event)
    tasks = [asyncio.create_task(relay.run()), asyncio.create_task(view.run())]
    try:
        await writer.write(100)
        stop_writing = asyncio.Event()
        writing = asyncio.create_task(writer.write_until(stop_writing))
        await wait_until(lambda: stored_at_least(js, stream, 1500), within=30, what="writes to be under way")
        first = node_named(cluster, await leader_of(js, stream))
        first.kill()  # SIGKILL while publishes are in flight
        await asyncio.sleep(5)  # a new leader is elected meanwhile; writes go on
        first.start()
        await asyncio.sleep(3)
        stop_writing.set()
        await writing

        async def every_copy_complete() -> bool:
            return set(copies(cluster, stream).values()) == {(len(writer.written), len(writer.written))}

        await wait_until(every_copy_complete, within=30, what=f"every node's copy of {stream} to hold every event")

        # Losing another node must leave a quorum of two caught-up copies: new writes go on within seconds.
        second = await leader_of(js, stream)
        if second == first.name:
            second = next(node.name for node in cluster.nodes if node.name != first.name)
        node_named(cluster, second).kill()
        before = len(writer.written)
        await writer.write(50)
        new = set(writer.written[before:])
        await wait_until(lambda: _seen(db, new), within=20, what="writes after the second loss to reach the view")
        # Events delivered just before the kill may wait for their redelivery (ack wait); none is lost.
        await wait_until(lambda: _seen(db, set(writer.written)), within=60, what="every write to reach the view")
        assert set(copies(cluster, stream).values()) == {(len(writer.written), len(writer.written))}
    finally:
        relay.stop()
        view.stop()
        await asyncio.wait(tasks, timeout=5)
        await db.dispose()


async def _seen(db: Database, events: set[tuple[str, int]]) -> bool:
    """Whether every one of `events` (aggregate, version) is in the view."""
    async with db.read() as conn:
        found = {(row.aggregate_id, row.version) for row in await conn.execute(select(SeenRow))}
    return events <= found
