"""What the bench's parts share: fresh databases (a SQLite file, or a PostgreSQL database made for the run and
dropped after it), processes' peak memory, and reading a service's database."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

SERVICES = ("registry", "matching", "notifications")
RSS_GOAL_MB = 250


def peak_rss_mb(pid: int | str) -> float | None:
    """VmHWM of a running process ("self": this one): the most resident memory it has had (None once it is gone)."""
    try:
        found = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None
    return int(found.group(1)) / 1024 if found else None


@dataclass
class Finished:
    returncode: int
    seconds: float
    peak_rss_mb: float  # the largest VmHWM read while it ran


def run_measured(command: list[str], env: dict[str, str], output: Path, timeout: float) -> Finished:
    """Run a process to its end, its output to a file; its wall-clock time and peak memory: VmHWM, read every 20 ms
    until it exits (not wait4's ru_maxrss, which on Linux starts from the forking parent's own peak)."""
    with open(output, "ab") as log:
        started = time.monotonic()
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    deadline, peak = started + timeout, 0.0
    try:
        while True:
            peak = max(peak, peak_rss_mb(process.pid) or 0.0)  # a zombie has none: read before reaping
            pid, status = os.waitpid(process.pid, os.WNOHANG)
            if pid:
                seconds = time.monotonic() - started
                process.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for it again
                return Finished(process.returncode, seconds, peak)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{' '.join(command[-3:])} still running after {timeout:.0f} s")
            time.sleep(0.02)
    finally:
        if process.returncode is None:
            process.kill()
            process.wait()


@dataclass
class Databases:
    """Fresh databases for one kind: SQLite files in `folder`, or PostgreSQL databases `bench_<run>_<name>` on the
    server of TEST_POSTGRES_URL, every one dropped by `drop_all`."""

    kind: str  # "sqlite" or "postgresql"
    folder: Path
    server: str | None = None
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    made: list[str] = field(default_factory=list)

    def fresh(self, name: str) -> str:
        """A new, empty database's URL."""
        label = f"{name}_{len(self.made)}"
        self.made.append(label)
        if self.kind == "sqlite":
            return f"sqlite+aiosqlite:///{self.folder / label}.db"
        assert self.server is not None
        database = f"bench_{self.run}_{label}"
        asyncio.run(admin(self.server, f'CREATE DATABASE "{database}"'))
        return make_url(self.server).set(database=database).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if self.kind != "postgresql" or self.server is None:
            return
        for label in self.made:
            asyncio.run(admin(self.server, f'DROP DATABASE IF EXISTS "bench_{self.run}_{label}" WITH (FORCE)'))
        self.made.clear()


async def admin(server: str, statement: str) -> str:
    conn = await asyncpg.connect(make_url(server).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        return str(await conn.execute(statement))
    finally:
        await conn.close()


async def postgres_version(server: str) -> str:
    conn = await asyncpg.connect(make_url(server).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def create_tables(url: str, service: str) -> None:
    """A service's tables, as it creates them at start (the rebuild CLI does so too; done first, it is not timed)."""
    import importlib

    from backbone.database import Database
    from backbone.store import Plumbing

    spec = importlib.import_module(f"services.{service}.app").SPEC
    db = Database(url)
    try:
        await db.create(Plumbing.metadata, spec.views)
    finally:
        await db.dispose()
