"""The registry service, wired: `create_app()` for uvicorn and tests."""

from fastapi import FastAPI

from backbone.app import create_app as create_service_app
from backbone.clock import Clock
from backbone.runtime import ServiceSpec
from backbone.settings import Settings
from services.registry.api import router
from services.registry.records import Records

SPEC = ServiceSpec(name="registry", default_port=8001, views=Records.metadata, routers=[router])


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    return create_service_app(SPEC, settings, clock)
