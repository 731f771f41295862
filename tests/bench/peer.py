"""The peer library: the `eventsourcing` package (pinned in the `bench` extra) on its SQLite persistence, creating
and saving one aggregate per child with the events our registry records for a child (registered, then its pairing
eligibility and the purposes its data may serve), saved in batches with `app.save(*aggregates)` as an import
commits each request. Run as a process of its own (`python -m tests.bench.peer`), which imports nothing of ours: its
peak memory is its own."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

COUNTIES = ("450325", "450721", "450521", "450981")


class Child(Aggregate):
    @event("Registered")
    def __init__(self, county_code: str, category: str, risk_level: str, age_band: str, needs: list[str]) -> None:
        self.county_code, self.category, self.risk_level = county_code, category, risk_level
        self.age_band, self.needs = age_band, needs
        self.eligible, self.purposes = False, list[str]()

    @event("PairingEligibilityChanged")
    def set_eligibility(self, eligible: bool, reasons: list[str]) -> None:
        self.eligible = eligible

    @event("PurposesChanged")
    def set_purposes(self, allowed: list[str]) -> None:
        self.purposes = allowed


class Registry(Application[Any]):
    pass


def _save_children(path: str, children: int, batch: int) -> dict[str, float]:
    app = Registry(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path})
    events = 0
    started = time.perf_counter()
    for start in range(0, children, batch):
        aggregates = []
        for i in range(start, min(children, start + batch)):
            child = Child(COUNTIES[i % 4], "left_behind", ("high", "medium", "low")[i % 3], "9-11", ["tutoring"])
            child.set_eligibility(True, [])
            child.set_purposes(["aid", "home_visits", "pairing", "wishes"])
            aggregates.append(child)
        events += len(app.save(*aggregates))
    seconds = time.perf_counter() - started
    stored: Child = app.repository.get(aggregates[-1].id)  # read back: the last one is all there
    assert stored.purposes == ["aid", "home_visits", "pairing", "wishes"], stored
    app.close()
    return {
        "seconds": seconds,
        "aggregates": float(children),
        "events": float(events),
        "own_peak_rss_mb": _hwm_mb(),
    }


def _hwm_mb() -> float:
    found = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(found.group(1)) / 1024 if found else float("nan")


def measure(folder: Path, children: int, batch: int) -> dict[str, float]:
    """{"seconds", "aggregates", "events", "peak_rss_mb"} of saving `children` aggregates in batches of `batch`."""
    from tests.bench.common import run_measured

    out = folder / "eventsourcing.json"
    command = [sys.executable, "-m", "tests.bench.peer", str(folder / "eventsourcing.db"), str(children), str(batch)]
    done = run_measured([*command, str(out)], dict(os.environ), folder / "eventsourcing.log", 3600)
    if done.returncode != 0:
        raise RuntimeError(f"eventsourcing run exited with {done.returncode}: see {folder / 'eventsourcing.log'}")
    found: dict[str, float] = json.loads(out.read_text())
    return found | {"peak_rss_mb": max(done.peak_rss_mb, found["own_peak_rss_mb"])}


def version() -> str:
    from importlib.metadata import version as installed

    return installed("eventsourcing")


if __name__ == "__main__":
    database, count, size, out = sys.argv[1:]
    Path(out).write_text(json.dumps(_save_children(database, int(count), int(size))))
