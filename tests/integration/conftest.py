"""Integration fixtures: the event store's database on each adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from backbone.database import Database
from backbone.store import Plumbing


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.create(Plumbing.metadata)
    yield database
    await database.dispose()
