"""Reading one's own writes against real NATS and each database: a command's answer carries the token of what it
wrote (`X-Written`), and a view given it back (`X-Wait-For`) shows those writes at its first read, or after its bound
says it does not (`X-Fresh: false`), never failing for it; tokens not of ours are a 422 that repeats none of them.
The console passes the token of a visit logged to the overdue lists it shows next."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client as NATS

from backbone.clock import PROGRAMME_TIMEZONE, SettableClock
from backbone.freshness import FRESH, MAX_ENTRIES, WAIT_FOR, WRITTEN, parse
from backbone.natsserver import NatsServer
from backbone.relay import Relay
from backbone.runtime import Runtime
from backbone.settings import Settings
from services.console.app import create_app as create_console_app
from services.console.session import COOKIE, Sealer, Session
from services.console.settings import ConsoleSettings
from services.matching.app import create_app as create_matching_app
from services.registry.app import create_app as create_registry_app
from tests.helpers import RegistryEvents, auth, child_registration, keys, to_csv, token, wait_until
from tests.unit.test_child_import import COUNTIES, FIELDS, generated

XINGAN = "450325"
COORDINATOR = auth("coordinator", [XINGAN])
WAIT_FOR_MS = 10_000  # the services' bound here: a loaded test machine still shows a write well within it
CONSOLE_SECRET = "a-test-secret-of-at-least-thirty-two-characters"


@dataclass
class Matching:
    client: httpx.AsyncClient
    app: FastAPI

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime


@contextlib.asynccontextmanager
async def served(app: FastAPI, name: str) -> AsyncIterator[httpx.AsyncClient]:
    """The service's app running in this process (its lifespan: database, NATS, relay, consumers), once ready."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{name}", timeout=60) as client:

            async def ready() -> bool:
                return (await client.get("/ready")).status_code == 200

            await wait_until(ready, what=f"{name} to be ready")
            yield client


def settings(database_url: str, nats_server: NatsServer) -> Settings:
    return Settings(
        database_url=database_url,
        nats_url=nats_server.url,
        timer_seconds=0.2,
        wait_for_ms=WAIT_FOR_MS,
        **keys().settings(),
    )


@pytest.fixture
async def matching(nats_server: NatsServer, database_url: str, clock: SettableClock) -> AsyncIterator[Matching]:
    """Matching on the adapter's database, its runtime at hand (its relay is stopped by one test)."""
    app = create_matching_app(settings(database_url, nats_server), clock)
    async with served(app, "matching") as client:
        yield Matching(client, app)


@pytest.fixture
async def registry_beside(
    nats_server: NatsServer, clock: SettableClock, tmp_path: Path, matching: Matching
) -> AsyncIterator[FastAPI]:
    """The registry beside matching, on the same NATS and clock, with a database of its own."""
    app = create_registry_app(settings(f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}", nats_server), clock)
    async with served(app, "registry"):
        yield app


@pytest.fixture
def registry_events(matching: Matching, nc: NATS) -> RegistryEvents:
    """Registry events on the REGISTRY stream (which the matching service made), as the registry sends them."""
    return RegistryEvents(nc.jetstream())


def registry_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry", timeout=60)


def child_ids(page: httpx.Response) -> list[str]:
    assert page.status_code == 200, page.text
    return [row["child_id"] for row in page.json()["items"]]


async def overdue(matching: Matching, token: str | None = None, **params: int) -> httpx.Response:
    """The county's overdue list, as the console's visits and day pages read it; waiting for `token`'s writes."""
    headers = COORDINATOR | ({WAIT_FOR: token} if token else {})
    query: dict[str, str | int] = {"county_code": XINGAN, "overdue": "true", "limit": 500, **params}
    return await matching.client.get("/views/engagement", params=query, headers=headers)


async def an_overdue_child(matching: Matching, registry_events: RegistryEvents, clock: SettableClock) -> str:
    """A high-risk child matching has planned a visit for, the clock set past that visit's due date."""
    child = str(await registry_events.child("high"))
    row: dict[str, Any] = {}

    async def planned() -> bool:
        nonlocal row
        page = await matching.client.get(
            "/views/engagement", params={"county_code": XINGAN, "limit": 500}, headers=COORDINATOR
        )
        row = next((r for r in page.json()["items"] if r["child_id"] == child), {})
        return bool(row.get("next_due_at"))

    await wait_until(planned, what="the child's visit schedule in the engagement view")
    clock.set(datetime.fromisoformat(row["next_due_at"]) + timedelta(minutes=1))
    assert child in child_ids(await overdue(matching))
    return child


def a_visit(clock: SettableClock) -> dict[str, Any]:
    """An in-person visit by the coordinator, now."""
    moment = clock.now().isoformat()
    return {"visitor": "coordinator", "kind": "visit", "in_person": True, "occurred_at": moment, "duration_minutes": 45}


async def test_a_child_registered_is_in_matchings_candidate_view_at_the_first_read_with_the_token(
    registry_beside: FastAPI, matching: Matching
) -> None:
    async with registry_client(registry_beside) as registry:
        answer = await registry.post("/children", json=child_registration(), headers=COORDINATOR)
    assert answer.status_code == 201, answer.text
    child = answer.json()["id"]
    ((kind, aggregate), version), *others = parse(answer.headers[WRITTEN]).versions.items()
    assert (kind, aggregate, others) == ("registry.child", child, [])
    assert version >= 1

    page = await matching.client.get(
        "/views/candidates/children",
        params={"county_code": XINGAN, "limit": 500},
        headers=COORDINATOR | {WAIT_FOR: answer.headers[WRITTEN]},
    )

    assert page.headers[FRESH] == "true"
    assert child in child_ids(page)
    # The same through the query, as a link can carry it.
    query: dict[str, str | int] = {"county_code": XINGAN, "limit": 500, "wait_for": answer.headers[WRITTEN]}
    again = await matching.client.get("/views/candidates/children", params=query, headers=COORDINATOR)
    assert (again.headers[FRESH], child in child_ids(again)) == ("true", True)


async def test_a_visit_logged_for_an_overdue_child_takes_it_off_the_overdue_list_at_the_first_read_with_the_token(
    matching: Matching, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    child = await an_overdue_child(matching, registry_events, clock)

    logged = await matching.client.post(f"/children/{child}/contacts", json=a_visit(clock), headers=COORDINATOR)

    assert logged.status_code == 201, logged.text
    written = parse(logged.headers[WRITTEN]).versions
    assert {kind for kind, _ in written} == {"matching.child", "matching.contact"}  # its schedule moved, a contact
    assert ("matching.contact", logged.json()["contact_id"]) in written
    page = await overdue(matching, logged.headers[WRITTEN])
    assert page.headers[FRESH] == "true"
    assert child not in child_ids(page)
    assert WRITTEN not in page.headers  # a read wrote nothing


async def test_a_view_that_cannot_show_the_writes_in_time_answers_as_it_is_after_its_bound_and_then_shows_them(
    matching: Matching, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    child = await an_overdue_child(matching, registry_events, clock)
    relay = matching.runtime.relay
    assert relay is not None
    relay.stop()  # matching's events stay in its log: no view can follow them
    logged = await matching.client.post(f"/children/{child}/contacts", json=a_visit(clock), headers=COORDINATOR)
    assert logged.status_code == 201, logged.text
    token = logged.headers[WRITTEN]

    late = await overdue(matching, token, wait_ms=200)
    at_once = await overdue(matching, token, wait_ms=0)
    for answer in (late, at_once):
        assert answer.headers[FRESH] == "false"
        assert child in child_ids(answer)  # the view as it stands, not an error
    assert FRESH not in (await overdue(matching)).headers  # not asked, not said

    assert matching.runtime.nc is not None
    publishing = Relay(
        matching.runtime.db, matching.runtime.store, matching.runtime.nc, stream="MATCHING", source="matching"
    )
    running = asyncio.create_task(publishing.run())
    try:
        shown = await overdue(matching, token)
        assert shown.headers[FRESH] == "true"
        assert child not in child_ids(shown)
        ahead = re.sub(r":(\d+)(?=,|$)", lambda version: f":{int(version[1]) + 1000}", token)  # never written
        never = await overdue(matching, ahead, wait_ms=100)
        assert never.headers[FRESH] == "false"
        assert child not in child_ids(never)
    finally:
        publishing.stop()
        await running


async def test_a_token_not_of_ours_is_refused_without_being_repeated_and_only_a_signed_in_caller_makes_a_view_wait(
    matching: Matching,
) -> None:
    child = str(uuid.uuid4())
    bad_tokens = [
        "13907730001",
        "registry.child:韦小芳:1",
        f"registry.child:{child}:0",
        f"registry.child:{child.upper()}:3",
        f"registry.child:{child}:3;DROP TABLE projection_cursors",
        ",".join(f"registry.child:{uuid.uuid4()}:1" for _ in range(MAX_ENTRIES + 1)),
        f"registry.child:{'f' * 5000}:1",
    ]
    for bad in bad_tokens:
        answer = await matching.client.get(
            "/views/candidates/children",
            params={"county_code": XINGAN},
            headers=[(name.encode(), value.encode()) for name, value in (COORDINATOR | {WAIT_FOR: bad}).items()],
        )
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert (error["code"], [p["field"] for p in error["details"]["problems"]]) == (
            "invalid",
            [f"header.{WAIT_FOR}"],
        )
        assert not any(len(part) > 2 and part in answer.text for part in re.split("[:,;]", bad))
        assert FRESH not in answer.headers

    by_query = await matching.client.get(
        "/views/engagement", params={"county_code": XINGAN, "wait_for": "13907730001"}, headers=COORDINATOR
    )
    assert by_query.status_code == 422
    assert by_query.json()["error"]["details"]["problems"][0]["field"] == "query.wait_for"
    assert "13907730001" not in by_query.text

    valid = f"registry.child:{child}:1"  # a child nobody registered: it would wait for the whole bound
    anonymous = await matching.client.get(
        "/views/candidates/children", params={"county_code": XINGAN}, headers={WAIT_FOR: valid}
    )
    assert anonymous.status_code == 401
    assert FRESH not in anonymous.headers


async def test_a_bulk_import_answers_without_a_token_and_a_small_one_with_it(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    clock.set(datetime(2023, 1, 10, 9, tzinfo=PROGRAMME_TIMEZONE))  # the generated children are minors then
    headers = auth("coordinator", COUNTIES) | {"Content-Type": "text/csv"}
    rows = [generated(i) for i in range(MAX_ENTRIES + 2)]

    bulk = await registry.post(
        "/children/import", content=to_csv(FIELDS, ([r[f] for f in FIELDS] for r in rows[:-1])), headers=headers
    )
    one = await registry.post(
        "/children/import", content=to_csv(FIELDS, [[rows[-1][f] for f in FIELDS]]), headers=headers
    )

    assert (bulk.status_code, bulk.json()["imported"]) == (200, MAX_ENTRIES + 1), bulk.text[:300]
    assert WRITTEN not in bulk.headers
    assert (one.status_code, one.json()["imported"]) == (200, 1), one.text[:300]
    assert [kind for kind, _ in parse(one.headers[WRITTEN]).versions] == ["registry.child"]


async def test_the_console_shows_the_overdue_lists_without_the_child_right_after_its_visit_is_logged(
    matching: Matching, registry_beside: FastAPI, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    child = await an_overdue_child(matching, registry_events, clock)
    console = create_console_app(
        ConsoleSettings(
            registry_url="http://registry",
            matching_url="http://matching",
            session_secret=CONSOLE_SECRET,
        )
    )
    # The console calls the services in this process, as it would over the network.
    await console.state.upstream.http.aclose()
    console.state.upstream.http = httpx.AsyncClient(
        mounts={
            "http://matching": httpx.ASGITransport(app=matching.app),
            "http://registry": httpx.ASGITransport(app=registry_beside),
        },
        timeout=60,
    )
    sealer = Sealer(CONSOLE_SECRET)
    session = Session(
        access_token=token("coordinator", [XINGAN]),
        expires_at=time.time() + 3600,
        sub="coordinator",
        role="coordinator",
        counties=(XINGAN,),
    )
    transport = httpx.ASGITransport(app=console)
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as browser:
        browser.cookies.set(COOKIE, sealer.seal(session), domain="console.test")
        before = await browser.get(f"/visits?county={XINGAN}&overdue=1")
        assert f'data-child="{child}"' in before.text

        now = clock.now().astimezone(PROGRAMME_TIMEZONE).strftime("%Y-%m-%dT%H:%M")
        form = {"visitor": "coordinator", "kind": "visit", "in_person": "yes", "occurred_at": now}
        logged = await browser.post(
            f"/children/{child}/contacts", data=form | {"duration_minutes": "45", "csrf": session.csrf}
        )
        assert logged.status_code == 303, logged.text
        kept = sealer.open(browser.cookies[COOKIE])
        assert kept is not None
        assert kept.written is not None
        assert ("matching.child", child) in parse(kept.written).versions

        visits = await browser.get(f"/visits?county={XINGAN}&overdue=1")
        today = await browser.get(f"/today?county={XINGAN}")

    assert visits.status_code == 200, visits.text
    assert f'data-child="{child}"' not in visits.text
    assert today.status_code == 200, today.text
    assert f'data-child="{child}"' not in today.text
    await console.state.upstream.close()
