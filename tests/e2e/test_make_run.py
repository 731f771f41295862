"""`make run`'s runner: starts everything, loads demo data once, resumes with data; on Ctrl-C each part stops by itself
(none killed at the runner's deadlines, which bound the stop to 5 s), the services before NATS."""

from __future__ import annotations

import asyncio
import re
import stat
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from backbone.database import Database
from backbone.natsserver import NatsServer, free_port, port_is_free
from deploy import demo
from deploy.local import SERVICES
from tests.helpers import auth, keys
from tests.makerun import interrupt, printed_accounts, start

pytestmark = pytest.mark.e2e


def stopped_by_themselves(said: str, *, nats: bool = True) -> None:
    """Each service, then NATS (when make run started one), stopped on its own: none killed, in that order."""
    ended = re.findall(r"^(\w+) +(stopped|killed.*|exited.*)$", said, re.M)
    assert ended == [(name, "stopped") for name in [*SERVICES, "console", *(["NATS"] if nats else [])]], said


def test_make_run_starts_everything_loads_demo_data_once_and_stops_each_part_by_itself_services_first(
    tmp_path: Path,
) -> None:
    ports = {name: free_port() for name in (*SERVICES, "console")}
    signing = {"TOKEN_SIGNING_KEYS": str(keys().key_file)}  # the registry signs with the test key: auth() passes
    runner, lines = start(tmp_path, ports, **signing)
    try:
        output = "".join(lines)
        nats_url = re.search(r"^NATS\s+(\S+)", output, re.M)
        assert nats_url, output
        if not port_is_free(4222):
            assert not nats_url.group(1).endswith(":4222")  # someone else's NATS there: ours took another port
        expected = sum(size + size // 2 for _, size in demo.COUNTIES.values())  # children, vetted volunteers
        added = re.search(rf"^demo data     {expected} children and volunteers, (\d+) pairings added", output, re.M)
        assert added, output
        assert int(added.group(1)) > 0
        for _name, port in ports.items():
            assert f"http://127.0.0.1:{port}" in output
            assert httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200
        urls = re.findall(r"^(\w+)\s+(?:http|nats)://", output, re.M)
        assert urls[0] == "console", output  # the console's address is printed first: it is where people go
        registry, matching = (f"http://127.0.0.1:{ports[name]}" for name in ("registry", "matching"))
        accounts = demo_accounts_work(output, ports, tmp_path / "demo-accounts.json")
        vetted = httpx.get(
            f"{registry}/volunteers",
            params={"county_code": "450325", "eligible": True, "limit": 1},
            headers=auth("admin"),
        )
        assert vetted.json()["total"] == demo.COUNTIES["450325"][1] // 2
        engagement = httpx.get(
            f"{matching}/views/engagement",
            params={"county_code": "450325", "limit": 500},
            headers=auth("admin"),
        ).json()["items"]
        assert any(row["volunteer_id"] for row in engagement)  # a living programme: children paired and visited,
        assert any(row["overdue"] for row in engagement)  # some of them overdue
        foundation = signed_in(registry, *only(accounts, "donor"))
        board = httpx.get(f"{matching}/wishes", params={"county_code": "450325"}, headers=foundation).json()
        assert board["total"] == 2  # four wishes, one claimed, one fulfilled and thanked
        figures = summary(matching)
        assert figures["aid"]["warm_pack"]["quantity"] not in (0, "<5")  # a campaign's warm packs handed out
        assert figures["visitors"]["child_director"]["visits"] not in (0, "<5")  # and festival visits made
        told = sent_messages(f"http://127.0.0.1:{ports['notifications']}")
        # The sender found the people at the registry with its own account; no SMS gateway or SMTP server is set up
        # here, so each message ends failed for that reason (or waits for quiet hours to end, at night in China).
        unconfigured = {("failed", "channel_not_configured"), ("pending", None), ("sending", None)}
        assert {(m["status"], m["error"]) for m in told} <= unconfigured
    finally:
        said = interrupt(runner)
    assert runner.returncode == 0
    stopped_by_themselves(said)
    assert stopped_before_nats(tmp_path, list(SERVICES), runs=1)
    assert all(port_is_free(port) for port in ports.values())

    runner, lines = start(tmp_path, ports, **signing)  # again: the data is kept and nothing is loaded twice
    try:
        assert "demo data     0 children and volunteers, 0 pairings added" in "".join(lines)
        assert printed_accounts("".join(lines)) == accounts  # the same passwords, which still work
        admin = signed_in(registry, *only(accounts, "admin"))
        listed = httpx.get(f"{registry}/accounts", params={"limit": 100}, headers=admin).json()
        assert listed["total"] == 8  # the six people, the loader and the notifications service, none made twice
        xingan = httpx.get(
            f"{registry}/children",
            params={"county_code": "450325", "limit": 1},
            headers=auth("coordinator", ["450325"]),
        )
        assert xingan.json()["total"] == demo.COUNTIES["450325"][1]
    finally:
        said = interrupt(runner)
    assert runner.returncode == 0
    stopped_by_themselves(said)
    assert stopped_before_nats(tmp_path, list(SERVICES), runs=2)


def test_make_run_uses_an_existing_nats_and_a_postgresql_database_when_told(
    tmp_path: Path, nats_server: NatsServer, postgres_url: str
) -> None:
    ports = {name: free_port() for name in (*SERVICES, "console")}
    runner, lines = start(tmp_path, ports, NATS_URL=nats_server.url, MATCHING_DATABASE_URL=postgres_url)
    try:
        assert re.search(rf"^NATS\s+{re.escape(nats_server.url)}\s", "".join(lines), re.M), "".join(lines)
        assert not (tmp_path / "nats-server.log").exists()  # no server of its own
        assert not (tmp_path / "matching.db").exists()
        assert asyncio.run(count(postgres_url, "SELECT count(*) FROM pairings")) > 0  # matching worked on PostgreSQL
        key = tmp_path / "registry-signing-key.pem"  # no TOKEN_SIGNING_KEYS: the registry's key, made under DATA_DIR
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        coordinator = signed_in(
            f"http://127.0.0.1:{ports['registry']}", *only(printed_accounts("".join(lines)), "coordinator")
        )
        for service in ("matching", "notifications"):  # they verify its token with the registry's JWKS, over HTTP
            answer = httpx.get(
                f"http://127.0.0.1:{ports[service]}/views/{'engagement' if service == 'matching' else 'deliveries'}",
                params={"county_code": "450325"},
                headers=coordinator,
            )
            assert answer.status_code == 200, answer.text
    finally:
        said = interrupt(runner)
    assert runner.returncode == 0
    stopped_by_themselves(said, nats=False)
    assert nats_server.process is not None
    assert nats_server.process.poll() is None  # someone else's NATS: left running


def demo_accounts_work(output: str, ports: dict[str, int], kept: Path) -> dict[str, tuple[str, str]]:
    """The demo accounts printed, none a raw token, each signing in as its role; the coordinator's token works on
    matching and notifications in its two counties only; the volunteers are Xing'an's registered child director and
    caring parents (their mobile numbers their logins); the passwords are kept for the owner alone; the demo data
    went in under the loader's own service identity. Returns login -> (role, password)."""
    assert "eyJ" not in output  # no raw tokens printed: sign in with the demo accounts instead
    registry, matching, notifications = (f"http://127.0.0.1:{ports[name]}" for name in SERVICES)
    accounts = printed_accounts(output)
    roles = sorted(role for role, _ in accounts.values())
    assert roles == ["admin", "coordinator", "donor", "volunteer", "volunteer", "volunteer"], output
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    people = {login: signed_in(registry, login, password) for login, (_, password) in accounts.items()}
    kinds = set()
    for login, headers in people.items():
        me = httpx.get(f"{registry}/me", headers=headers).json()
        assert me["role"] == accounts[login][0]
        if me["role"] == "volunteer":  # they see their own registration
            record = httpx.get(f"{registry}/volunteers/{me['sub']}", headers=headers).json()
            assert (record["county_code"], record["phone"]) == ("450325", login)
            kinds.add(record["kind"])
    assert kinds == {"child_director", "caring_parent"}
    coordinator = people[only(accounts, "coordinator")[0]]
    assert httpx.get(f"{registry}/me", headers=coordinator).json()["counties"] == ["450325", "450721"]
    for county, status in (("450325", 200), ("450721", 200), ("450521", 403)):
        engaged = httpx.get(f"{matching}/views/engagement", params={"county_code": county}, headers=coordinator)
        assert engaged.status_code == status, engaged.text
        recipient = {"recipient_id": f"county:{county}:coordinators"}
        told = httpx.get(f"{notifications}/notifications", params=recipient, headers=coordinator)
        assert told.status_code == status, told.text
    loader = {"actor": "service:demo-loader", "limit": 1}
    assert httpx.get(f"{registry}/audit", params=loader, headers=people[only(accounts, "admin")[0]]).json()["total"] > 0
    return accounts


def only(accounts: dict[str, tuple[str, str]], role: str) -> tuple[str, str]:
    """The one printed account of a role: its login and password."""
    (login,) = [login for login, (other, _) in accounts.items() if other == role]
    return login, accounts[login][1]


def signed_in(registry: str, login: str, password: str) -> dict[str, str]:
    answer = httpx.post(f"{registry}/auth/sign-in", json={"login": login, "password": password}, timeout=10)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def count(url: str, query: str) -> int:
    db = Database(url)
    try:
        async with db.read() as conn:
            return int(await conn.scalar(text(query)) or 0)
    finally:
        await db.dispose()


def summary(matching: str, within: float = 10.0) -> dict[str, Any]:
    """The region's figures as a donor reads them, once the views have taken in the demo's visits and aid."""
    deadline = time.monotonic() + within
    while True:
        figures: dict[str, Any] = httpx.get(
            f"{matching}/views/summary", params={"code": "45"}, headers=auth("donor")
        ).json()
        if (figures["aid"] and figures["visitors"]) or time.monotonic() > deadline:
            return figures
        time.sleep(0.2)


def stopped_before_nats(data_dir: Path, services: list[str], runs: int) -> bool:
    """Each service logged that it finished its work and drained its connection, once per run of `make run`, before
    NATS was told to stop (not at the same moment: Ctrl-C reached only `make run`, which stopped NATS last)."""
    nats_log = (data_dir / "nats-server.log").read_text()
    trapped = re.findall(r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+) \[INF\] Trapped \"(\w+)\" signal", nats_log)
    at, signal_name = trapped[-1]
    assert signal_name == "terminated", f"NATS got {signal_name}, not make run's SIGTERM"
    nats_stopping = datetime.strptime(at, "%Y/%m/%d %H:%M:%S.%f").astimezone(UTC)  # nats-server logs local time
    for name in services:
        stops = re.findall(
            r'"event": "runtime.stopped".*"timestamp": "([^"]+)"', (data_dir / f"{name}.log").read_text()
        )
        assert len(stops) == runs, f"{name} logged runtime.stopped {len(stops)} times in {runs} runs"
        assert datetime.fromisoformat(stops[-1].replace("Z", "+00:00")) <= nats_stopping, name
    return True


def sent_messages(notifications: str, within: float = 60.0) -> list[dict[str, Any]]:
    """Xing'an's messages, once there are some."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        answer = httpx.get(
            f"{notifications}/views/messages",
            params={"county_code": "450325", "limit": 500},
            headers=auth("coordinator", ["450325"]),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        if items := answer.json()["items"]:
            return list(items)
        time.sleep(0.5)
    raise AssertionError(f"no message decided for Xing'an within {within} s")
