"""The relay: publishes committed events from the SQL log to the service's JetStream stream, in order.

It publishes a batch with every message in flight at once, waits for all acks, then records how far it got.
A crash before the record re-publishes the batch; `Nats-Msg-Id` (the event id) lets JetStream drop the repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import zlib
from collections.abc import AsyncIterator, Sequence

import structlog
from nats.js import JetStreamContext
from sqlalchemy import text

from backbone.database import Database
from backbone.metrics import EVENTS_PUBLISHED, RELAY_LAG
from backbone.store import EventStore, RecordedEvent
from contracts.cloudevents import CONTENT_TYPE, CloudEvent, dataschema, encode

log = structlog.get_logger("relay")


def envelope(event: RecordedEvent, source: str) -> CloudEvent:
    return CloudEvent(
        id=str(event.event_id),
        source=f"/{source}",
        type=event.type,
        subject=event.stream_id,
        time=event.recorded_at,
        dataschema=dataschema(event.type),
        data=event.data,
        sequence=event.version,
        correlationid=event.correlation_id,
        causationid=event.causation_id,
        traceparent=event.traceparent,
    )


class _Stopping(Exception):
    """Raised out of a wait for leadership when the relay is told to stop."""


class Relay:
    def __init__(
        self,
        db: Database,
        store: EventStore,
        js: JetStreamContext,
        *,
        stream: str,
        source: str,
        batch_size: int = 500,
        poll_seconds: float = 0.1,
        ack_timeout: float = 5.0,
    ) -> None:
        self.db, self.store, self.js = db, store, js
        self.stream, self.source = stream, source
        self.batch_size, self.poll_seconds, self.ack_timeout = batch_size, poll_seconds, ack_timeout
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish the batch in hand, then return from `run`."""
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        """Tell the relay that something committed (it also polls, for other replicas' appends)."""
        self._wake.set()

    async def run(self) -> None:
        """Publish forever; any failure (NATS away, database away) is retried from the recorded position."""
        pause = 0.1
        while not self._stopping.is_set():
            try:
                async with self._leadership():
                    await self._pump()
            except _Stopping:
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("relay.retrying", stream=self.stream, error=repr(error), pause=pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

    async def publish_pending(self) -> int:
        """Publish everything committed so far, then return how many events that was (tests, shutdown)."""
        total = 0
        async with self._leadership():
            position = await self._position()
            while batch := await self._read(position):
                position = await self._publish(batch)
                total += len(batch)
        return total

    async def _pump(self) -> None:
        position = await self._position()
        while not self._stopping.is_set():
            batch = await self._read(position)
            if batch:
                position = await self._publish(batch)
                continue
            RELAY_LAG.labels(self.stream).set(0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def _position(self) -> tuple[int, int]:
        async with self.db.read() as conn:
            return await self.store.relay_position(conn, self.stream)

    async def _read(self, position: tuple[int, int]) -> list[RecordedEvent]:
        async with self.db.read() as conn:
            return await self.store.committed_after(conn, position, self.batch_size)

    async def _publish(self, batch: Sequence[RecordedEvent]) -> tuple[int, int]:
        RELAY_LAG.labels(self.stream).set(max(0.0, (self.store.clock.now() - batch[0].recorded_at).total_seconds()))
        pending = []
        try:
            for event in batch:
                headers = {"Nats-Msg-Id": str(event.event_id), "Content-Type": CONTENT_TYPE}
                payload = encode(envelope(event, self.source))
                pending.append(await self.js.publish_async(event.subject, payload, headers=headers, stream=self.stream))
            await asyncio.wait_for(asyncio.gather(*pending), self.ack_timeout)
        finally:
            for future in pending:
                future.cancel()
        position = (batch[-1].tx_id, batch[-1].position)
        async with self.db.begin() as conn:
            await self.store.save_relay_position(conn, self.stream, position)
        EVENTS_PUBLISHED.labels(self.stream).inc(len(batch))
        return position

    @contextlib.asynccontextmanager
    async def _leadership(self) -> AsyncIterator[None]:
        """One relay per stream at a time among the service's replicas: on PostgreSQL an advisory lock elects it,
        on SQLite (replicas on one machine) a lock on a file beside the database."""
        if self.store.postgres:
            async with self._advisory_lock():
                yield
            return
        database = self.db.url.database
        if not database or database == ":memory:":
            yield
            return
        with open(f"{database}.{self.stream.lower()}-relay.lock", "a") as lock:  # noqa: ASYNC230 (local, instant)
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await self._wait_for_turn()
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    async def _wait_for_turn(self) -> None:
        """Another replica's relay is publishing; look again in a second, unless this one is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), 1.0)
        if self._stopping.is_set():
            raise _Stopping

    @contextlib.asynccontextmanager
    async def _advisory_lock(self) -> AsyncIterator[None]:
        key = zlib.crc32(f"relay:{self.stream}".encode())
        async with self.db.engine.connect() as conn:
            while not await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}):
                await conn.rollback()
                await self._wait_for_turn()
            await conn.commit()
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                await conn.commit()
