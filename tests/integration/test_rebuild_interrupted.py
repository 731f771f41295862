"""A rebuild of the candidate view interrupted half-way (Ctrl-C): the running service's live consumer waits for it
rather than fill a view in replay, runs and confirmations answer 503 candidates_rebuilding, and running the rebuild
again brings back every event, the ones published meanwhile too. The matching service runs as a process."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client as NATS

from backbone.natsserver import NatsServer
from backbone.rebuild import replay
from backbone.runtime import Runtime
from backbone.settings import Settings
from services.matching.app import SPEC
from tests.helpers import (
    RegistryEvents,
    ServiceProcess,
    auth,
    candidates,
    matching_run,
    read_stream,
    rebuild_cli,
    wait_until,
)

XINGAN = "450325"
COORDINATOR = auth("coordinator", [XINGAN])
CHILDREN = 30
PROJECTION = "matching-candidates"


@pytest.fixture
def matching(nats_server: NatsServer, database_url: str, tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        "matching",
        nats_url=nats_server.url,
        database_url=database_url,
        data_dir=tmp_path,
        TIMER_SECONDS="0.5",
        CONSUMER_NOTICE_SECONDS="2",
    )
    try:
        yield service.start()
    finally:
        service.kill()


async def children_in_view(http: httpx.AsyncClient) -> set[str]:
    page = await http.get(
        "/views/candidates/children", params={"county_code": XINGAN, "limit": 500}, headers=COORDINATOR
    )
    assert page.status_code == 200, page.text
    return {child["child_id"] for child in page.json()["items"]}


async def interrupted_rebuild(database_url: str, nc: NATS) -> None:
    """`rebuild matching-candidates` stopped by Ctrl-C (the task cancelled, as asyncio.run does on SIGINT) once its
    first batch is applied."""
    runtime = Runtime(SPEC, Settings(database_url=database_url))
    runtime.nc = nc
    (projection,) = [p for p in SPEC.projections(runtime) if p.name == PROJECTION]
    rebuilding = asyncio.create_task(replay(runtime, projection, batch_size=5, progress=lambda *_: rebuilding.cancel()))
    try:
        with pytest.raises(asyncio.CancelledError):
            await rebuilding
    finally:
        await runtime.db.dispose()


def logged(service: ServiceProcess, event: str) -> list[dict[str, object]]:
    lines = (json.loads(line) for line in service.log.read_text().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == event]


async def replaying_gauge(http: httpx.AsyncClient) -> float:
    found = re.search(
        rf'^projection_replaying{{projection="{PROJECTION}"}} (\S+)$', (await http.get("/metrics")).text, re.M
    )
    assert found is not None, "no projection_replaying series"
    return float(found[1])


async def test_an_interrupted_rebuild_holds_the_live_consumer_and_runs_until_it_is_run_again(
    matching: ServiceProcess, nats_server: NatsServer, nc: NATS, database_url: str, tmp_path: Path
) -> None:
    bus = RegistryEvents(nc.jetstream())
    async with httpx.AsyncClient(base_url=matching.url, timeout=30) as http:
        await bus.volunteer()
        registered = {str(await bus.child("low")) for _ in range(CHILDREN)}
        await candidates(http, "children", CHILDREN)
        await candidates(http, "volunteers", 1)
        (proposal,) = (await matching_run(http))["proposals"]

        await interrupted_rebuild(database_url, nc)
        half = await children_in_view(http)
        assert len(half) < CHILDREN  # the first batch only
        late = str(await bus.child("low"))  # published while the view waits for its rebuild

        async def still_waiting() -> bool:
            return len(logged(matching, "consumer.waiting_for_rebuild")) >= 2 and await replaying_gauge(http) == 1

        # The consumer says so when it starts waiting and every 2 s after (CONSUMER_NOTICE_SECONDS): at the second
        # time, it has looked at the state again and again since the late child was published, and still waits.
        await wait_until(still_waiting, within=60, what="the live consumer to say twice that it waits for the rebuild")
        assert {line["projection"] for line in logged(matching, "consumer.waiting_for_rebuild")} == {PROJECTION}
        assert await children_in_view(http) == half  # neither the late child nor any other: the view is the replay's
        run = await http.post("/matching-runs", json={"county_code": XINGAN}, headers=COORDINATOR)
        confirm = await http.post(f"/pairings/{proposal['pairing_id']}/confirm", headers=COORDINATOR)
        for refused in (run, confirm):
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "candidates_rebuilding"

        rebuilt = await rebuild_cli(PROJECTION, database_url=database_url, nats_url=nats_server.url, data_dir=tmp_path)
        assert rebuilt.returncode == 0, rebuilt.stderr
        replayed = re.search(rf"rebuilt {PROJECTION}: (\d+) events", rebuilt.stderr)
        assert replayed is not None, rebuilt.stderr
        assert int(replayed[1]) == len(await read_stream(nc.jetstream(), "REGISTRY"))  # it follows all of them

        assert await children_in_view(http) == registered | {late}
        await wait_until(lambda: _gauge_is(http, 0), what="the live consumer to take over")
        confirmed = await http.post(f"/pairings/{proposal['pairing_id']}/confirm", headers=COORDINATOR)
        assert confirmed.status_code == 200, confirmed.text
        newcomer = str(await bus.child("low"))  # and it follows what comes next
        await wait_until(
            lambda: _in_view(http, newcomer), what="a child registered after the rebuild in the candidate view"
        )

        async def planned() -> bool:  # what the view's hooks skipped while it was rebuilt, the timer mends
            page = await http.get(
                "/views/engagement", params={"county_code": XINGAN, "limit": 500}, headers=COORDINATOR
            )
            return late in {row["child_id"] for row in page.json()["items"]}

        await wait_until(planned, what="the late child's visit schedule")


async def _gauge_is(http: httpx.AsyncClient, value: float) -> bool:
    return await replaying_gauge(http) == value


async def _in_view(http: httpx.AsyncClient, child_id: str) -> bool:
    return child_id in await children_in_view(http)
