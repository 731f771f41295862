"""The console's pages with 10,000 children in one county: how long the console takes to answer each, against the
slowest single API call the page makes (what any page built on these APIs must wait for at least)."""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import httpx

from backbone.natsserver import NatsServer
from services.console.session import COOKIE, Sealer, Session
from tests.helpers import ServiceProcess, auth, to_csv, token
from tests.unit.test_child_import import FIELDS, id_number

COUNTY = "450325"
CHILDREN = 10_000
SECRET = "bench-console-session-secret-0123456789abcdef"
GOAL_MS = 300


def children() -> bytes:
    rows = []
    for i in range(CHILDREN):
        born = date(2010, 1, 1) + timedelta(days=i % 3000)
        rows.append(
            {
                "name": f"儿童{i}",
                "id_number": id_number(COUNTY, born, 100 + 2 * (i // 3000) + i % 2),
                "birth_date": born.isoformat(),
                "gender": ("female", "male")[i % 2],
                "category": ("orphan", "de_facto_unsupported", "left_behind", "in_difficulty")[i % 4],
                "county_code": COUNTY,
                "township": f"第{i % 9 + 1}镇",
                "village": f"第{i % 30 + 1}村",
                "risk_level": ("high", "medium", "low")[i % 3],
                "guardianship": "grandparents",
                "guardian_name": "韦大山",
                "guardian_phone": f"139{i:08d}",
                "needs": "tutoring",
                "languages": "zh",
                "flags": "",
            }
        )
    return to_csv(FIELDS, ([row[f] for f in FIELDS] for row in rows))


def timed(client: httpx.Client, path: str, rounds: int, **options: object) -> list[float]:
    spent = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = client.get(path, **options)  # type: ignore[arg-type]
        spent.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    return spent


def measure(rounds: int = 30) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-console-"))
    server = NatsServer(folder / "nats").start()
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
            "console", nats_url=server.url, database_url="", data_dir=folder, SESSION_SECRET=SECRET, **urls
        ).start()
        staff = auth("coordinator", [COUNTY])
        imported = httpx.post(
            f"{services['registry'].url}/children/import",
            content=children(),
            headers=staff | {"Content-Type": "text/csv"},
            timeout=300,
        ).json()
        assert imported["imported"] == CHILDREN, imported
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # until matching's views hold them all
            listed = httpx.get(
                f"{services['matching'].url}/views/engagement",
                params={"county_code": COUNTY, "limit": 1},
                headers=staff,
            ).json()
            if listed["total"] >= CHILDREN:
                break
            time.sleep(1)
        session = Session(
            access_token=token("coordinator", [COUNTY]),
            expires_at=time.time() + 3600,
            sub="bench",
            role="coordinator",
            counties=(COUNTY,),
        )
        cookies = {COOKIE: Sealer(SECRET).seal(session)}
        pages = {
            "/today": ("matching", "/views/engagement", {"county_code": COUNTY, "overdue": "true", "limit": 10}),
            "/children": ("matching", "/views/candidates/children", {"county_code": COUNTY, "limit": 50}),
            "/children?page=150": (
                "matching",
                "/views/candidates/children",
                {"county_code": COUNTY, "limit": 50, "offset": 7450},
            ),
        }
        print(f"\nconsole pages, {CHILDREN:,} children in county {COUNTY}, {rounds} requests each")
        print(f"  (goal: p95 under {GOAL_MS} ms)")
        with httpx.Client(base_url=console.url, cookies=cookies, timeout=30) as browser:
            for page, (service, path, params) in pages.items():
                spent = timed(browser, page, rounds)
                with httpx.Client(base_url=services[service].url, headers=staff, timeout=30) as api:  # type: ignore[index]
                    raw = timed(api, path, rounds, params=params)
                p50, p95 = statistics.median(spent), statistics.quantiles(spent, n=20)[-1]
                print(
                    f"  {page:<22} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  ({p50 / statistics.median(raw):.1f}x its "
                    f"slowest API call, {path}: p50 {statistics.median(raw):.1f} ms)"
                    f"{'' if p95 < GOAL_MS else '  OVER GOAL'}"
                )
        console.kill()
    finally:
        for service in services.values():
            service.kill()
        server.kill()
