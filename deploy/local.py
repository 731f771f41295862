"""`make run`: a real nats-server with JetStream, the three services and the console as processes, demo data and demo
accounts.

Everything lives under ./var (or DATA_DIR); running it again resumes with the data kept. Ctrl-C stops all.
Set NATS_URL to use an existing NATS instead of the embedded one, and REGISTRY_DATABASE_URL,
MATCHING_DATABASE_URL or NOTIFICATIONS_DATABASE_URL to put a service on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType

from pydantic import SecretStr

from backbone.natsserver import NatsServer, port_is_free
from backbone.servicetoken import ServiceToken
from backbone.settings import Settings
from deploy import demo, demo_accounts
from deploy.demo_accounts import DemoAccount

SERVICES = {"registry": 8001, "matching": 8002, "notifications": 8003}
CONSOLE_PORT = 8000


def main() -> int:
    settings = Settings()
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    children: dict[str, subprocess.Popen[bytes]] = {}
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
        defaults = {**SERVICES, "console": CONSOLE_PORT}
        ports = {name: int(os.environ.get(f"{name.upper()}_PORT", port)) for name, port in defaults.items()}
        urls = {name: f"http://127.0.0.1:{ports[name]}" for name in SERVICES}
        for name, port in ports.items():
            if not port_is_free(port):
                print(f"port {port} for {name} is taken; set {name.upper()}_PORT to another", file=sys.stderr)
                return 1
        # The demo accounts are made in the registry's database the way an operator makes the first admin (python -m
        # services.registry account create); the notifications service's own one first, to start it with.
        registry = Settings(data_dir=data, database_url=os.environ.get("REGISTRY_DATABASE_URL"))
        passwords = demo_accounts.Passwords(data / demo_accounts.FILE)
        notifier = asyncio.run(
            demo_accounts.service_secret(registry, passwords, demo_accounts.NOTIFIER, "通知服务 notifications")
        )
        for name in SERVICES:
            env = {**os.environ, "NATS_URL": nats_url, "DATA_DIR": str(data), "PORT": str(ports[name])}
            if name == "notifications":  # it looks up whom to send to at the registry, with its own token
                env |= {
                    "REGISTRY_URL": urls["registry"],
                    "TOKEN_URL": f"{urls['registry']}/auth/token",
                    "SERVICE_CLIENT_ID": demo_accounts.NOTIFIER,
                    "SERVICE_CLIENT_SECRET": notifier,
                    "CONSOLE_URL": f"http://127.0.0.1:{ports['console']}",  # where links in invitations lead
                }
            if name != "registry":  # the others verify tokens with the registry's public keys
                env["JWKS_URL"] = f"{urls['registry']}/.well-known/jwks.json"
            database_url = os.environ.get(f"{name.upper()}_DATABASE_URL")
            env.pop("DATABASE_URL", None)
            if database_url:
                env["DATABASE_URL"] = database_url
            children[name] = _start(name, env, data)
        # The console calls the three APIs, on behalf of whoever signs in to it.
        console = f"http://127.0.0.1:{ports['console']}"
        upstreams = {f"{name.upper()}_URL": url for name, url in urls.items()}
        children["console"] = _start("console", {**os.environ, **upstreams, "PORT": str(ports["console"])}, data)
        for name, url in [*urls.items(), ("console", console)]:
            _wait_ready(name, url, list(children.values()))
        # The demo data is loaded under a service account of its own.
        loading = demo_accounts.service_secret(registry, passwords, demo_accounts.LOADER, "演示数据 demo data loader")
        secret = SecretStr(asyncio.run(loading))
        loader = ServiceToken(f"{urls['registry']}/auth/token", demo_accounts.LOADER, secret)
        # The campaign first: matching hears of it before the people, so it knows it when tagging their visits.
        campaign_id = demo.campaign(urls["registry"], loader)
        created = demo.load(urls["registry"], loader)
        paired = demo.engage(urls["matching"], loader, campaign_id)
        people = asyncio.run(demo_accounts.people(registry, urls["registry"], urls["matching"], loader, passwords))
        print(f"\nconsole       {console}   sign in with a demo account below")
        print(f"NATS          {nats_url}  (JetStream store: {data / 'nats'})")
        for name, url in urls.items():
            print(f"{name:<13} {url}   docs: {url}/docs")
        print(
            f"demo data     {created} children and volunteers, {paired} pairings added this time; logs in {data}/*.log"
        )
        _print_accounts(people, urls["registry"], passwords.path)
        print("\nCtrl-C stops everything.", flush=True)
        while not stopping:
            for child in children.values():
                if child.poll() is not None:
                    print(f"a service exited with {child.returncode}; see {data}/*.log", file=sys.stderr)
                    return 1
            time.sleep(0.2)
        return 0
    finally:
        _stop_all(children, nats)


def _start(name: str, env: dict[str, str], data: Path) -> subprocess.Popen[bytes]:
    log = open(data / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-m", f"services.{name}", "serve"],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,  # Ctrl-C is for this process: it stops the services in order
    )


def _print_accounts(people: list[DemoAccount], registry_url: str, kept: Path) -> None:
    print(
        f"\nDemo accounts (passwords kept in {kept}); sign in at the console, or with POST {registry_url}/auth/sign-in"
    )
    print(f"  {'login':<13} {'role':<12} {'password':<20} who")
    for account in people:
        print(f"  {account.login:<13} {account.role:<12} {account.password:<20} {account.who}")
    print(f"  {demo_accounts.LOADER:<13} {'service':<12} {'(client secret kept)':<20} loaded the demo data")
    print(
        f"  e.g.  curl -s {registry_url}/auth/sign-in -H 'Content-Type: application/json' "
        f"""-d '{{"login": "{demo_accounts.COORDINATOR}", "password": "…"}}'"""
    )


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


def _stop_all(children: dict[str, subprocess.Popen[bytes]], nats: NatsServer | None) -> None:
    """The services and the console first (each finishes its requests and batches and drains its NATS connection),
    NATS last. They run in sessions of their own, so Ctrl-C reaches only this process and the order holds. How each
    one ended is printed: stopped by itself, or killed because it did not stop in time."""
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 4
    for name, child in children.items():
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
