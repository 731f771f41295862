"""End-to-end fixtures: NATS and the three services as real processes, and a tap on the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

from backbone.natsserver import NatsServer
from tests.helpers import ServiceProcess


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that run the services as processes take one worker of a parallel run (make test's --dist
    loadgroup): side by side they would start a dozen services at once on a small machine."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("processes"))


@dataclass
class System:
    nats: NatsServer
    services: dict[str, ServiceProcess]

    def url(self, service: str) -> str:
        return self.services[service].url


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    server = NatsServer(tmp_path / "nats").start()
    services = {
        name: ServiceProcess(
            name, nats_url=server.url, database_url=f"sqlite+aiosqlite:///{tmp_path / name}.db", data_dir=tmp_path
        )
        for name in ("registry", "matching", "notifications")
    }
    try:
        for service in services.values():
            service.start()
        yield System(server, services)
    finally:
        for service in services.values():
            service.kill()
        server.kill()


@pytest.fixture
async def wire(system: System) -> AsyncIterator[list[Msg]]:
    """Every message that crosses the bus on the contexts' subjects, captured raw."""
    seen: list[Msg] = []
    client = await nats.connect(system.nats.url)

    async def keep(msg: Msg) -> None:
        seen.append(msg)

    for context in ("registry", "matching", "notifications"):
        await client.subscribe(f"{context}.>", cb=keep)
    yield seen
    await client.close()
