"""A 3-node JetStream cluster of real nats-server processes on one machine: for `deploy.cluster` and the tests."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from backbone.natsserver import NatsServer, free_port

CLUSTER_NAME = "handinhand"
SIZE = 3


class ClusterNode(NatsServer):
    """One node: the embedded server's config plus a cluster block routing to every peer (its own route is ignored)."""

    def __init__(self, store_dir: Path, *, name: str, port: int | None, route_ports: list[int], index: int) -> None:
        # sync_always: nats-server's default fsyncs every 2 minutes; Jepsen (2025) lost acknowledged writes that way.
        super().__init__(store_dir, port=port, sync_always=True, name=name, log_file=store_dir.parent / f"{name}.log")
        self.route_ports, self.cluster_port = route_ports, route_ports[index]

    def config(self) -> str:
        routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in self.route_ports)
        cluster = f'    name: "{CLUSTER_NAME}"\n    listen: "127.0.0.1:{self.cluster_port}"\n    routes: [{routes}]\n'
        return f"{super().config()}cluster {{\n{cluster}}}\n"

    def meta_group(self) -> tuple[str | None, frozenset[str]]:
        """The JetStream meta leader this node knows of (None: not yet elected, or the node is down), and the peers
        this node sees as current: itself plus, on the leader, every follower that has caught up."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/jsz", timeout=0.5) as answer:
                meta = json.load(answer).get("meta_cluster", {})
        except OSError:
            return None, frozenset()
        current = {str(peer["name"]) for peer in meta.get("replicas") or [] if peer.get("current")}
        leader = meta.get("leader")
        return (str(leader) if leader else None), frozenset({self.name, *current})


class NatsCluster:
    """Three clustered nodes with store dirs `root/node-N`; client ports are free ones unless given."""

    def __init__(self, root: Path, ports: list[int] | None = None) -> None:
        if ports is not None and len(ports) != SIZE:
            raise ValueError(f"a cluster needs {SIZE} client ports, got {len(ports)}")
        route_ports = [free_port() for _ in range(SIZE)]
        self.nodes = [
            ClusterNode(
                root / f"node-{i + 1}",
                name=f"node-{i + 1}",
                port=ports[i] if ports else None,
                route_ports=route_ports,
                index=i,
            )
            for i in range(SIZE)
        ]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self, timeout: float = 30.0) -> NatsCluster:
        """Start every node, then wait until the nodes agree on a meta leader that sees every node current: before
        that, creating an R3 stream fails with "no suitable peers for placement"."""
        try:
            for node in self.nodes:
                node.start(timeout)
            self.wait_for_meta_group(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for_meta_group(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = [node for node in self.nodes if node.process is not None and node.process.poll() is None]
            groups = {node.name: node.meta_group() for node in running}
            leaders = {leader for leader, _ in groups.values()}
            if len(leaders) == 1 and None not in leaders:
                leader = str(leaders.pop())
                if leader in groups and groups[leader][1] >= {node.name for node in running}:
                    return leader
            time.sleep(0.1)
        raise TimeoutError(f"the NATS cluster's JetStream meta group did not form within {timeout} s")

    def stop(self, timeout: float = 2.0) -> None:
        """SIGTERM every node at once (each flushes its store), then kill any still running after `timeout`."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.stop(max(0.1, deadline - time.monotonic()))
