"""What the fault tests read off a cluster: each node's own copy of a stream, and who leads it."""

from __future__ import annotations

import contextlib
import json
import urllib.request

from nats.js import JetStreamContext

from backbone.streams import ensure_streams
from deploy.natscluster import ClusterNode, NatsCluster
from tests.helpers import wait_until


def copies(cluster: NatsCluster, stream: str) -> dict[str, tuple[int, int] | None]:
    """Each running node's own copy of the stream as (messages, last sequence), read off its monitoring port: the
    stream's info, answered by its leader, says nothing of a replica that is behind."""
    found: dict[str, tuple[int, int] | None] = {}
    for node in running(cluster):
        found[node.name] = None
        try:
            url = f"http://127.0.0.1:{node.monitor_port}/jsz?streams=true"
            with urllib.request.urlopen(url, timeout=1) as answer:
                detail = json.load(answer)
        except OSError:
            continue
        for account in detail.get("account_details") or []:
            for info in account.get("stream_detail") or []:
                if info["name"] == stream:
                    found[node.name] = (int(info["state"]["messages"]), int(info["state"]["last_seq"]))
    return found


def running(cluster: NatsCluster) -> list[ClusterNode]:
    return [node for node in cluster.nodes if node.process is not None and node.process.poll() is None]


def node_named(cluster: NatsCluster, name: str | None) -> ClusterNode:
    return next(node for node in cluster.nodes if node.name == name)


async def leader_of(js: JetStreamContext, stream: str) -> str:
    """The node leading the stream, waiting while one is elected."""
    leader: str | None = None

    async def elected() -> bool:
        nonlocal leader
        with contextlib.suppress(Exception):
            info = await js.stream_info(stream)
            leader = info.cluster.leader if info.cluster else None
        return leader is not None

    await wait_until(elected, within=30, what=f"{stream} to have a leader")
    assert leader is not None
    return leader


async def ensured(js: JetStreamContext) -> bool:
    """Whether every stream exists with three replicas (creating them: the meta group may still be settling)."""
    try:
        await ensure_streams(js, replicas=3)
    except Exception:
        return False
    return True


async def stored_at_least(js: JetStreamContext, stream: str, count: int) -> bool:
    with contextlib.suppress(Exception):
        return bool((await js.stream_info(stream)).state.messages >= count)
    return False
