"""Rebuild a projection: drop its rows, replay its stream fast, then hand over to the live consumers.

The replay reads the stream through an ephemeral pull consumer without acks, asking for one batch ahead of the one
it applies (memory stays bounded however long the stream), and applies it in large batches through the same code as
the live consumers. Meanwhile the live consumers wait; when the replay has caught up it creates the new generation's
durable consumer just past the last event it applied, and lets them go.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import DEFAULT_PREFIX, AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError, ServiceUnavailableError

from backbone import logs
from backbone.app import tune_gc
from backbone.consumer import ProjectionConsumer, Unavailable, durable_name
from backbone.projection import Projection, finish_replay, reset
from backbone.runtime import Runtime, ServiceSpec
from backbone.settings import Settings
from backbone.store import Plumbing

Progress = Callable[[int, int, float], None]
# No event for this long while events remain: the server lost the replay's consumer or its requests (a restart).
STALL_SECONDS = 5.0
# A replay's consumer left behind (the process killed) goes on its own after this long unused.
INACTIVE_SECONDS = 300.0
# NATS away for a moment: a consumer that cannot be made now is tried again after STALL_SECONDS.
TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    ServiceUnavailableError,
)


async def rebuild(spec: ServiceSpec, settings: Settings, name: str | None, *, list_only: bool = False) -> int:
    logs.configure(spec.name, fmt=settings.log_format, level="warning")
    tune_gc()
    runtime = Runtime(spec, settings)
    # Only views: a reaction (no rows of its own) replayed from the start would act again on old news.
    projections = {p.name: p for p in spec.projections(runtime) if p.views}
    if list_only or name not in projections:
        print("projections:", ", ".join(sorted(projections)) or "none", file=sys.stderr)
        return 0 if list_only else 2
    await runtime.db.create(Plumbing.metadata, spec.views)
    runtime.nc = await nats.connect(settings.nats_servers, name=f"{spec.name}-rebuild")
    gc.freeze()  # what start-up made lives to the end: the collector need not scan it (measured: 5% faster replay)
    try:
        count, seconds = await replay(runtime, projections[name], progress=draw)
    finally:
        await runtime.nc.drain()
        await runtime.db.dispose()
    print(f"\nrebuilt {name}: {count} events in {seconds:.1f} s ({count / max(seconds, 1e-9):,.0f}/s)", file=sys.stderr)
    return 0


async def replay(
    runtime: Runtime, projection: Projection, *, batch_size: int = 5000, progress: Progress | None = None
) -> tuple[int, float]:
    """Reset `projection` and replay its whole stream into the new generation; returns (events, seconds)."""
    started = time.monotonic()
    js, nc = runtime.js, runtime.nc
    assert nc is not None  # runtime.js has made sure
    async with runtime.db.begin() as conn:
        generation = await reset(conn, projection)
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(projection.stream, durable_name(projection, generation - 1))
    worker = ProjectionConsumer(runtime.db, js, projection)
    total, stream_end = await _matching(js, projection)
    feed = _Feed(nc, js, projection, window=batch_size)
    applied, last_seen = 0, 0
    waiting: list[Msg] = []
    try:
        caught_up = total == 0
        while not caught_up:
            batch = await feed.take(batch_size)  # the next batch arrives while this one is applied
            # An event can sit in the stream before its predecessor (a publish retried after a lost connection):
            # what waits goes round again with the next batch.
            waiting = await _apply(worker, [*waiting, *batch], generation)
            applied += len(batch)
            last_seen = batch[-1].metadata.sequence.stream
            caught_up = batch[-1].metadata.num_pending == 0
            if progress:
                progress(applied, max(total, applied), time.monotonic() - started)
        while waiting and len(still := await _apply(worker, waiting, generation)) < len(waiting):
            waiting = still
    finally:
        await feed.close()
    # Live consumers take over just past the last event seen (or the stream's end if there was none), or at the
    # first event still waiting for its predecessor: they wait for it as they always do, and skip what is applied.
    start = min(m.metadata.sequence.stream for m in waiting) if waiting else (last_seen or stream_end) + 1
    await js.add_consumer(projection.stream, runtime.consumer(projection).config(generation, start=start))
    async with runtime.db.begin() as conn:
        await finish_replay(conn, projection.name, generation)
    return applied, time.monotonic() - started


class _Feed:
    """The projection's events in stream order, from an ephemeral pull consumer without acks (AckPolicy.NONE).

    It asks for at most `window` events ahead of those taken, so the next batch arrives while one is applied and
    memory stays bounded however long the stream. (An ordered push consumer did not bound it: nats-py answers the
    server's flow control as soon as a message arrives, not once its callback has taken it, so the server pushed the
    stream into nats-py's pending buffer, and past that buffer's limit messages were dropped.) The events come through
    a subscription's callback rather than `fetch`, which costs a task per message (measured: less than half as fast).

    As nats-py's ordered consumer does, it starts a new consumer just past the last event received when events were
    lost on the way (a gap in the delivery sequence: a reconnection) or none comes while some remain (the server lost
    the consumer or the requests)."""

    def __init__(self, nc: NATS, js: JetStreamContext, projection: Projection, *, window: int) -> None:
        self.nc, self.js, self.projection, self.window = nc, js, projection, window
        self._received: deque[Msg] = deque()
        self._arrived = asyncio.Event()  # set while `_received` holds events
        self._subscription: Subscription | None = None
        self._consumer = self._inbox = ""
        self._asked = 0  # events asked for and not received yet
        self._delivered = 0  # the consumer's delivery sequence of the last event received
        self._last = 0  # the stream sequence of the last event received
        self._broken = True  # no consumer yet, or one to replace

    async def take(self, most: int) -> list[Msg]:
        """The next events, at least one and at most `most`, waiting for the first if none has arrived yet."""
        while not self._received:
            if self._broken:
                with contextlib.suppress(*TRANSIENT):
                    await self._start()
            try:
                await asyncio.wait_for(self._arrived.wait(), STALL_SECONDS)
            except TimeoutError:
                self._broken = True
        batch = [self._received.popleft() for _ in range(min(most, len(self._received)))]
        if not self._received:
            self._arrived.clear()
        await self._ask()
        return batch

    async def close(self) -> None:
        """Stop receiving and delete the consumer (if NATS is away, it goes on its own after INACTIVE_SECONDS)."""
        with contextlib.suppress(nats.errors.Error):
            if self._subscription is not None:
                subscription, self._subscription = self._subscription, None
                await subscription.unsubscribe()
            if self._consumer:
                consumer, self._consumer = self._consumer, ""
                await self.js.delete_consumer(self.projection.stream, consumer)

    async def _start(self) -> None:
        """A new consumer from just past the last event received (the first time, from the stream's start)."""
        await self.close()
        self._inbox = self.nc.new_inbox()
        self._subscription = await self.nc.subscribe(self._inbox, cb=self._receive)
        name = uuid.uuid4().hex
        await self.js.add_consumer(
            self.projection.stream,
            ConsumerConfig(
                name=name,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE if self._last else DeliverPolicy.ALL,
                opt_start_seq=self._last + 1 if self._last else None,
                ack_policy=AckPolicy.NONE,
                filter_subjects=self.projection.subjects,
                inactive_threshold=INACTIVE_SECONDS,
                mem_storage=True,
                num_replicas=1,
            ),
        )
        self._consumer, self._asked, self._delivered, self._broken = name, 0, 0, False
        await self._ask()

    async def _ask(self) -> None:
        """Ask for what the window lacks, once that is a quarter of it or more (not a request per few events taken)."""
        wanted = self.window - len(self._received) - self._asked
        if not self._broken and wanted > 0 and wanted >= self.window // 4:
            subject = f"{DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{self.projection.stream}.{self._consumer}"
            await self.nc.publish(subject, json.dumps({"batch": wanted}).encode(), reply=self._inbox)
            self._asked += wanted

    async def _receive(self, msg: Msg) -> None:
        if self._broken or JetStreamContext.is_status_msg(msg):  # past a gap; or a request ended (consumer gone)
            return
        sequence = msg.metadata.sequence
        if sequence.consumer != self._delivered + 1:  # events were lost on the way
            self._broken = True
            return
        self._delivered, self._last = sequence.consumer, sequence.stream
        self._asked -= 1
        self._received.append(msg)
        self._arrived.set()


async def _matching(js: JetStreamContext, projection: Projection) -> tuple[int, int]:
    """How many events of the stream the projection follows, and the stream's last sequence."""
    counts: dict[str, int] = {}
    for subject in projection.subjects:
        info = await js.stream_info(projection.stream, subjects_filter=subject)
        counts.update(info.state.subjects or {})
    return sum(counts.values()), info.state.last_seq


async def _apply(worker: ProjectionConsumer, batch: list[Msg], generation: int) -> list[Msg]:
    """Apply a batch, dead-letter what fails, retry while the database is away; returns what still waits."""
    while True:
        try:
            outcome = await worker.apply(batch, generation)
            break
        except Unavailable:
            await asyncio.sleep(1.0)
    for msg, problem in outcome.failed:  # a replay cannot wait for a redelivery: retrying happened on first pass
        await worker.dead_letter(msg, repr(problem), generation)
    return outcome.waiting


def draw(done: int, total: int, seconds: float) -> None:
    width = 40
    filled = width if total == 0 else int(width * done / total)
    rate = done / seconds if seconds > 0 else 0.0
    bar = "█" * filled + "·" * (width - filled)
    print(f"\r{bar} {done}/{total} events  {rate:,.0f}/s", end="", file=sys.stderr, flush=True)
