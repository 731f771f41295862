"""A real 3-node JetStream cluster: streams are replicated R3 and survive losing one node, acknowledged writes kept."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import PubAck

from backbone.streams import ensure_streams
from deploy.natscluster import NatsCluster
from tests.faults.cluster import node_named

T = TypeVar("T")
SUBJECT = "registry.child.registered"


@pytest.fixture
async def js(nc: NATS) -> JetStreamContext:
    context = nc.jetstream(timeout=1.0)
    await ensure_streams(context, replicas=3)
    return context


async def eventually(attempt: Callable[[], Awaitable[T]], within: float = 12.0) -> T:
    """Retry while the cluster elects a new stream leader (a few seconds after a leader is killed)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await attempt()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def publish(js: JetStreamContext, number: int) -> PubAck:
    return await js.publish(SUBJECT, f"event {number}".encode(), headers={"Nats-Msg-Id": f"event-{number}"})


async def test_registry_stream_is_replicated_on_all_three_nodes(js: JetStreamContext) -> None:
    info = await js.stream_info("REGISTRY")

    assert info.config.num_replicas == 3
    assert info.cluster is not None
    followers = {peer.name for peer in info.cluster.replicas or []}
    assert {info.cluster.leader, *followers} == {"node-1", "node-2", "node-3"}


async def test_acknowledged_event_survives_losing_the_stream_leader(cluster: NatsCluster, js: JetStreamContext) -> None:
    first = await js.publish(SUBJECT, b"event 1", headers={"Nats-Msg-Id": "event-1"}, stream="REGISTRY")
    before = await js.stream_info("REGISTRY")
    assert before.cluster is not None
    node_named(cluster, before.cluster.leader).kill()  # SIGKILL: no chance to flush or step down

    kept = await eventually(lambda: js.get_msg("REGISTRY", first.seq, direct=True))
    assert kept.data == b"event 1"
    for number in (2, 3):
        # A retry keeps its Nats-Msg-Id: an attempt stored but never acknowledged is not stored twice.
        ack = await eventually(functools.partial(publish, js, number))
        assert ack.seq == number
    # The relay re-publishes after a crash; the duplicate window still drops repeats under the new leader.
    again = await js.publish(SUBJECT, b"event 1", headers={"Nats-Msg-Id": "event-1"})
    assert again.duplicate
    after = await js.stream_info("REGISTRY")
    assert after.cluster is not None
    assert after.cluster.leader != before.cluster.leader
    assert after.state.messages == 3
