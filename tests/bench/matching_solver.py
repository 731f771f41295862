"""The matching solver against greedy-by-score on one county of 5,000 children and 3,000 volunteers, each in a process
of its own (`python -m tests.bench.matching_solver`) so that its peak memory is its own: the county is read as a run
reads it (`runs.county` over the candidate view), then the algorithm runs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert

from services.matching import runs, solver
from tests.helpers import county_of

COUNTY = "450325"


def greedy(county: runs.County) -> tuple[dict[str, int], int]:
    """The baseline: children by risk, each taking the free volunteer who fits best; (paired per level, fit)."""
    children, volunteers = list(county.children), list(county.volunteers)
    fit, feasible = solver._pair_matrices(children, volunteers)
    free = np.array([v.free for v in volunteers])
    paired: dict[str, int] = dict.fromkeys(solver.RISK_LEVELS, 0)
    total = 0
    order = sorted(range(len(children)), key=lambda i: solver.RISK_LEVELS.index(children[i].risk_level))
    for i in order:
        options = np.flatnonzero(feasible[i] & (free > 0))
        if len(options):
            best = options[np.argmax(fit[i, options])]
            free[best] -= 1
            paired[children[i].risk_level] += 1
            total += int(fit[i, best])
    return paired, total


async def _county(children: int, volunteers: int) -> runs.County:
    from backbone.database import Database
    from services.matching.candidates import CandidateChild, CandidateVolunteer
    from tests.bench.common import create_tables

    with tempfile.TemporaryDirectory(prefix="bench-solver-") as folder:
        url = f"sqlite+aiosqlite:///{folder}/matching.db"
        await create_tables(url, "matching")
        db = Database(url)
        try:
            child_rows, volunteer_rows = county_of(children, volunteers, county=COUNTY)
            async with db.begin() as conn:
                await conn.execute(insert(CandidateChild), child_rows)
                await conn.execute(insert(CandidateVolunteer), volunteer_rows)
            async with db.read() as conn:
                return await runs.county(conn, COUNTY, None)
        finally:
            await db.dispose()


def _hwm_mb() -> float:
    found = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(found.group(1)) / 1024 if found else float("nan")


def _run(algorithm: str, children: int, volunteers: int) -> dict[str, Any]:
    county = asyncio.run(_county(children, volunteers))
    before = _hwm_mb()
    started = time.perf_counter()
    paired: dict[str, int]
    if algorithm == "solver":
        solution = solver.solve(county.children, county.volunteers)
        paired, fit = {str(level): n for level, n in solution.paired.items()}, solution.fit
    else:
        paired, fit = greedy(county)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "paired": [int(paired.get(level, 0)) for level in solver.RISK_LEVELS],
        "fit": int(fit),
        "before_mb": before,
        "own_peak_rss_mb": _hwm_mb(),  # read as it ends
    }


def measure(folder: Path, children: int, volunteers: int) -> dict[str, dict[str, Any]]:
    """{"solver": {...}, "greedy": {...}}: seconds, paired per risk level, total fit, peak RSS of the process
    (ru_maxrss) and its peak before the algorithm ran (the county read)."""
    from tests.bench.common import run_measured

    found = {}
    for algorithm in ("solver", "greedy"):
        out, log = folder / f"{algorithm}.json", folder / f"{algorithm}.log"
        command = [sys.executable, "-m", "tests.bench.matching_solver", algorithm, str(children), str(volunteers)]
        done = run_measured([*command, str(out)], dict(os.environ), log, 3600)
        if done.returncode != 0:
            raise RuntimeError(f"{algorithm} exited with {done.returncode}: {log.read_text()[-1500:]}")
        measured = json.loads(out.read_text())
        found[algorithm] = measured | {"peak_rss_mb": max(done.peak_rss_mb, measured["own_peak_rss_mb"])}
    return found


if __name__ == "__main__":
    algorithm, children, volunteers, out = sys.argv[1:]
    Path(out).write_text(json.dumps(_run(algorithm, int(children), int(volunteers))))
