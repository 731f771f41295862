"""`make run`: a real nats-server with JetStream, the three services as processes, demo data, URLs and tokens.

Everything lives under ./var (or DATA_DIR); running it again resumes with the data kept. Ctrl-C stops all.
Set NATS_URL to use an existing NATS instead of the embedded one, and REGISTRY_DATABASE_URL,
MATCHING_DATABASE_URL or NOTIFICATIONS_DATABASE_URL to put a service on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from types import FrameType

from backbone.auth import Role
from backbone.natsserver import NatsServer, port_is_free
from backbone.settings import Settings
from backbone.tokens import Issuer
from deploy import demo

SERVICES = {"registry": 8001, "matching": 8002, "notifications": 8003}
TOKEN_LIFETIME = timedelta(hours=8)  # a working day of trying the API out
ROLES: dict[Role, list[str]] = {
    "admin": [],
    "coordinator": list(demo.COUNTIES),
    "volunteer": [],
    "donor": [],
    "service": [],
}


def main() -> int:
    settings = Settings()
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    issuer = Issuer.from_settings(settings)  # the registry's key: TOKEN_SIGNING_KEYS, or made once under DATA_DIR
    children: list[subprocess.Popen[bytes]] = []
    nats: NatsServer | None = None
    stopping = False

    def stop(_signum: int = 0, _frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        nats_url = os.environ.get("NATS_URL")
        if not nats_url:
            nats = NatsServer(
                data / "nats",
                port=4222 if port_is_free(4222) else None,
                sync_always=True,
                log_file=data / "nats-server.log",
                own_session=True,
            ).start()
            nats_url = nats.url
        urls = {name: f"http://127.0.0.1:{os.environ.get(f'{name.upper()}_PORT', p)}" for name, p in SERVICES.items()}
        for name, default_port in SERVICES.items():
            port = int(os.environ.get(f"{name.upper()}_PORT", default_port))
            if not port_is_free(port):
                print(f"port {port} for {name} is taken; set {name.upper()}_PORT to another", file=sys.stderr)
                return 1
            env = {**os.environ, "NATS_URL": nats_url, "DATA_DIR": str(data), "PORT": str(port)}
            if name != "registry":  # the others verify tokens with the registry's public keys
                env["JWKS_URL"] = f"{urls['registry']}/.well-known/jwks.json"
            database_url = os.environ.get(f"{name.upper()}_DATABASE_URL")
            env.pop("DATABASE_URL", None)
            if database_url:
                env["DATABASE_URL"] = database_url
            log = open(data / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
            children.append(
                subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}", "serve"],
                    env=env,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,  # Ctrl-C is for this process: it stops the services in order
                )
            )
        for name, url in urls.items():
            _wait_ready(name, url, children)
        tokens = {
            role: issuer.mint(sub=f"demo-{role}", role=role, counties=counties, ttl=TOKEN_LIFETIME)
            for role, counties in ROLES.items()
        }
        # The campaign first: matching hears of it before the people, so it knows it when tagging their visits.
        campaign_id = demo.campaign(urls["registry"], tokens["admin"])
        created = demo.load(urls["registry"], tokens["admin"])
        paired = demo.engage(urls["matching"], tokens["admin"], campaign_id)
        print(f"\nNATS          {nats_url}  (JetStream store: {data / 'nats'})")
        for name, url in urls.items():
            print(f"{name:<13} {url}   docs: {url}/docs")
        print(
            f"demo data     {created} children and volunteers, {paired} pairings added this time; logs in {data}/*.log"
        )
        print("\nDev bearer tokens (8 hours), e.g.  curl -H 'Authorization: Bearer <token>' ...")
        for role, token in tokens.items():
            print(f"  {role:<12} {token}")
        print("\nCtrl-C stops everything.", flush=True)
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    print(f"a service exited with {child.returncode}; see {data}/*.log", file=sys.stderr)
                    return 1
            time.sleep(0.2)
        return 0
    finally:
        _stop_all(children, nats)


def _wait_ready(name: str, url: str, children: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            raise SystemExit(f"{name} exited during start-up; see var/{name}.log")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=1) as answer:  # noqa: S310 (loopback)
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{name} was not ready within 60 s; see var/{name}.log")


def _stop_all(children: list[subprocess.Popen[bytes]], nats: NatsServer | None) -> None:
    """The services first (each finishes its requests and batches and drains its NATS connection), NATS last.
    They run in sessions of their own, so Ctrl-C reaches only this process and the order holds. How each one ended
    is printed: stopped by itself, or killed because it did not stop in time."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 4
    for name, child in zip(SERVICES, children, strict=False):
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        _ended(name, child.returncode)
    if nats is not None and nats.process is not None:
        nats.stop(timeout=0.8)
        _ended("NATS", nats.process.returncode)


def _ended(name: str, status: int) -> None:
    # A service's uvicorn, once shut down, raises again the SIGTERM it caught (so its status is -SIGTERM); NATS exits 0.
    if status in (0, -signal.SIGTERM):
        how = "stopped"
    elif status == -signal.SIGKILL:
        how = "killed: it did not stop in time"
    else:
        how = f"exited with status {status}"
    print(f"{name:<13} {how}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
