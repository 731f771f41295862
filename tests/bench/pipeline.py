"""The real pipeline: nats-server (sync_always, as `make run` starts it) and the three services as processes on one
database kind; a bulk import through the registry's HTTP API until every child is in matching's candidate view and
engagement view; then single registrations at fixed open-loop rates until each child is visible; the services' peak
memory; and how long they and NATS take to stop, as `make run` stops them on Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Uuid, column, select, table, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from backbone.natsserver import NatsServer
from tests.bench.common import SERVICES, Databases, peak_rss_mb
from tests.bench.loadgen import Connections
from tests.bench.report import say
from tests.helpers import ServiceProcess, auth, child_registration, to_csv
from tests.unit.test_child_import import FIELDS, LABELS, id_number

IMPORT_COUNTIES = ("450325", "450721", "450521", "450981")  # 兴安县, 灵山县, 合浦县, 北流市
LATENCY_COUNTY = "450102"  # 兴宁区: nobody imported there, so its candidates are only the latency run's
STALL_SECONDS = 180.0  # the views not growing for this long: the children still missing are reported missing
CANDIDATES = table("candidate_children", column("child_id", Uuid))


def child_rows(count: int, today: date, counties: tuple[str, ...] = IMPORT_COUNTIES) -> Iterator[list[str]]:
    """Children of 6 to 16 spread over the counties, every ID number valid and different."""
    first = date(today.year - 16, 1, 1)
    for i in range(count):
        q, r = divmod(i, 3650)
        born, male = first + timedelta(days=r), i % 2
        county = counties[i % len(counties)]
        row = {
            "name": f"儿童{i}",
            "id_number": id_number(county, born, 100 + 2 * q + male),  # odd sequence digit: a boy
            "birth_date": born.isoformat(),
            "gender": ("female", "male")[male],
            "category": ("orphan", "de_facto_unsupported", "left_behind", "in_difficulty")[i % 4],
            "county_code": county,
            "township": f"第{i % 9 + 1}镇",
            "village": f"第{i % 30 + 1}村",
            "risk_level": ("high", "medium", "low")[i % 3],
            "guardianship": "grandparents",
            "guardian_name": "韦大山",
            "guardian_phone": f"139{i:08d}",
            "needs": ("tutoring", "companionship;material", "", "psychological")[i % 4],
            "languages": ("zh", "zh;zhuang")[i % 2],
            "flags": "",
        }
        yield [row[f] for f in FIELDS]


def import_files(count: int, per_file: int) -> list[tuple[int, bytes]]:
    """The register as a county's office would send it: Chinese headers, GB18030, `per_file` rows a file (the
    registry takes 20,000 rows and 16 MB at most); (rows, file) each."""
    rows = list(child_rows(count, date.today()))
    chunks = [rows[start : start + per_file] for start in range(0, count, per_file)]
    return [(len(chunk), to_csv(list(LABELS.values()), chunk, "gb18030")) for chunk in chunks]


@dataclass
class Imported:
    children: int
    http_seconds: float
    candidates_seconds: float  # inf: not every child arrived
    engagement_seconds: float
    candidates: int  # how many arrived
    engagement: int
    registry_events: int


@dataclass
class Latency:
    rate: float
    sent: int
    answered: int  # 201
    visible: int
    http: list[float] = field(default_factory=list)  # seconds from the scheduled send to the answer; inf: none
    seen: list[float] = field(default_factory=list)  # from the scheduled send until in the candidate view
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class Stack:
    kind: str
    imported: Imported | None = None
    latency: list[Latency] = field(default_factory=list)
    peak_rss_mb: dict[str, float | None] = field(default_factory=dict)
    stopping: dict[str, float] = field(default_factory=dict)


async def _count(engine: AsyncEngine, statement: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(statement))).scalar_one())


async def import_children(registry: str, engines: dict[str, AsyncEngine], count: int, per_file: int) -> Imported:
    files = import_files(count, per_file)
    headers = auth("coordinator", [*IMPORT_COUNTIES, LATENCY_COUNTY]) | {"Content-Type": "text/csv"}
    events_before = await _count(engines["registry"], "SELECT count(*) FROM events")
    arrived = {"candidates": math.inf, "engagement": math.inf}
    counts = {"candidates": 0, "engagement": 0}
    uploaded = asyncio.Event()

    async def watch(started: float) -> None:
        """Count both views four times a second until every child is in both, or neither grows any more."""
        grown, shown = time.perf_counter(), time.perf_counter()
        while True:
            now_counts = {
                "candidates": await _count(engines["matching"], "SELECT count(*) FROM candidate_children"),
                "engagement": await _count(engines["matching"], "SELECT count(*) FROM engagement"),
            }
            now = time.perf_counter()
            for view, n in now_counts.items():
                if n >= count and math.isinf(arrived[view]):
                    arrived[view] = now - started
            if now_counts != counts:
                counts.update(now_counts)
                grown = now
            if all(math.isfinite(v) for v in arrived.values()):
                return
            if uploaded.is_set() and now - grown > STALL_SECONDS:
                say(f"  the views have not grown for {STALL_SECONDS:.0f} s: giving up on the missing children")
                return
            if now - shown >= 10:
                shown = now
                say(f"  candidate view {counts['candidates']:,}, engagement view {counts['engagement']:,} of {count:,}")
            await asyncio.sleep(0.25)

    started = time.perf_counter()
    watching = asyncio.create_task(watch(started))
    async with httpx.AsyncClient(base_url=registry, timeout=600) as client:
        done = 0
        for rows, body in files:
            answer = await client.post("/children/import", content=body, headers=headers)
            assert answer.status_code == 200, (answer.status_code, answer.text[:300])
            result = answer.json()
            # the registry's row errors name fields and rules, never a cell's text
            assert result["imported"] == rows, (result["imported"], result["already_imported"], result["rejected"][:3])
            done += result["imported"]
    http_seconds = time.perf_counter() - started
    uploaded.set()
    say(f"  {done:,} children imported over HTTP in {http_seconds:.1f} s; waiting for matching's views")
    await watching
    events = await _count(engines["registry"], "SELECT count(*) FROM events") - events_before
    return Imported(
        count,
        http_seconds,
        arrived["candidates"],
        arrived["engagement"],
        counts["candidates"],
        counts["engagement"],
        events,
    )


class Visibility:
    """Every 5 ms, which of the children answered but not yet seen are in the candidate view now."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.pending: dict[uuid.UUID, float] = {}  # child id → when its request was due to be sent
        self.seen: dict[uuid.UUID, float] = {}  # child id → seconds from then until seen
        self.stopping = False
        self.all_seen = asyncio.Event()  # nothing pending

    async def run(self) -> None:
        async with self.engine.connect() as conn:
            while not self.stopping:
                if self.pending:
                    ids = list(self.pending)
                    found: list[uuid.UUID] = []
                    for start in range(0, len(ids), 500):
                        query = select(CANDIDATES.c.child_id).where(CANDIDATES.c.child_id.in_(ids[start : start + 500]))
                        found += (await conn.execute(query)).scalars().all()
                    await conn.rollback()  # the next look sees what committed since
                    now = time.perf_counter()
                    for child_id in found:
                        self.seen[child_id] = now - self.pending.pop(child_id)
                    if not self.pending:
                        self.all_seen.set()
                await asyncio.sleep(0.005)


async def open_loop(registry: str, engine: AsyncEngine, rate: float, seconds: float) -> Latency:
    """`rate` registrations a second on a fixed schedule, never waiting for earlier answers; each latency counts from
    when its request was due, so a late sender shows as latency, not as fewer requests."""
    count = max(1, round(rate * seconds))
    headers = auth("coordinator", [LATENCY_COUNTY])
    result = Latency(rate, count, 0, 0)
    http: list[float] = []
    visibility = Visibility(engine)
    poller = asyncio.create_task(visibility.run())
    connections = Connections(registry)
    requests = [
        connections.request(
            "POST",
            "/children",
            child_registration(county_code=LATENCY_COUNTY, name=f"延迟{i}", guardian_phone=f"138{i:08d}"),
            headers,
        )
        for i in range(count)
    ]
    try:
        start = time.perf_counter() + 0.5

        async def one(i: int) -> None:
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                answer = await connections.send(requests[i])
            except (OSError, asyncio.IncompleteReadError) as error:
                http.append(math.inf)
                result.errors[type(error).__name__] = result.errors.get(type(error).__name__, 0) + 1
                return
            http.append(time.perf_counter() - due if answer.status == 201 else math.inf)
            if answer.status != 201:
                result.errors[str(answer.status)] = result.errors.get(str(answer.status), 0) + 1
                return
            result.answered += 1
            child_id = uuid.UUID(answer.json()["id"])
            visibility.pending[child_id] = due

        await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await connections.close()
    visibility.all_seen.clear()  # (set whenever nothing was pending, between requests too)
    if visibility.pending:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(visibility.all_seen.wait(), STALL_SECONDS)
    visibility.stopping = True
    await poller
    result.visible = len(visibility.seen)
    result.http = http
    result.seen = [*visibility.seen.values(), *[math.inf] * (count - len(visibility.seen))]
    return result


async def _engines(urls: dict[str, str]) -> dict[str, AsyncEngine]:
    return {name: create_async_engine(url) for name, url in urls.items() if name in ("registry", "matching")}


async def _measure(stack: Stack, services: dict[str, ServiceProcess], urls: dict[str, str], sizes: Any) -> None:
    engines = await _engines(urls)
    try:
        if sizes.children:
            say(f"pipeline ({stack.kind}): importing {sizes.children:,} children, {sizes.import_rows:,} rows a request")
            stack.imported = await import_children(services["registry"].url, engines, sizes.children, sizes.import_rows)
        for rate in sizes.rates:
            say(f"pipeline ({stack.kind}): POST /children at {rate:g}/s for {sizes.latency_seconds:g} s")
            found = await open_loop(services["registry"].url, engines["matching"], rate, sizes.latency_seconds)
            stack.latency.append(found)
            say(f"  answered {found.answered:,} of {found.sent:,}, {found.visible:,} visible in the candidate view")
    finally:
        for engine in engines.values():
            await engine.dispose()


def run(dbs: Databases, folder: Path, sizes: Any) -> Stack:
    """One stack on one database kind: measure, read each service's peak memory, then stop it as make run does."""
    stack = Stack(dbs.kind)
    server = NatsServer(folder / f"nats-{dbs.kind}", sync_always=True).start()
    urls = {name: dbs.fresh(name) for name in SERVICES}
    services = {
        name: ServiceProcess(name, nats_url=server.url, database_url=urls[name], data_dir=folder) for name in SERVICES
    }
    try:
        say(f"pipeline ({dbs.kind}): starting nats-server and the three services")
        for service in services.values():
            service.start()
        asyncio.run(_measure(stack, services, urls, sizes))
        for name, service in services.items():
            assert service.process is not None
            stack.peak_rss_mb[name] = peak_rss_mb(service.process.pid)
        say(f"pipeline ({dbs.kind}): stopping as make run does on Ctrl-C")
        started = time.perf_counter()
        for service in services.values():
            assert service.process is not None
            service.process.send_signal(signal.SIGTERM)
        for name, service in services.items():
            assert service.process is not None
            service.process.wait(60)
            stack.stopping[name] = time.perf_counter() - started
        server.stop(timeout=60)
        stack.stopping["nats"] = time.perf_counter() - started
    finally:
        for service in services.values():
            service.kill()
        server.kill()
    return stack
