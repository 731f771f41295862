"""Fault fixtures: a real 3-node JetStream cluster from the wheel, and a client that fails over between its nodes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from deploy.natscluster import NatsCluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.path):
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    started = NatsCluster(tmp_path / "nats")
    try:
        yield started.start()
    finally:
        started.stop()


@pytest.fixture
async def nc(cluster: NatsCluster) -> AsyncIterator[NATS]:
    async def quiet(_: Exception) -> None:  # killed nodes are the point here; the client fails over by itself
        pass

    client = await nats.connect(cluster.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.2, error_cb=quiet)
    yield client
    await client.close()
