"""One relay per stream at a time among a service's replicas, and the means to notice losing that role.

On PostgreSQL a session advisory lock elects the leader; on SQLite (replicas on one machine, one file) a lock on a
file beside the database does. Whoever waits for the role looks again every second and gives up when stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy import text

from backbone.database import Database

Check = Callable[[], Awaitable[None]]


class Stopping(Exception):
    """Raised out of a wait for the role when the waiter is told to stop."""


class Leadership:
    def __init__(
        self,
        db: Database,
        role: str,
        stopping: asyncio.Event,
        *,
        check_every: float = 2.0,
        on_wait: Callable[[], None] = lambda: None,
    ) -> None:
        self.db, self.role, self.stopping, self.check_every = db, role, stopping, check_every
        self.on_wait = on_wait  # called each time the role is found held by someone else

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[Check]:
        """Wait for the role, then hold it; yields a check that raises once the role may have been lost."""
        if not self.db.is_sqlite:
            async with self._advisory_lock() as check:
                yield check
            return
        database = self.db.url.database
        if not database or database == ":memory:":
            yield _always
            return
        with open(f"{database}.{self.role}.lock", "a") as lock:  # noqa: ASYNC230 (local, instant)
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await self._wait_for_turn()
            try:
                yield _always  # the lock lives as long as this process does
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.asynccontextmanager
    async def _advisory_lock(self) -> AsyncIterator[Check]:
        key = zlib.crc32(self.role.encode())
        async with self.db.engine.connect() as conn:
            while not await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}):
                await conn.rollback()
                await self._wait_for_turn()
            await conn.commit()
            checked = time.monotonic()

            async def check() -> None:
                # The lock lives as long as this session: if its connection died, another replica may lead now.
                nonlocal checked
                if time.monotonic() - checked > self.check_every:
                    await conn.execute(text("SELECT 1"))
                    await conn.commit()
                    checked = time.monotonic()

            try:
                yield check
            finally:
                with contextlib.suppress(Exception):
                    await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    await conn.commit()

    async def _wait_for_turn(self) -> None:
        self.on_wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), 1.0)
        if self.stopping.is_set():
            raise Stopping


async def _always() -> None:
    return None
