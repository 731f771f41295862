"""The notifications service, wired: `create_app()` for uvicorn and tests."""

from fastapi import FastAPI

from backbone.app import create_app as create_service_app
from backbone.clock import Clock
from backbone.runtime import ServiceSpec
from backbone.settings import Settings
from services.notifications.api import router
from services.notifications.notices import Deliveries, MatchingReactions, Pairings, RegistryReactions, Views

SPEC = ServiceSpec(
    name="notifications",
    default_port=8003,
    views=Views.metadata,
    routers=[router],
    projections=lambda runtime: [RegistryReactions(runtime), MatchingReactions(runtime), Pairings(), Deliveries()],
)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    return create_service_app(SPEC, settings, clock)
