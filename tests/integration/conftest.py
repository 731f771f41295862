"""Integration fixtures: the event store's database on each adapter."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client as NATS

from backbone.clock import SettableClock
from backbone.database import Database
from backbone.natsserver import NatsServer
from backbone.settings import Settings
from backbone.store import Plumbing
from services.matching.app import create_app as create_matching_app
from services.notifications.app import create_app as create_notifications_app
from services.notifications.sender import Outbound
from services.registry.app import create_app
from tests.helpers import RegistryEvents, keys, wait_until


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.create(Plumbing.metadata)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(datetime.now(UTC))


@pytest.fixture
async def registry_app(
    nats_server: NatsServer, database_url: str, clock: SettableClock, request: pytest.FixtureRequest
) -> AsyncIterator[FastAPI]:
    """The registry in this process, started; a test marked `@pytest.mark.settings(name=value)` gets those settings
    too."""
    marker = request.node.get_closest_marker("settings")
    settings = Settings(
        database_url=database_url,
        nats_url=nats_server.url,
        **keys().settings(),
        max_body_bytes=64 * 1024,
        timer_seconds=0.2,
        **(marker.kwargs if marker else {}),
    )
    app: FastAPI = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def registry(registry_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the registry in this process, once it is ready."""
    transport = httpx.ASGITransport(app=registry_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
        await wait_until(lambda: _ready(client), what="the registry to be ready")
        yield client


@pytest.fixture
async def matching(
    nats_server: NatsServer, database_url: str, clock: SettableClock, request: pytest.FixtureRequest
) -> AsyncIterator[httpx.AsyncClient]:
    """The matching service in this process, on real NATS and the adapter's database; timers every 0.2 s unless
    the test is marked `@pytest.mark.timer_seconds(n)`."""
    marker = request.node.get_closest_marker("timer_seconds")
    async with serve_matching(database_url, nats_server, clock, marker.args[0] if marker else 0.2) as client:
        yield client


@contextlib.asynccontextmanager
async def serve_matching(
    database_url: str, nats_server: NatsServer, clock: SettableClock, timer_seconds: float = 0.2
) -> AsyncIterator[httpx.AsyncClient]:
    """The matching service in this process, ready, as a client."""
    settings = Settings(
        database_url=database_url, nats_url=nats_server.url, timer_seconds=timer_seconds, **keys().settings()
    )
    app: FastAPI = create_matching_app(settings, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://matching", timeout=60) as client:
            await wait_until(lambda: _ready(client), what="the matching service to be ready")
            yield client


@contextlib.asynccontextmanager
async def serve_notifications(
    settings: Settings, clock: SettableClock, outbound: Outbound | None = None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The notifications service in this process, ready: its app and a client (`outbound`: what its sender sends
    through; none, no sender)."""
    app: FastAPI = create_notifications_app(settings, clock, outbound)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifications") as client,
    ):
        await wait_until(lambda: _ready(client), what="the notifications service to be ready")
        yield app, client


@pytest.fixture
async def registry_events(matching: httpx.AsyncClient, nc: NATS) -> RegistryEvents:
    """Registry events published on the REGISTRY stream (created by the matching service) for it to consume."""
    return RegistryEvents(nc.jetstream())


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/ready")).status_code == 200
