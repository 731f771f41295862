"""The matching service, wired: `create_app()` for uvicorn and tests."""

from functools import partial

from fastapi import FastAPI

from backbone.app import create_app as create_service_app
from backbone.clock import Clock
from backbone.runtime import Runtime, ServiceSpec, Timer
from backbone.settings import Settings
from services.matching import api, pairing_api
from services.matching.candidates import Candidates
from services.matching.pairings import lapse_due
from services.matching.reconcile import reconcile
from services.matching.views import Engagement, Views

SPEC = ServiceSpec(
    name="matching",
    default_port=8002,
    views=Views.metadata,
    routers=[api.router, pairing_api.router],
    projections=lambda runtime: [Engagement(), Candidates(partial(reconcile, runtime))],
    timers=lambda runtime: [lapse_proposals(runtime), reconcile_pairings(runtime)],
)


def lapse_proposals(runtime: Runtime) -> Timer:
    return Timer("lapse-proposals", runtime.settings.timer_seconds, partial(lapse_due, runtime))


def reconcile_pairings(runtime: Runtime) -> Timer:
    """Every open pairing checked against the candidate view: heals what the view's own reconciling missed."""

    async def tick() -> None:
        async with runtime.transaction() as conn:
            await reconcile(runtime, conn)

    return Timer("reconcile-pairings", runtime.settings.timer_seconds, tick)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    return create_service_app(SPEC, settings, clock)
