"""The matching service, wired: `create_app()` for uvicorn and tests."""

from fastapi import FastAPI

from backbone.app import create_app as create_service_app
from backbone.clock import Clock
from backbone.runtime import ServiceSpec
from backbone.settings import Settings
from services.matching.api import router
from services.matching.candidates import Candidates
from services.matching.views import Engagement, Views

SPEC = ServiceSpec(
    name="matching",
    default_port=8002,
    views=Views.metadata,
    routers=[router],
    projections=lambda runtime: [Engagement(), Candidates()],
)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    return create_service_app(SPEC, settings, clock)
