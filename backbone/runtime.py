"""A service's running parts, wired once: database, event store, NATS, relay and projection consumers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import nats
import structlog
from fastapi import APIRouter
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import StreamInfo
from sqlalchemy import MetaData, Select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone import context, freshness, metrics
from backbone.clock import Clock, SystemClock, local_date
from backbone.consumer import ProjectionConsumer
from backbone.database import Database
from backbone.metrics import EVENTS_APPENDED
from backbone.projection import Projection
from backbone.relay import Relay
from backbone.settings import Settings
from backbone.store import Append, ConcurrencyConflict, EventStore, Plumbing
from backbone.streams import ensure_streams
from contracts import Event
from contracts.catalogue import CONTEXT_STREAMS

log = structlog.get_logger("runtime")
STREAM_CHECK_SECONDS = 1.0  # a readiness probe must answer well within its own timeout (2 s in deploy/k8s)


@dataclass(frozen=True)
class Timer:
    """Work the clock drives, not a request (an expiry, an overdue visit): `tick` runs every `every` seconds."""

    name: str
    every: float
    tick: Callable[[], Awaitable[object]]
    close: Callable[[], Awaitable[object]] | None = None  # when the service stops: what the ticks held open


@dataclass(frozen=True)
class ServiceSpec:
    """What makes a service itself: its name, view tables, HTTP routes, projections and timers."""

    name: str
    default_port: int
    views: MetaData
    routers: Sequence[APIRouter]
    projections: Callable[[Runtime], Sequence[Projection]] = field(default=lambda _: ())
    timers: Callable[[Runtime], Sequence[Timer]] = field(default=lambda _: ())

    @property
    def stream(self) -> str:
        return CONTEXT_STREAMS[self.name]


class Runtime:
    def __init__(self, spec: ServiceSpec, settings: Settings, clock: Clock | None = None) -> None:
        self.spec, self.settings = spec, settings
        self.clock = clock or SystemClock()
        self.db = Database(settings.database_url_for(spec.name))
        self.store = EventStore(postgres=not self.db.is_sqlite, clock=self.clock)
        self.nc: NATS | None = None
        self.relay: Relay | None = None
        self.consumers: list[ProjectionConsumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._boot: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def today(self) -> date:
        """Today on the programme's calendar (China), by the runtime's clock."""
        return local_date(self.clock.now())

    @property
    def js(self) -> JetStreamContext:
        if self.nc is None:
            raise RuntimeError("NATS is not connected yet")
        return self.nc.jetstream()

    async def start(self) -> None:
        """Create tables, then connect to NATS in the background: the HTTP side answers (not ready) meanwhile."""
        await self.db.create(Plumbing.metadata, self.spec.views)
        metrics.prime(self.spec.name, self.spec.stream, [p.name for p in self.spec.projections(self)])
        self._boot = asyncio.create_task(self._connect_and_run())
        self._tasks += [asyncio.create_task(self._every(timer)) for timer in self.spec.timers(self)]

    async def _every(self, timer: Timer) -> None:
        try:
            while not self._stopping.is_set():
                context.fresh()  # each tick is its own story: what it appends shares a new correlation id
                try:
                    await timer.tick()
                except Exception as error:
                    log.warning("timer.failed", timer=timer.name, error=repr(error))
                finally:
                    context.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timer.every)
        finally:
            if timer.close is not None:
                try:
                    await timer.close()
                except Exception as error:
                    log.warning("timer.close_failed", timer=timer.name, error=repr(error))

    async def _connect_and_run(self) -> None:
        while self.nc is None:
            try:
                self.nc = await nats.connect(
                    self.settings.nats_servers,
                    name=self.spec.name,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    error_cb=_log_nats_error,
                    disconnected_cb=_log_nats("nats.disconnected"),
                    reconnected_cb=_log_nats("nats.reconnected"),
                )
            except Exception as error:
                log.warning("nats.unreachable", url=self.settings.nats_url, error=repr(error))
                await asyncio.sleep(1.0)
        js = self.nc.jetstream()
        while True:
            try:
                await ensure_streams(js, replicas=self.settings.stream_replicas)
                break
            except Exception as error:
                log.warning("nats.streams_not_ready", error=repr(error))
                await asyncio.sleep(1.0)
        self.relay = Relay(
            self.db,
            self.store,
            self.nc,
            stream=self.spec.stream,
            source=self.spec.name,
            batch_size=self.settings.relay_batch_size,
            stall_after=self.settings.relay_stall_seconds,
        )
        self._tasks.append(asyncio.create_task(self.relay.run()))
        for projection in self.spec.projections(self):
            consumer = self.consumer(projection)
            self.consumers.append(consumer)
            self._tasks.append(asyncio.create_task(consumer.run()))
        log.info(
            "runtime.started",
            stream=self.spec.stream,
            projections=[c.projection.name for c in self.consumers],
        )

    def consumer(self, projection: Projection) -> ProjectionConsumer:
        """A live consumer of `projection`, configured from the settings."""
        return ProjectionConsumer(
            self.db,
            self.js,
            projection,
            batch_size=self.settings.consumer_batch_size,
            max_deliveries=self.settings.consumer_max_deliveries,
            ack_wait=self.settings.consumer_ack_wait_seconds,
            notice_every=self.settings.consumer_notice_seconds,
            committed=self._appended,
        )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction; after it commits, the relay is woken to publish what it appended (and a request's
        answer will carry the token of it: backbone.freshness)."""
        with freshness.transaction():
            async with self.db.begin() as conn:
                yield conn
        self._appended()

    def _appended(self) -> None:
        """Something may have been appended and committed (a request, a projection's reaction): publish it now."""
        if self.relay is not None:
            self.relay.wake()

    async def append(self, conn: AsyncConnection, *appends: Append) -> None:
        await self.store.append(conn, *appends)
        freshness.appended(appends)
        EVENTS_APPENDED.labels(self.spec.name).inc(sum(len(a.events) for a in appends))

    async def advance(self, conn: AsyncConnection, model: Any, row: Any, event: Event, **values: Any) -> None:
        """Append `event` to the stream of the record `row` (a row of `model`, keyed by its one primary key, with a
        `version` column) and write `values` to the record, both only if nobody moved it on since `row` was read."""
        (key,) = model.__table__.primary_key.columns
        done = await conn.execute(
            update(model)
            .where(key == getattr(row, key.name), model.version == row.version)
            .values(version=row.version + 1, **values)
        )
        if done.rowcount != 1:
            raise ConcurrencyConflict(str(getattr(row, key.name)), row.version)
        await self.append(conn, Append(str(getattr(row, key.name)), row.version, [event]))

    async def work_through(
        self, due: Select[Any], act: Callable[[AsyncConnection, Any], Awaitable[object]], batch: int = 500
    ) -> int:
        """Act on each row `due` selects, `batch` rows per transaction, until none is left; returns how many. Replicas
        and timers work side by side: each transaction takes only rows nobody else holds (SKIP LOCKED)."""
        done = 0
        while True:
            async with self.transaction() as conn:
                rows = (await conn.execute(due.limit(batch).with_for_update(skip_locked=True))).all()
                for row in rows:
                    await act(conn, row)
            done += len(rows)
            if len(rows) < batch:
                return done

    async def problems(self) -> dict[str, str]:
        found: dict[str, str] = {}
        try:
            await self.db.ping()
        except Exception as error:
            found["database"] = type(error).__name__
        if self.nc is None or not self.nc.is_connected:
            found["nats"] = "not connected"
        elif self.relay is None:
            found["nats"] = "streams not ready"
        else:
            found |= await self._stream_problems()
        if self.relay is not None and self.relay.stalled:
            found[f"relay {self.spec.stream}"] = self.relay.stalled
        found |= {f"projection {c.projection.name}": c.blocked for c in self.consumers if c.blocked}
        return found

    async def _stream_problems(self) -> dict[str, str]:
        """Every stream the service writes or reads must answer (a stream without a leader takes no writes); all
        asked at once, so that a probe gets its answer within STREAM_CHECK_SECONDS."""
        streams = sorted({self.spec.stream, *(c.projection.stream for c in self.consumers)})
        answers = await asyncio.gather(
            *(asyncio.wait_for(self.js.stream_info(stream), STREAM_CHECK_SECONDS) for stream in streams),
            return_exceptions=True,
        )
        problems = {}
        for stream, answer in zip(streams, answers, strict=True):
            if isinstance(answer, BaseException):
                problems[f"stream {stream}"] = f"unavailable ({type(answer).__name__})"
            elif lacking := _without_quorum(answer):
                problems[f"stream {stream}"] = lacking
        return problems

    async def stop(self, grace: float = 1.0) -> None:
        """Stop taking work, let in-flight batches finish or roll back, drain NATS, close the database: at most
        about 2.5 x `grace`, so that with uvicorn's own second a service is gone within `make run`'s 5 s."""
        self._stopping.set()
        if self._boot is not None and not self._boot.done():
            self._boot.cancel()
        for worker in [self.relay, *self.consumers]:
            if worker is not None:
                worker.stop()
        if self._tasks:
            _, unfinished = await asyncio.wait(self._tasks, timeout=grace)
            for task in unfinished:
                task.cancel()  # its transaction rolls back; its messages are redelivered
            if unfinished:
                await asyncio.wait(unfinished, timeout=grace / 2)
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain(), grace)
        await self.db.dispose()
        log.info("runtime.stopped")


async def _log_nats_error(error: Exception) -> None:
    log.warning("nats.error", error=repr(error))


def _log_nats(event: str) -> Callable[[], object]:
    async def report() -> None:
        log.info(event)

    return report


def _without_quorum(info: StreamInfo) -> str | None:
    """Why a replicated stream takes no writes though it answered: its leader (a lone node whose peers died, which
    goes on answering until it steps down) no longer sees a majority of the replicas current. None if it does."""
    cluster = info.cluster
    if cluster is None or not cluster.replicas:
        return None  # one replica: it answered, so it takes writes
    size = 1 + len(cluster.replicas)
    current = 1 + sum(1 for peer in cluster.replicas if peer.current and not peer.offline)
    return None if current > size // 2 else f"no quorum ({current} of {size} replicas current)"
