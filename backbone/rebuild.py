"""Rebuild a projection: drop its rows, replay its stream fast, then hand over to the live consumers.

The replay reads the stream through an ordered push consumer (no acks, flow-controlled) and applies it in large
batches through the same code as the live consumers. Meanwhile the live consumers wait; when the replay has
caught up it creates the new generation's durable consumer just past the last event it applied, and lets them go.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable

import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from backbone import logs
from backbone.app import tune_gc
from backbone.consumer import ProjectionConsumer, Unavailable, durable_name
from backbone.projection import Projection, finish_replay, reset
from backbone.runtime import Runtime, ServiceSpec
from backbone.settings import Settings
from backbone.store import Plumbing

Progress = Callable[[int, int, float], None]


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
    js = runtime.js
    async with runtime.db.begin() as conn:
        generation = await reset(conn, projection)
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(projection.stream, durable_name(projection, generation - 1))
    worker = ProjectionConsumer(runtime.db, js, projection)
    total, stream_end = await _matching(js, projection)
    inbox: asyncio.Queue[Msg] = asyncio.Queue(maxsize=2 * batch_size)  # back-pressure via flow control
    subscription = await js.subscribe(
        projection.subjects[0],
        stream=projection.stream,
        ordered_consumer=True,
        config=ConsumerConfig(filter_subjects=projection.subjects, deliver_policy=DeliverPolicy.ALL),
        cb=inbox.put,
    )
    applied, last_seen = 0, 0
    waiting: list[Msg] = []
    try:
        caught_up = total == 0
        while not caught_up:
            batch = [await inbox.get()]
            while len(batch) < batch_size and not inbox.empty():
                batch.append(inbox.get_nowait())
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
        await subscription.unsubscribe()
    # Live consumers take over just past the last event seen (or the stream's end if there was none), or at the
    # first event still waiting for its predecessor: they wait for it as they always do, and skip what is applied.
    start = min(m.metadata.sequence.stream for m in waiting) if waiting else (last_seen or stream_end) + 1
    await js.add_consumer(projection.stream, runtime.consumer(projection).config(generation, start=start))
    async with runtime.db.begin() as conn:
        await finish_replay(conn, projection.name, generation)
    return applied, time.monotonic() - started


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
