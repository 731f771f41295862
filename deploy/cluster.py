"""`python -m deploy.cluster`: the scale-out layout on one machine, a 3-node NATS cluster and N replicas per service.

A service is on PostgreSQL when REGISTRY_DATABASE_URL (MATCHING_…, NOTIFICATIONS_…) is set, else on one SQLite file
that its replicas share. Data and logs live under DATA_DIR/cluster. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy.engine import make_url

from backbone.natsserver import free_port, port_is_free
from backbone.settings import Settings
from backbone.tokens import SigningKeys
from deploy.natscluster import NatsCluster

SERVICES = ("registry", "matching", "notifications")
Replicas = dict[str, subprocess.Popen[bytes]]  # by name, e.g. "matching-2"


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    settings = Settings()
    root = settings.data_dir.resolve() / "cluster"
    root.mkdir(parents=True, exist_ok=True)
    # The registry's key (TOKEN_SIGNING_KEYS, or one made once under the cluster's DATA_DIR), made before its replicas
    # start so all sign with it; the other services read its public keys from a file, not from any one replica.
    signing = SigningKeys.from_settings(settings.model_copy(update={"data_dir": root}))
    (root / "jwks.json").write_text(json.dumps(signing.jwks()))
    http_ports = [args.first_port + i for i in range(len(SERVICES) * args.replicas)] if args.first_port else []
    if taken := [port for port in [*(args.nats_ports or []), *http_ports] if not port_is_free(port)]:
        print(f"ports already taken: {taken}", file=sys.stderr)
        return 1
    numbers = iter(http_ports)
    ports = {service: [next(numbers, 0) or free_port() for _ in range(args.replicas)] for service in SERVICES}
    for signum in (signal.SIGINT, signal.SIGTERM):  # both stop like Ctrl-C, even when started with SIGINT ignored
        signal.signal(signum, signal.default_int_handler)
    nats = NatsCluster(root / "nats", args.nats_ports)
    replicas: Replicas = {}
    try:
        nats.start()
        databases = {service: _database(service, root, args.replicas) for service in SERVICES}
        for service in SERVICES:
            for index in range(args.replicas):
                env = {**os.environ, "NATS_URL": ",".join(nats.urls), "STREAM_REPLICAS": "3"}
                env |= {"JWKS_FILE": str(root / "jwks.json")} if service != "registry" else {}
                env.update(DATA_DIR=str(root), PORT=str(ports[service][index]), DATABASE_URL=databases[service])
                log = open(root / f"{service}-{index + 1}.log", "ab")  # noqa: SIM115 (closed with the process)
                command = [sys.executable, "-m", f"services.{service}", "serve"]
                replicas[f"{service}-{index + 1}"] = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        _wait_ready(replicas, [port for service in SERVICES for port in ports[service]], root)
        _print_urls(nats, databases, ports, root)
        _watch(replicas, root)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop(replicas)
        nats.stop(timeout=1.0)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m deploy.cluster", description=__doc__)
    parser.add_argument("--replicas", type=int, default=2, help="processes per service (default 2)")
    parser.add_argument("--nats-ports", type=int, nargs=3, metavar="PORT", help="the NATS nodes' client ports")
    parser.add_argument("--first-port", type=int, metavar="PORT", help="first replica's HTTP port; the others follow")
    args = parser.parse_args(argv)
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    return args


def _database(service: str, root: Path, replicas: int) -> str:
    if url := os.environ.get(f"{service.upper()}_DATABASE_URL"):
        return url
    if replicas > 1:
        print(
            f"warning: the {replicas} {service} replicas share the SQLite file {root / service}.db; that holds on one "
            f"machine only (a lock file beside it elects one relay). Set {service.upper()}_DATABASE_URL for PostgreSQL",
            file=sys.stderr,
        )
    return f"sqlite+aiosqlite:///{root / service}.db"


def _wait_ready(replicas: Replicas, ports: list[int], root: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for port in ports:
        while not _ready(f"http://127.0.0.1:{port}/ready"):
            if time.monotonic() > deadline or any(process.poll() is not None for process in replicas.values()):
                raise SystemExit(f"the replica on port {port} did not become ready; see {root}/*.log")
            time.sleep(0.2)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 (loopback)
            return bool(answer.status == 200)
    except OSError:
        return False


def _print_urls(nats: NatsCluster, databases: dict[str, str], ports: dict[str, list[int]], root: Path) -> None:
    print(f"\nNATS cluster (JetStream R3, sync_interval always; stores in {root / 'nats'})")
    for node in nats.nodes:
        print(f"  {node.name}  {node.url}   monitoring http://127.0.0.1:{node.monitor_port}")
    for service, database in databases.items():
        print(f"{service}  ({make_url(database).render_as_string(hide_password=True)})")
        for port in ports[service]:
            print(f"  http://127.0.0.1:{port}   docs: http://127.0.0.1:{port}/docs")
    print(f"logs in {root}/*.log and {root / 'nats'}/*.log")
    print(f"a token: DATA_DIR={root} python -m services.registry token --role admin")
    print("\nCtrl-C stops everything.", flush=True)


def _watch(replicas: Replicas, root: Path) -> None:
    """Report each replica that dies, without stopping the rest: losing one is what this layout is built to survive."""
    running = dict(replicas)
    while running:
        for name in [name for name, process in running.items() if process.poll() is not None]:
            print(f"{name} exited with {running.pop(name).returncode}; see {root / name}.log", file=sys.stderr)
        time.sleep(0.2)


def _stop(replicas: Replicas, timeout: float = 3.5) -> None:
    """SIGTERM every replica at once (each finishes its batch and drains NATS), kill the ones still up at `timeout`."""
    for process in replicas.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in replicas.values():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    sys.exit(main())
