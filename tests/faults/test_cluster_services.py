"""The registry and matching as real processes on a 3-node cluster: nodes die while children are registered.

A restarted stream leader must catch up, a second loss must not hold back new children on their way to matching's
views, and a cluster that has lost its quorum must show in every replica's readiness.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client as NATS

from deploy.natscluster import NatsCluster
from tests.faults.cluster import copies, ensured, leader_of, node_named, running, stored_at_least
from tests.helpers import ServiceProcess, auth, child_registration, wait_until

XINGAN = "450325"
COORDINATOR = auth("coordinator", [XINGAN])


def child(n: int) -> dict[str, object]:
    return child_registration(
        name=f"测试{n}",
        birth_date="2014-05-01",
        gender="female" if n % 2 else "male",
        category="left_behind",
        county_code=XINGAN,
        township="溶江镇",
        village="五甲村",
        risk_level="high",
        needs=["tutoring"],
        languages=["zh"],
    )


@pytest.fixture
def services(cluster: NatsCluster, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    started = {
        name: ServiceProcess(
            name,
            nats_url=",".join(cluster.urls),
            database_url=f"sqlite+aiosqlite:///{tmp_path / name}.db",
            data_dir=tmp_path,
            STREAM_REPLICAS="3",
            RELAY_STALL_SECONDS="2",
        )
        for name in ("registry", "matching")
    }
    try:
        for service in started.values():
            service.start(timeout=60)
        yield started
    finally:
        for service in started.values():
            service.kill()


class Registrations:
    """Children registered through the registry's HTTP API by a few clients at once, as an import would."""

    def __init__(self, http: httpx.AsyncClient, registry: str) -> None:
        self.http, self.registry = http, registry
        self.ids: list[str] = []

    async def register(self, count: int) -> None:
        for _ in range(count):
            answer = await self.http.post(f"{self.registry}/children", json=child(len(self.ids)), headers=COORDINATOR)
            assert answer.status_code == 201, answer.text  # the log takes it whatever the bus is doing
            self.ids.append(answer.json()["id"])

    async def until(self, stop: asyncio.Event, clients: int = 4) -> None:
        async def one() -> None:
            while not stop.is_set():
                await self.register(1)

        await asyncio.gather(*(one() for _ in range(clients)))


async def in_views(http: httpx.AsyncClient, matching: str, count: int) -> bool:
    """Whether matching's candidate view (from REGISTRY) and engagement view (from MATCHING) hold `count` children."""
    totals = []
    for view in ("/views/candidates/children", "/views/engagement"):
        with contextlib.suppress(httpx.HTTPError):
            page = await http.get(f"{matching}{view}", params={"county_code": XINGAN, "limit": 1}, headers=COORDINATOR)
            totals.append(page.json().get("total") if page.status_code == 200 else None)
    return totals == [count, count]


async def readiness(http: httpx.AsyncClient, service: ServiceProcess) -> dict[str, str]:
    """The problems a replica's /ready names ({} when ready)."""
    answer = await http.get(f"{service.url}/ready")
    if answer.status_code == 200:
        return {}
    problems: dict[str, str] = answer.json()["error"]["details"]["problems"]
    return problems


async def test_children_registered_while_nodes_die_reach_matching_and_a_lost_quorum_is_not_ready(
    cluster: NatsCluster, nc: NATS, services: dict[str, ServiceProcess]
) -> None:
    js = nc.jetstream(timeout=2.0)
    await wait_until(lambda: ensured(js), within=30, what="the streams")
    registry, matching = services["registry"], services["matching"]
    async with httpx.AsyncClient(timeout=10) as http:
        children = Registrations(http, registry.url)
        stop = asyncio.Event()
        writing = asyncio.create_task(children.until(stop))
        await wait_until(lambda: stored_at_least(js, "REGISTRY", 200), within=60, what="registrations under way")
        first = node_named(cluster, await leader_of(js, "REGISTRY"))
        first.kill()
        await asyncio.sleep(3)
        first.start()
        await asyncio.sleep(3)
        stop.set()
        await writing

        async def every_copy_equal() -> bool:
            states = [copies(cluster, stream) for stream in ("REGISTRY", "MATCHING")]
            return all(len(set(state.values())) == 1 and None not in state.values() for state in states)

        await wait_until(every_copy_equal, within=60, what="every node's copy of REGISTRY and MATCHING to be equal")
        await wait_until(lambda: in_views(http, matching.url, len(children.ids)), within=60, what="every child")

        second = next(node for node in running(cluster) if node is not first)
        second.kill()
        await children.register(20)
        await wait_until(
            lambda: in_views(http, matching.url, len(children.ids)), within=30, what="children after a second loss"
        )

        # With one node of three left, no stream has a leader: every replica says so, and the relay that cannot
        # publish says so too; nothing is lost, and it all arrives once the nodes are back.
        last = next(node for node in running(cluster) if node is not first)
        last.kill()
        await until_named(http, registry, "stream REGISTRY", within=60)
        await until_named(http, matching, "stream MATCHING", within=60)
        await children.register(5)
        await until_named(http, registry, "relay REGISTRY", within=30)
        second.start()
        last.start()
        await wait_until(lambda: _ready(http, registry), within=60, what="the registry ready again")
        await wait_until(
            lambda: in_views(http, matching.url, len(children.ids)), within=60, what="the children held back"
        )
        await wait_until(lambda: _ready(http, matching), within=30, what="matching ready again")


async def until_named(http: httpx.AsyncClient, service: ServiceProcess, problem: str, within: float) -> None:
    """Wait until the replica's /ready names `problem`; if it never does, say what it answered and what it logged."""
    answered: list[str] = []

    async def named() -> bool:
        try:
            problems = await readiness(http, service)
        except httpx.HTTPError as error:
            answered.append(type(error).__name__)
            return False
        answered.append(repr(problems))
        return problem in problems

    try:
        await wait_until(named, within=within, what=f"{service.name} not ready, naming {problem}")
    except AssertionError as error:
        logged = "\n".join(service.log.read_text(errors="replace").splitlines()[-30:])
        raise AssertionError(f"{error}; /ready answered {answered[-3:]}; its last log lines:\n{logged}") from None


async def _ready(http: httpx.AsyncClient, service: ServiceProcess) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return await readiness(http, service) == {}
    return False
