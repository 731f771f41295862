"""Shared fixtures: a real nats-server per test, and a real database (SQLite file or PostgreSQL) per test."""

from __future__ import annotations

import asyncio
import os
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
    server = postgres_or_skip(postgres_server)
    name = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test against every adapter: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'service.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
