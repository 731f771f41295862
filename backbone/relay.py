"""The relay: publishes committed events from the SQL log to the service's JetStream stream.

It publishes a batch with every message in flight at once and, while the server acknowledges it, reads and sends
the next; as each batch's acks come it records how far the acknowledged prefix reaches (under load at most every
`record_every` seconds). After any failure, or a restart, it starts again from the first event not recorded as
acknowledged, so nothing is skipped; what the stream already holds is dropped by its duplicate window
(`Nats-Msg-Id` is the event id). It sends no expected-last-message headers: on a replicated stream a replica that
re-checks them after a restart can refuse its own log and never catch up (nats-server#8319), so per-aggregate order
is the consumers' work (they apply each aggregate's versions in order whatever order the stream holds them in).
When publishing has failed for `stall_after` seconds the relay says so: a log line, a metric, and `stalled` for the
service's readiness.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import PubAck
from sqlalchemy import text

from backbone import context
from backbone.database import Database
from backbone.leadership import Check, Leadership, Stopping
from backbone.metrics import EVENTS_PUBLISHED, RELAY_FAILURES, RELAY_LAG, RELAY_STALLED
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
        # Rows written before ids from outside were checked may hold anything: such an id does not travel on.
        correlationid=context.safe_id(event.correlation_id) or str(event.event_id),
        causationid=context.safe_id(event.causation_id),
        traceparent=context.safe_traceparent(event.traceparent),
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
        stall_after: float = 10.0,
        depth: int = 2,
        record_every: float = 0.5,
    ) -> None:
        self.db, self.store, self.nc = db, store, nc
        self.stream, self.source = stream, source
        self.batch_size, self.poll_seconds, self.ack_timeout = batch_size, poll_seconds, ack_timeout
        self.stall_after, self.depth, self.record_every = stall_after, depth, record_every
        self._unrecorded: tuple[int, int] | None = None  # acknowledged, not yet recorded in the log's database
        self._recorded_at = 0.0
        self.stalled: str | None = None  # why nothing has been published for `stall_after` seconds, if so
        self._failing_since: float | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        # Another replica leads: whatever this one saw failing is that one's to report now.
        self._leadership = Leadership(db, f"{stream.lower()}-relay", self._stopping, on_wait=self._healthy)
        self._pause = 0.1
        self._careful = False  # after a failure, the first event goes alone (see _publish)

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
                self._failed(error)
                log.warning("relay.retrying", stream=self.stream, error=repr(error), pause=self._pause)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._pause)
                self._pause = min(self._pause * 2, 5.0)

    async def publish_pending(self) -> int:
        """Publish everything committed so far, then return how many events that was (tests, shutdown)."""
        total = 0
        async with self._leadership.hold():
            js = await self._connected()
            position = await self._resync(js)
            while batch := await self._read(position):
                position = await self._publish(js, batch)
                total += len(batch)
            await self._record()
        return total

    async def _pump(self, still_leading: Check) -> None:
        """Publish batch after batch with up to `depth` batches in flight: the next is read and sent while the
        server still acknowledges the last, and each position is recorded in order as its batch is acknowledged."""
        js = await self._connected()
        position = await self._resync(js)
        in_flight: collections.deque[Sent] = collections.deque()
        try:
            while not self._stopping.is_set():
                await still_leading()
                room = len(in_flight) < self.depth and not (self._careful and in_flight)
                batch = await self._read(position) if room else []
                if batch:
                    sent = await self._send(js, batch)
                    in_flight.append(sent)
                    position = (sent.batch[-1].tx_id, sent.batch[-1].position)
                    continue
                if in_flight:
                    await self._settle(in_flight.popleft())
                    self._pause = 0.1
                    continue
                self._healthy()
                RELAY_LAG.labels(self.stream).set(0)
                if time.monotonic() - self._recorded_at >= self.record_every:
                    await self._record()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        finally:
            for sent in in_flight:  # not acknowledged: sent again from the recorded position (duplicates dropped)
                for future in sent.acks:
                    future.cancel()
            with contextlib.suppress(Exception):  # what was acknowledged, if the database can still be reached
                await self._record()

    def _failed(self, error: Exception) -> None:
        """Count a failure; once publishing has failed for `stall_after` seconds, the relay is stalled."""
        RELAY_FAILURES.labels(self.stream).inc()
        self._careful = True
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        failing = now - self._failing_since
        if failing < self.stall_after:
            return
        if self.stalled is None:
            log.error("relay.stalled", stream=self.stream, seconds=round(failing), error=type(error).__name__)
        RELAY_STALLED.labels(self.stream).set(1)
        self.stalled = f"nothing published for {failing:.0f} s ({type(error).__name__})"

    def _healthy(self) -> None:
        """The relay published, had nothing to publish, or another replica publishes: it is not stalled."""
        if self.stalled is not None:
            log.info("relay.recovered", stream=self.stream)
            RELAY_STALLED.labels(self.stream).set(0)
        self._failing_since, self.stalled = None, None

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

    async def _resync(self, js: JetStreamContext) -> tuple[int, int]:
        """Where to go on from: just past the acknowledged prefix recorded in the log's database, or further back if
        the stream's last message is an earlier event of the log (a stream restored from a backup, or one that lost
        its tail); from the start if the stream is empty (new, or its store lost: the log is the source of truth)."""
        info = await js.stream_info(self.stream)
        if not info.state.messages:
            return (-1, 0)
        last = await js.get_msg(self.stream, info.state.last_seq)
        last_id = (last.headers or {}).get("Nats-Msg-Id")
        async with self.db.read() as conn:
            recorded = await self.store.relay_position(conn, self.stream)
            found = await self.store.position_of(conn, last_id) if last_id else None
        return min(recorded, found) if found else recorded

    async def _read(self, position: tuple[int, int]) -> list[RecordedEvent]:
        async with self.db.read() as conn:
            return await self.store.committed_after(conn, position, self.batch_size)

    async def _publish(self, js: JetStreamContext, batch: Sequence[RecordedEvent]) -> tuple[int, int]:
        """Publish a batch and wait for it (see `_send` and `_settle`); returns the position it reached."""
        return await self._settle(await self._send(js, batch))

    async def _send(self, js: JetStreamContext, batch: Sequence[RecordedEvent]) -> Sent:
        """Publish a batch, all in flight at once, without waiting for the acknowledgements."""
        RELAY_LAG.labels(self.stream).set(max(0.0, (self.store.clock.now() - batch[0].recorded_at).total_seconds()))
        if self._careful:
            # After a failure the first event goes alone: if the stream still refuses it (no leader, an event it
            # cannot take), the rest of the batch is not sent again and again, which past the duplicate window
            # would store copies of them.
            batch = batch[:1]
        acks: list[asyncio.Future[PubAck]] = []
        try:
            for event in batch:
                headers = {"Nats-Msg-Id": str(event.event_id), "Content-Type": CONTENT_TYPE}
                payload = encode(envelope(event, self.source))
                acks.append(await js.publish_async(event.subject, payload, headers=headers, stream=self.stream))
        except BaseException:
            for future in acks:
                future.cancel()
            raise
        return Sent(batch, acks)

    async def _settle(self, sent: Sent) -> tuple[int, int]:
        """Wait for a batch's acknowledgements; record how far the acknowledged prefix reaches, and raise if it is
        not the whole batch (the caller starts again from the first event not acknowledged)."""
        batch, pending = sent.batch, sent.acks
        try:
            await asyncio.wait(pending, timeout=self.ack_timeout)
        finally:
            for future in pending:
                future.cancel()
        acknowledged = 0
        for future in pending:
            if future.cancelled() or future.exception() is not None:
                break
            acknowledged += 1
        if acknowledged:
            last = batch[acknowledged - 1]
            self._unrecorded = (last.tx_id, last.position)
            EVENTS_PUBLISHED.labels(self.stream).inc(acknowledged)
            self._healthy()
        self._careful = acknowledged < len(batch)
        if self._careful or time.monotonic() - self._recorded_at >= self.record_every:
            await self._record()
        if self._careful:
            failed = pending[acknowledged]
            if failed.cancelled():
                raise TimeoutError(f"no acknowledgement within {self.ack_timeout} s")
            raise failed.exception() or RuntimeError("publish failed")
        last = batch[-1]
        return (last.tx_id, last.position)

    async def _record(self) -> None:
        """Record how far the acknowledged prefix reaches. Under load that is at most every `record_every` seconds
        (one write transaction fewer per batch): a relay that restarts from an older position sends those events
        again, and the stream's duplicate window drops them."""
        if self._unrecorded is None:
            return
        async with self.db.begin() as conn:
            await self.store.save_relay_position(conn, self.stream, self._unrecorded)
        self._unrecorded, self._recorded_at = None, time.monotonic()


@dataclass(frozen=True)
class Sent:
    """A batch published, its acknowledgements still to come."""

    batch: Sequence[RecordedEvent]
    acks: list[asyncio.Future[PubAck]]
