"""The console's pages with 10,000 children in one county: how long the console takes to answer each, against the
slowest single API call the page makes (what any page built on these APIs must wait for at least). NATS runs with
sync_always, as `make run` starts it."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx

from backbone.natsserver import NatsServer
from services.console.session import COOKIE, Sealer, Session
from tests.bench.pipeline import child_rows
from tests.bench.report import say
from tests.helpers import ServiceProcess, auth, to_csv, token
from tests.unit.test_child_import import FIELDS

COUNTY = "450325"
CHILDREN = 10_000
SECRET = "bench-console-session-secret-0123456789abcdef"
GOAL_MS = 300


def children(count: int) -> bytes:
    return to_csv(FIELDS, child_rows(count, date.today(), (COUNTY,)))


def timed(client: httpx.Client, path: str, rounds: int, **options: object) -> list[float]:
    spent = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = client.get(path, **options)  # type: ignore[arg-type]
        spent.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    return spent


@dataclass
class Page:
    page: str
    p50_ms: float
    p95_ms: float
    api: str  # the slowest API call the page makes
    api_p50_ms: float


def measure(folder: Path, count: int = CHILDREN, rounds: int = 30) -> list[Page]:
    server = NatsServer(folder / "nats-console", sync_always=True).start()
    services = {
        name: ServiceProcess(
            name, nats_url=server.url, database_url=f"sqlite+aiosqlite:///{folder / name}.db", data_dir=folder
        )
        for name in ("registry", "matching", "notifications")  # the console is ready once it reaches all three
    }
    try:
        for service in services.values():
            service.start()
        urls = {f"{name.upper()}_URL": service.url for name, service in services.items()}
        console = ServiceProcess(
            "console",
            nats_url=server.url,
            database_url="",
            data_dir=folder,
            SESSION_SECRET=SECRET,
            **urls,  # type: ignore[arg-type]
        ).start()
        staff = auth("coordinator", [COUNTY])
        say(f"console pages: importing {count:,} children into county {COUNTY}")
        imported = httpx.post(
            f"{services['registry'].url}/children/import",
            content=children(count),
            headers=staff | {"Content-Type": "text/csv"},
            timeout=300,
        ).json()
        assert imported["imported"] == count, imported
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:  # until matching's views hold them all
            listed = httpx.get(
                f"{services['matching'].url}/views/engagement",
                params={"county_code": COUNTY, "limit": 1},
                headers=staff,
            ).json()
            if listed["total"] >= count:
                break
            time.sleep(1)
        else:
            raise RuntimeError(
                f"matching's engagement view holds {listed['total']:,} of {count:,} children after 600 s"
            )
        session = Session(
            access_token=token("coordinator", [COUNTY]),
            expires_at=time.time() + 3600,
            sub="bench",
            role="coordinator",
            counties=(COUNTY,),
        )
        cookies = {COOKIE: Sealer(SECRET).seal(session)}
        deep = max(1, count // 50 * 3 // 4)  # three quarters into the list: page 150 of 200
        pages = {
            "/today": ("matching", "/views/engagement", {"county_code": COUNTY, "overdue": "true", "limit": 10}),
            "/children": ("matching", "/views/candidates/children", {"county_code": COUNTY, "limit": 50}),
            f"/children?page={deep}": (
                "matching",
                "/views/candidates/children",
                {"county_code": COUNTY, "limit": 50, "offset": (deep - 1) * 50},
            ),
        }
        say(f"console pages: {rounds} requests each")
        found = []
        with httpx.Client(base_url=console.url, cookies=cookies, timeout=30) as browser:
            for page, (upstream, path, params) in pages.items():
                spent = timed(browser, page, rounds)
                with httpx.Client(base_url=services[upstream].url, headers=staff, timeout=30) as api:
                    raw = timed(api, path, rounds, params=params)
                p50, p95 = statistics.median(spent), statistics.quantiles(spent, n=20)[-1]
                found.append(Page(page, p50, p95, path, statistics.median(raw)))
        console.kill()
        return found
    finally:
        for service in services.values():
            service.kill()
        server.kill()
