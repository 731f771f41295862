"""The relay: publishes committed events from the SQL log to the service's JetStream stream, in order.

It publishes a batch with every message in flight at once, waits for all acks, then records how far it got. Each
message carries `Nats-Msg-Id` (the event id) and the id of the message before it, so the stream keeps the log's
order. After any failure it starts from the stream's own last message, found in the log: nothing twice, nothing
skipped, and a stream whose store was lost is filled again from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import structlog
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy import text

from backbone.database import Database
from backbone.leadership import Check, Leadership, Stopping
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


class Relay:
    def __init__(
        self,
        db: Database,
        store: EventStore,
        nc: NATS,
        *,
        stream: str,
        source: str,
        batch_size: int = 500,
        poll_seconds: float = 0.1,
        ack_timeout: float = 5.0,
    ) -> None:
        self.db, self.store, self.nc = db, store, nc
        self.stream, self.source = stream, source
        self.batch_size, self.poll_seconds, self.ack_timeout = batch_size, poll_seconds, ack_timeout
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._leadership = Leadership(db, f"{stream.lower()}-relay", self._stopping)
        self._pause = 0.1

    def stop(self) -> None:
        """Finish the batch in hand, then return from `run`."""
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        """Tell the relay that something committed (it also polls, for other replicas' appends)."""
        self._wake.set()

    async def run(self) -> None:
        """Publish until stopped; after any failure (NATS away, database away) it finds its place again."""
        while not self._stopping.is_set():
            try:
                async with self._leadership.hold() as still_leading:
                    await self._pump(still_leading)
            except Stopping:
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("relay.retrying", stream=self.stream, error=repr(error), pause=self._pause)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._pause)
                self._pause = min(self._pause * 2, 5.0)

    async def publish_pending(self) -> int:
        """Publish everything committed so far, then return how many events that was (tests, shutdown)."""
        total = 0
        async with self._leadership.hold():
            js = await self._connected()
            position, last_id = await self._resync(js)
            while batch := await self._read(position):
                position, last_id = await self._publish(js, batch, last_id)
                total += len(batch)
        return total

    async def _pump(self, still_leading: Check) -> None:
        js = await self._connected()
        position, last_id = await self._resync(js)
        while not self._stopping.is_set():
            await still_leading()
            batch = await self._read(position)
            if batch:
                position, last_id = await self._publish(js, batch, last_id)
                self._pause = 0.1
                continue
            RELAY_LAG.labels(self.stream).set(0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def _connected(self) -> JetStreamContext:
        """A fresh JetStream context per attempt: a failed attempt's in-flight slots die with the old one."""
        if not self.nc.is_connected:
            raise ConnectionError("NATS is not connected")
        if not self.store.postgres:
            return self.nc.jetstream()
        async with self.db.read() as conn:
            newest, current = (
                await conn.execute(
                    text("SELECT max(tx_id), pg_snapshot_xmax(pg_current_snapshot())::text::bigint FROM events")
                )
            ).one()
        if newest is not None and newest >= current:
            # Restored into another PostgreSQL server: its transaction ids are behind the log's, so new events
            # would sort before published ones and be skipped. An operator must look (README, "Operating it").
            raise RuntimeError(f"the event log's transaction ids ({newest}) are ahead of this server's ({current})")
        return self.nc.jetstream()

    async def _resync(self, js: JetStreamContext) -> tuple[tuple[int, int], str | None]:
        """Where to go on from: the stream's last message, found in the log; the whole log if the stream is empty."""
        info = await js.stream_info(self.stream)
        if not info.state.messages:
            return (-1, 0), None  # a new stream, or one whose store was lost: the log is the source of truth
        last = await js.get_msg(self.stream, info.state.last_seq)
        last_id = (last.headers or {}).get("Nats-Msg-Id")
        async with self.db.read() as conn:
            found = await self.store.position_of(conn, last_id) if last_id else None
            return found or await self.store.relay_position(conn, self.stream), last_id

    async def _read(self, position: tuple[int, int]) -> list[RecordedEvent]:
        async with self.db.read() as conn:
            return await self.store.committed_after(conn, position, self.batch_size)

    async def _publish(
        self, js: JetStreamContext, batch: Sequence[RecordedEvent], last_id: str | None
    ) -> tuple[tuple[int, int], str]:
        """Publish a batch as a chain: each message is stored only right after its predecessor, so a message lost
        on a broken connection can never be overtaken by the ones sent after it."""
        RELAY_LAG.labels(self.stream).set(max(0.0, (self.store.clock.now() - batch[0].recorded_at).total_seconds()))
        pending = []
        try:
            for event in batch:
                event_id = str(event.event_id)
                headers = {"Nats-Msg-Id": event_id, "Content-Type": CONTENT_TYPE}
                if last_id is not None:
                    headers["Nats-Expected-Last-Msg-Id"] = last_id
                payload = encode(envelope(event, self.source))
                pending.append(await js.publish_async(event.subject, payload, headers=headers, stream=self.stream))
                last_id = event_id
            await asyncio.wait_for(asyncio.gather(*pending), self.ack_timeout)
        finally:
            for future in pending:
                future.cancel()
        position = (batch[-1].tx_id, batch[-1].position)
        async with self.db.begin() as conn:
            await self.store.save_relay_position(conn, self.stream, position)
        EVENTS_PUBLISHED.labels(self.stream).inc(len(batch))
        return position, str(batch[-1].event_id)
