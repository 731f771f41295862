"""Shared fixtures: a real nats-server per test, and a real database (SQLite file or PostgreSQL) per test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NATS
from sqlalchemy.engine import make_url

from backbone.natsserver import NatsServer

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")
IN_CI = bool(os.environ.get("CI"))


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats").start()
    yield server
    server.kill()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    yield client
    await client.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str | None]:
    """The PostgreSQL server's URL: TEST_POSTGRES_URL, or else, where a Docker engine runs, a throwaway container
    (testcontainers) for the whole session; None if neither."""
    if POSTGRES_URL or not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        yield POSTGRES_URL
        return
    from testcontainers.community.postgres import PostgresContainer

    with PostgresContainer("postgres:16-alpine", driver="asyncpg") as container:
        yield container.get_connection_url()


def postgres_or_skip(server: str | None) -> str:
    if server:
        return server
    if IN_CI:
        pytest.fail("TEST_POSTGRES_URL is not set: CI must run the PostgreSQL tests, not skip them")
    pytest.skip("TEST_POSTGRES_URL is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test) and no Docker")


async def _admin(server: str, statement: str) -> None:
    base = make_url(server)
    conn = await asyncpg.connect(base.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def postgres_url(postgres_server: str | None) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    with _database(postgres_or_skip(postgres_server)) as url:
        yield url


@contextlib.contextmanager
def _database(server: str, template: str | None = None) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _create_every_table(url: str) -> None:
    from backbone.database import Database
    from backbone.store import Plumbing
    from services.matching.app import SPEC as MATCHING
    from services.notifications.app import SPEC as NOTIFICATIONS
    from services.registry.app import SPEC as REGISTRY

    db = Database(url)
    try:
        await db.create(Plumbing.metadata, REGISTRY.views, MATCHING.views, NOTIFICATIONS.views)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with every service's tables and no rows: a test's database starts as a copy of it (starting a
    service on it then finds its tables there, as on any restart; creating them on an empty database, as `make run`
    does, has tests of its own)."""
    path = tmp_path_factory.mktemp("template") / "service.db"
    asyncio.run(_create_every_table(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str | None) -> Iterator[str]:
    """The same on PostgreSQL: a database that each test's is created from (CREATE DATABASE … TEMPLATE)."""
    with _database(postgres_or_skip(postgres_server)) as url:
        asyncio.run(_create_every_table(url))
        name = make_url(url).database
        assert name is not None
        yield name


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test against every adapter: a SQLite file, then PostgreSQL, each holding every service's tables."""
    if request.param == "sqlite":
        path = tmp_path / "service.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template = request.getfixturevalue("postgres_template")
    with _database(postgres_or_skip(request.getfixturevalue("postgres_server")), template) as url:
        yield url
