"""The matching service, wired: `create_app()` for uvicorn and tests."""

import uuid
from functools import partial

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone import scrub
from backbone.app import create_app as create_service_app
from backbone.clock import Clock
from backbone.runtime import Runtime, ServiceSpec, Timer
from backbone.settings import Settings
from services.matching import aid, api, calendar_feeds, contacts, pairing_api, summary, volunteer_views, weekly, wishes
from services.matching.candidates import Candidates
from services.matching.pairings import lapse_due
from services.matching.reconcile import reconcile
from services.matching.schedule import escalate_overdue, plan
from services.matching.views import Engagement, Views

SPEC = ServiceSpec(
    name="matching",
    default_port=8002,
    views=Views.metadata,
    routers=[
        api.router,
        pairing_api.router,
        contacts.router,
        wishes.router,
        aid.router,
        summary.router,
        weekly.router,
        volunteer_views.router,
        calendar_feeds.router,
    ],
    projections=lambda runtime: [Engagement(), Candidates(partial(follow, runtime))],
    timers=lambda runtime: [
        Timer("lapse-proposals", runtime.settings.timer_seconds, partial(lapse_due, runtime)),
        Timer("follow-candidates", runtime.settings.timer_seconds, partial(follow_all, runtime)),
        Timer("escalate-overdue", runtime.settings.timer_seconds, partial(escalate_overdue, runtime)),
        Timer("lapse-wish-claims", runtime.settings.timer_seconds, partial(wishes.lapse_claims, runtime)),
        Timer("scrub", scrub.EVERY, partial(scrub.scrub, runtime.db)),  # after `follow` clears notes
    ],
)


async def follow(runtime: Runtime, conn: AsyncConnection, children: set[uuid.UUID], volunteers: set[uuid.UUID]) -> None:
    """What the candidate view's changes call for, in its own transaction: visit schedules, open pairings, open
    wishes, notes of erased children, calendar feed links of erased volunteers."""
    await plan(runtime, conn, children)
    await reconcile(runtime, conn, children, volunteers)
    await wishes.withdraw_unwanted(runtime, conn, children)
    await contacts.forget_notes(conn, children)
    await calendar_feeds.revoke_erased(runtime, conn, volunteers)


async def follow_all(runtime: Runtime) -> None:
    """The same over everything, from a timer: heals what following the view missed (e.g. while it was rebuilt)."""
    async with runtime.transaction() as conn:
        await plan(runtime, conn)
        await reconcile(runtime, conn)
        await wishes.withdraw_unwanted(runtime, conn)
        await contacts.forget_notes(conn)
        await calendar_feeds.revoke_erased(runtime, conn)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    return create_service_app(SPEC, settings, clock)
