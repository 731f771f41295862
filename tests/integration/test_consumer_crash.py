"""A projection consumer killed in the middle of its work, restarted, ends where a clean rebuild ends."""

from __future__ import annotations

import uuid
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy import func, select, update

from backbone.consumer import durable_name
from backbone.database import Database
from backbone.natsserver import NatsServer
from backbone.projection import ProjectionState
from backbone.store import Plumbing
from backbone.streams import ensure_streams
from services.matching.app import SPEC as MATCHING
from services.matching.candidates import CandidateChild, Candidates
from tests.helpers import ServiceProcess, child_event, publish, rebuild_cli, rows, wait_until

EVENTS = 6_000


async def test_killed_mid_batch_then_restarted_equals_a_clean_rebuild(
    database_url: str, nc: NATS, nats_server: NatsServer, tmp_path: Path
) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    risks = ("high", "medium", "low")
    for start in range(0, EVENTS, 3000):
        await publish(js, [child_event(str(uuid.uuid4()), 1, risk=risks[i % 3]) for i in range(start, start + 3000)])
    db = Database(database_url)
    await db.create(Plumbing.metadata, MATCHING.views)

    async def projected() -> int:
        async with db.read() as conn:
            return int(await conn.scalar(select(func.count()).select_from(CandidateChild)) or 0)

    service = ServiceProcess(
        "matching",
        nats_url=nats_server.url,
        database_url=database_url,
        data_dir=tmp_path,
        CONSUMER_ACK_WAIT_SECONDS="3",  # what the killed replica held comes back after this
    )
    service.start()
    try:
        await wait_until(lambda: _at_least(projected, 1500), what="the consumer to be well under way")
        # Hold the projection's state row: the next batch, fetched and unacknowledged, waits inside its transaction.
        async with db.begin() as conn:
            hold = update(ProjectionState).where(ProjectionState.name == Candidates.name)
            await conn.execute(hold.values(batches=ProjectionState.batches))
            await wait_until(lambda: _in_hand(js), what="a batch fetched and waiting in its transaction")
            service.kill()
    finally:
        service.kill()
    killed_at = await projected()
    assert killed_at < EVENTS, "the consumer finished before it could be killed; publish more events"

    service.start()
    try:
        await wait_until(lambda: _at_least(projected, EVENTS), within=60, what="the restarted consumer to catch up")
    finally:
        service.stop()
    after_crash = await rows(db, CandidateChild.__table__)

    rebuilt = await rebuild_cli(
        "matching-candidates", database_url=database_url, nats_url=nats_server.url, data_dir=tmp_path
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"rebuilt matching-candidates: {EVENTS} events" in rebuilt.stderr
    assert await rows(db, CandidateChild.__table__) == after_crash
    assert len(after_crash) == EVENTS
    await db.dispose()


async def _at_least(count, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return bool(await count() >= expected)


async def _in_hand(js: JetStreamContext) -> bool:
    """The live consumer holds messages it has neither acknowledged nor given back."""
    info = await js.consumer_info(Candidates.stream, durable_name(Candidates(), 1))
    return bool(info.num_ack_pending)
