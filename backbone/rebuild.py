"""Rebuild a projection: start a new generation (empty rows), then replay every event from the stream.

The service's own consumers follow the new generation and share the work; this command joins them as one more
worker and shows progress until the replay has caught up, so it works whether or not the service is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

import nats
from nats.js.errors import NotFoundError

from backbone import logs
from backbone.consumer import ProjectionConsumer, durable_name
from backbone.projection import Projection, reset
from backbone.runtime import Runtime, ServiceSpec
from backbone.settings import Settings
from backbone.store import Plumbing


async def rebuild(spec: ServiceSpec, settings: Settings, name: str | None, *, list_only: bool = False) -> int:
    logs.configure(spec.name, fmt=settings.log_format, level="warning")
    runtime = Runtime(spec, settings)
    projections = {p.name: p for p in spec.projections(runtime)}
    if list_only or name not in projections:
        print("projections:", ", ".join(sorted(projections)) or "none", file=sys.stderr)
        return 0 if list_only else 2
    await runtime.db.create(Plumbing.metadata, spec.views)
    runtime.nc = await nats.connect(settings.nats_url, name=f"{spec.name}-rebuild")
    try:
        count, seconds = await replay(runtime, projections[name], progress=True)
    finally:
        await runtime.nc.drain()
        await runtime.db.dispose()
    print(f"rebuilt {name}: {count} events in {seconds:.1f} s", file=sys.stderr)
    return 0


async def replay(runtime: Runtime, projection: Projection, *, progress: bool = False) -> tuple[int, float]:
    """Reset `projection` and wait until its new generation has applied the whole stream; (events, seconds)."""
    started = time.monotonic()
    async with runtime.db.begin() as conn:
        generation = await reset(conn, projection)
    js = runtime.js
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(projection.stream, durable_name(projection, generation - 1))
    worker = ProjectionConsumer(runtime.db, js, projection, batch_size=runtime.settings.consumer_batch_size)
    await js.add_consumer(projection.stream, worker.config(generation))
    total = (await js.consumer_info(projection.stream, durable_name(projection, generation))).num_pending or 0
    task = asyncio.create_task(worker.run())
    try:
        while True:
            info = await js.consumer_info(projection.stream, durable_name(projection, generation))
            remaining = (info.num_pending or 0) + (info.num_ack_pending or 0)
            total = max(total, remaining)
            if progress:
                _draw(total - remaining, total, time.monotonic() - started)
            if remaining == 0:
                break
            await asyncio.sleep(0.2)
    finally:
        worker.stop()
        await asyncio.wait([task], timeout=5)
        if progress:
            print(file=sys.stderr)
    return total, time.monotonic() - started


def _draw(done: int, total: int, seconds: float) -> None:
    width = 40
    filled = width if total == 0 else int(width * done / total)
    rate = done / seconds if seconds > 0 else 0.0
    bar = "█" * filled + "·" * (width - filled)
    print(f"\r{bar} {done}/{total} events  {rate:,.0f}/s", end="", file=sys.stderr, flush=True)
