"""`make bench`: the relay and the projection consumers against one-round-trip-per-event baselines, the bulk
imports' parsing against reading the same file with the csv module alone, and how long the services and NATS take to
stop as `make run` stops them on Ctrl-C, against the 5 s it promises.

Every figure comes with its baseline from the same run on the same machine; the ratio is what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import nats
import numpy as np
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from backbone.app import tune_gc
from backbone.consumer import ProjectionConsumer
from backbone.database import Database
from backbone.natsserver import NatsServer
from backbone.projection import finish_replay, reset
from backbone.rebuild import replay
from backbone.relay import Relay
from backbone.runtime import Runtime
from backbone.settings import Settings
from backbone.store import Append, EventStore, Plumbing
from backbone.streams import ensure_streams
from contracts.registry import ChildRegistered
from services.matching import runs, solver
from services.matching.app import SPEC as MATCHING
from services.matching.candidates import CandidateChild, Candidates, CandidateVolunteer
from services.registry.importing import parse_children, parse_volunteers
from tests.bench import console_pages
from tests.helpers import ServiceProcess, county_of, to_csv
from tests.unit import test_child_import as children_file
from tests.unit import test_volunteer_import as volunteers_file


def registered() -> ChildRegistered:
    return ChildRegistered(
        child_id=uuid.uuid4(), county_code="450325", category="orphan", risk_level="high", age_band="9-11"
    )


async def relay_rates(db: Database, client: nats.aio.client.Client, events: int) -> tuple[float, float]:
    """(events/s with a batch in flight, events/s with one awaited publish per event)."""
    store = EventStore(postgres=not db.is_sqlite)
    for start in range(0, events, 1000):
        async with db.begin() as conn:
            batch = [registered() for _ in range(min(1000, events - start))]
            await store.append(conn, *(Append(str(e.child_id), 0, [e]) for e in batch))
    relay = Relay(db, store, client, stream="REGISTRY", source="bench")
    js = client.jetstream()
    started = time.perf_counter()
    assert await relay.publish_pending() == events
    batched = events / (time.perf_counter() - started)
    async with db.read() as conn:
        sample = await store.committed_after(conn, (-1, 0), 2000)
    started = time.perf_counter()
    for event in sample:  # the baseline: wait for each ack before the next publish
        await js.publish("registry.bench.baseline", b"{}", headers={"Nats-Msg-Id": f"baseline-{event.event_id}"})
    one_by_one = len(sample) / (time.perf_counter() - started)
    return batched, one_by_one


async def consumer_rates(runtime: Runtime, js: nats.js.JetStreamContext, events: int) -> dict[str, float]:
    rates: dict[str, float] = {}
    count, seconds = await replay(runtime, Candidates())
    rates["rebuild (ordered replay, batches of 5,000)"] = count / seconds
    for label, batch in (("live consumer, batches of 500", 500), ("baseline: one event per round trip", 1)):
        async with runtime.db.begin() as conn:
            generation = await reset(conn, Candidates())
            await finish_replay(conn, Candidates.name, generation)
        worker = ProjectionConsumer(runtime.db, js, Candidates(), batch_size=batch)
        subscription = await worker.subscribe(generation)
        target = events if batch > 1 else min(events, 2000)
        done, started = 0, time.perf_counter()
        while done < target:
            msgs = await subscription.fetch(batch, timeout=5)
            await worker.handle(msgs, generation)
            done += len(msgs)
        rates[label] = done / (time.perf_counter() - started)
        await subscription.unsubscribe()
    return rates


def greedy(county: runs.County) -> tuple[dict[str, int], int]:
    """The baseline: children by risk, each taking the free volunteer who fits best; (paired per level, fit)."""
    children, volunteers = list(county.children), list(county.volunteers)
    fit, feasible = solver._pair_matrices(children, volunteers)
    free = np.array([v.free for v in volunteers])
    paired, total = dict.fromkeys(solver.RISK_LEVELS, 0), 0
    order = sorted(range(len(children)), key=lambda i: solver.RISK_LEVELS.index(children[i].risk_level))
    for i in order:
        options = np.flatnonzero(feasible[i] & (free > 0))
        if len(options):
            best = options[np.argmax(fit[i, options])]
            free[best] -= 1
            paired[children[i].risk_level] += 1
            total += int(fit[i, best])
    return paired, total


async def matching_run(runtime: Runtime) -> None:
    """One run over a county of 5,000 children and 3,000 volunteers, against greedy-by-score on the same county."""
    children, volunteers = county_of(5000, 3000)
    async with runtime.db.begin() as conn:
        await conn.execute(insert(CandidateChild), children)
        await conn.execute(insert(CandidateVolunteer), volunteers)
    async with runtime.db.read() as conn:
        county = await runs.county(conn, "450325", None)
    started = time.perf_counter()
    solution = solver.solve(county.children, county.volunteers)
    solving = time.perf_counter() - started
    started = time.perf_counter()
    done = await runs.run(runtime, "450325")
    whole = time.perf_counter() - started
    started = time.perf_counter()
    paired, fit = greedy(county)
    quick = time.perf_counter() - started
    assert done.solution.paired == solution.paired
    best = "/".join(str(solution.paired[level]) for level in solver.RISK_LEVELS)
    quick_pairs = "/".join(str(paired[level]) for level in solver.RISK_LEVELS)
    print(
        f"  {'matching run, 5,000 children x 3,000 volunteers':<42} {whole:>10.2f} s      ({whole / quick:.0f}x greedy)"
    )
    print(f"  {'  the optimal assignment alone':<42} {solving:>10.2f} s")
    print(f"  {'  paired high/medium/low, total fit':<42} {best}, {solution.fit}")
    print(f"  {'baseline: greedy by risk, then best fit':<42} {quick:>10.2f} s")
    print(f"  {'  paired high/medium/low, total fit':<42} {quick_pairs}, {fit}")


def import_parsing() -> None:
    """Rows per second checked by the bulk imports (a county's register of 10,000 children in GB18030 with Chinese
    column names, as Excel saves it; 2,000 volunteers), against splitting the same file into cells and nothing else."""
    print("\nbulk imports (no database)")
    for label, module, parse, count in (
        ("child import, 10,000 rows", children_file, parse_children, 10_000),
        ("volunteer import, 2,000 rows", volunteers_file, parse_volunteers, 2_000),
    ):
        rows = [module.generated(i) for i in range(count)]
        raw = to_csv(list(module.LABELS.values()), ([row[f] for f in module.FIELDS] for row in rows), "gb18030")
        started = time.perf_counter()
        parsed = parse(raw)
        seconds = time.perf_counter() - started
        assert len(parsed.accepted) == count, parsed.rejected[:3]
        started = time.perf_counter()
        assert sum(1 for _ in csv.reader(io.StringIO(raw.decode("gb18030")))) == count + 1  # and the header
        alone = time.perf_counter() - started
        print(f"  {label:<42} {seconds:>10.3f} s     ({count / seconds:,.0f} rows/s, {seconds / alone:.0f}x baseline)")
        print(f"  {'baseline: the csv module alone':<42} {alone:>10.3f} s     ({count / alone:,.0f} rows/s)")


def stopping() -> None:
    """Seconds from SIGTERM until each service has exited (finished its requests and batches, drained NATS), all
    three told at once, then NATS, as `make run` does on Ctrl-C; it promises 5 s for everything (it kills a service
    still running after 4 s, NATS after 0.8 s more, and says so; `make test` checks that none had to be killed)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    server = NatsServer(folder / "nats", sync_always=True).start()
    services = [
        ServiceProcess(
            name, nats_url=server.url, database_url=f"sqlite+aiosqlite:///{folder / name}.db", data_dir=folder
        ).start()
        for name in ("registry", "matching", "notifications")
    ]
    print("\nstopping as make run does on Ctrl-C (SQLite, idle)")
    try:
        started = time.perf_counter()
        for service in services:
            assert service.process is not None
            service.process.send_signal(signal.SIGTERM)
        for service in services:
            assert service.process is not None
            service.process.wait(60)
            print(f"  {service.name:<42} {time.perf_counter() - started:>10.2f} s")
        server.stop(timeout=60)
        print(f"  {'then NATS: everything stopped':<42} {time.perf_counter() - started:>10.2f} s     (promised: 5 s)")
    finally:
        for service in services:
            service.kill()
        server.kill()


async def run(url: str, events: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    server = NatsServer(folder / "nats").start()
    try:
        client = await nats.connect(server.url)
        js = client.jetstream()
        await ensure_streams(js)
        runtime = Runtime(MATCHING, Settings(database_url=url))
        await runtime.db.create(Plumbing.metadata, MATCHING.views)
        runtime.nc = client
        batched, one_by_one = await relay_rates(runtime.db, client, events)
        print(f"\n{runtime.db.url.get_backend_name()}, {events:,} events, {os.cpu_count()} cores")
        print(f"  {'relay, 500 in flight':<42} {batched:>10,.0f} events/s   ({batched / one_by_one:.1f}x baseline)")
        print(f"  {'baseline: one awaited publish per event':<42} {one_by_one:>10,.0f} events/s")
        rates = await consumer_rates(runtime, js, events)
        baseline = rates["baseline: one event per round trip"]
        for label, rate in rates.items():
            print(f"  {label:<42} {rate:>10,.0f} events/s   ({rate / baseline:.1f}x baseline)")
        await matching_run(runtime)
        await client.close()
        await runtime.db.dispose()
    finally:
        server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    tune_gc()
    import_parsing()
    stopping()
    console_pages.measure()
    asyncio.run(run(f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='bench-')}/bench.db", args.events))
    postgres = os.environ.get("TEST_POSTGRES_URL")
    if postgres:
        name = f"bench_{uuid.uuid4().hex[:8]}"
        asyncio.run(_admin(postgres, f'CREATE DATABASE "{name}"'))
        try:
            asyncio.run(
                run(str(make_url(postgres).set(database=name).render_as_string(hide_password=False)), args.events)
            )
        finally:
            asyncio.run(_admin(postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    else:
        print("\nPostgreSQL skipped: set TEST_POSTGRES_URL to measure it too")


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
