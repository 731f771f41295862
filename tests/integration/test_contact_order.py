"""On PostgreSQL the relay publishes in transaction order, so the event store refuses an append behind a younger
transaction. A visit whose transaction began first and then waited for the visit timer, which moved the same child's
schedule meanwhile, is the server's own race: it is written again, and the volunteer sees it recorded."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, text

from backbone.clock import SettableClock
from backbone.database import Database
from services.matching.candidates import KnownCampaign
from services.matching.schedule import ScheduleRecord
from tests.helpers import RegistryEvents, campaign, wait_until
from tests.integration.test_contact_ids import as_volunteer, visit
from tests.integration.test_engagement import DAYS, XINGAN, paired_child

POSTGRES_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@POSTGRES_ONLY
async def test_a_visit_that_waited_for_the_timer_on_the_same_schedule_is_recorded(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock, database_url: str
) -> None:
    volunteer, proposal = await paired_child(matching, registry_events)
    child, campaign_id = uuid.UUID(proposal["child_id"]), str(uuid.uuid4())
    await registry_events.emit(campaign(campaign_id, XINGAN))
    db = Database(database_url)
    try:
        await wait_until(lambda: _known(db, campaign_id), what="the campaign in matching's view")
        async with db.engine.connect() as holder:
            # The visit's transaction holds the child's row (and so has its transaction id), then waits here to
            # check its campaign.
            await holder.begin()
            await holder.execute(text(f"LOCK TABLE {KnownCampaign.__tablename__} IN ACCESS EXCLUSIVE MODE"))
            sent = asyncio.create_task(
                matching.post(
                    f"/pairings/{proposal['pairing_id']}/contacts",
                    json=visit(clock.now() - timedelta(hours=1), campaign_id=campaign_id),
                    headers=as_volunteer(volunteer),
                )
            )
            await wait_until(lambda: _waiting_with_an_id(db), what="the visit to wait, its transaction id taken")
            # Meanwhile the visit comes due and the timer, a younger transaction, escalates it.
            clock.set(clock.now() + timedelta(days=DAYS["high"] + 1))
            await wait_until(lambda: _escalated(db, child), what="the timer to raise the overdue visit")
            await holder.rollback()
        answer = await sent
        assert answer.status_code == 201, answer.text
        async with db.read() as conn:
            last = (await conn.execute(select(ScheduleRecord).where(ScheduleRecord.child_id == child))).one()
        assert last.last_in_person_at is not None  # the visit moved the schedule the timer had moved before it
    finally:
        await db.dispose()


async def _known(db: Database, campaign_id: str) -> bool:
    async with db.read() as conn:
        return bool(await conn.scalar(select(func.count()).where(KnownCampaign.campaign_id == campaign_id)))


async def _waiting_with_an_id(db: Database) -> bool:
    query = """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND wait_event_type = 'Lock' AND backend_xid IS NOT NULL"""
    async with db.read() as conn:
        return bool(await conn.scalar(text(query)))


async def _escalated(db: Database, child: uuid.UUID) -> bool:
    query = select(func.count()).where(ScheduleRecord.child_id == child, ScheduleRecord.overdue_for.is_not(None))
    async with db.read() as conn:
        return bool(await conn.scalar(query))
