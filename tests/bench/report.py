"""The bench's one table: a row per measurement, per database a figure and its ratio to a baseline of the same run,
the goal and whether the figure meets it; printed, and written to bench/results.json and bench/results.md."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backbone.natsserver import binary

START = time.monotonic()
DATABASES = ("sqlite", "postgresql")
SHARED = "shared"  # a figure that involves no database, or the same for both
TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def say(text: str) -> None:
    """A progress line: the seconds since the bench started, then what it is doing."""
    print(f"[{time.monotonic() - START:7.1f} s] {text}", flush=True)


@dataclass
class Figure:
    value: float | None  # None: not measured (the text says why)
    text: str
    ratio: float | None = None  # value / baseline
    baseline: str = ""  # what the ratio divides by
    met: bool | None = None  # against the row's goal; None: no goal


@dataclass
class Row:
    section: str
    label: str
    goal: str = ""
    figures: dict[str, Figure] = field(default_factory=dict)  # "sqlite", "postgresql" or SHARED


@dataclass
class Results:
    sizes: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sections: dict[str, float] = field(default_factory=dict)  # seconds each part of the run took
    machine: dict[str, str] = field(default_factory=dict)
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def add(
        self, section: str, label: str, goal: str = "", figures: dict[str, Figure] | None = None, **named: Figure
    ) -> Row:
        """A row, or more figures on it; figures keyed by database ("sqlite", "postgresql") or SHARED for a figure
        without one (as a dict, or named: sqlite=…, shared=…)."""
        figures = {**(figures or {}), **named}
        for row in self.rows:
            if (row.section, row.label) == (section, label):
                row.figures.update(figures)
                row.goal = goal or row.goal
                return row
        row = Row(section, label, goal, dict(figures))
        self.rows.append(row)
        return row

    def missed(self) -> list[str]:
        return [
            f"{row.label} ({TITLES.get(db, 'no database')})"
            for row in self.rows
            for db, figure in row.figures.items()
            if figure.met is False
        ]


def rate(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}"


def ratio_text(figure: Figure) -> str:
    if figure.ratio is None:
        return ""
    digits = 0 if figure.ratio >= 100 else 1 if figure.ratio >= 10 else 2 if figure.ratio >= 0.1 else 3
    return f"{figure.ratio:,.{digits}f}× {figure.baseline}"


def verdict(row: Row) -> str:
    """ "ok" when every figure with a goal meets it, else which databases missed it."""
    judged = {db: figure.met for db, figure in row.figures.items() if figure.met is not None}
    if not judged:
        return ""
    missed = [TITLES.get(db, "") for db, met in judged.items() if not met]
    if not missed:
        return "ok"
    return "MISSED" + (f" ({', '.join(missed)})" if any(missed) and len(judged) > 1 else "")


def cells(row: Row) -> list[str]:
    """The row's cells: measurement, figure and ratio per database (a figure without one under SQLite's), goal,
    verdict."""
    out = [row.label]
    if SHARED in row.figures:
        shared = row.figures[SHARED]
        out += [shared.text, ratio_text(shared), "", ""]
    else:
        for db in DATABASES:
            figure = row.figures.get(db)
            out += [figure.text, ratio_text(figure)] if figure else ["—", ""]
    return [*out, row.goal, verdict(row)]


HEADER = ["measurement", "SQLite (or no database)", "ratio", "PostgreSQL", "ratio", "goal", "met"]


def table(results: Results) -> str:
    """The plain-text table, sections as heading lines."""
    body = [(row.section, cells(row)) for row in results.rows]
    widths = [max(len(HEADER[i]), *(len(c[i]) for _, c in body)) for i in range(len(HEADER))]
    right = {1, 3}  # figures align right

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(widths[i]) if i in right else v.ljust(widths[i]) for i, v in enumerate(values))

    lines = [line(HEADER), "  ".join("-" * w for w in widths)]
    section = None
    for name, values in body:
        if name != section:
            lines.append(f"{name}:")
            section = name
        lines.append(line(["  " + values[0], *values[1:]]).rstrip())
    return "\n".join(lines)


def markdown(results: Results) -> str:
    machine = results.machine
    out = [
        f"`make bench` on {describe(machine)}; {results.started}, commit {machine.get('commit', '?')}.",
        "",
        "Sizes: " + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in results.sizes.items()),
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---", "---:", "---", "---:", "---", "---", "---"]) + "|",
    ]
    section = None
    for row in results.rows:
        if row.section != section:
            out.append(f"| **{row.section}** |" + " |" * (len(HEADER) - 1))
            section = row.section
        label, *rest = (c.replace("|", "\\|") for c in cells(row))
        indent = len(label) - len(label.lstrip(" "))
        out.append("| " + " | ".join(["&nbsp;" * indent + label.lstrip(" "), *rest]) + " |")
    if results.notes:
        out += ["", *(f"- {note}" for note in results.notes)]
    return "\n".join(out) + "\n"


def describe(machine: dict[str, str]) -> str:
    get = machine.get
    return (
        f"{get('cpu', '?')}, {get('cores', '?')} cores, {get('ram', '?')} RAM, {get('os', '?')}, "
        f"Python {get('python', '?')}, nats-server {get('nats_server', '?')}, PostgreSQL {get('postgresql', '?')}; "
        f"load average at the start {get('load_at_start', '?')}"
    )


def machine(postgres_version: str | None) -> dict[str, str]:
    cpu = "unknown"
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    ram = "unknown"
    with contextlib.suppress(OSError, IndexError):
        kilobytes = int(re.findall(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[0])
        ram = f"{kilobytes / 1024 / 1024:.0f} GiB"
    system = platform.platform()
    with contextlib.suppress(OSError, IndexError):
        system = re.findall(r'PRETTY_NAME="([^"]+)"', Path("/etc/os-release").read_text())[0] + f" ({system})"
    nats_version = _output([binary(), "--version"]).removeprefix("nats-server: ").strip()
    commit = _output(["git", "rev-parse", "--short=12", "HEAD"]).strip() or "unknown"
    if _output(["git", "status", "--porcelain", "--untracked-files=no"]).strip():
        commit += " with uncommitted changes"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "os": system,
        "python": platform.python_version(),
        "nats_server": nats_version or "unknown",
        "postgresql": postgres_version or "not measured (TEST_POSTGRES_URL unset)",
        "commit": commit,
        "date": datetime.now(UTC).date().isoformat(),
        "load_at_start": " ".join(f"{load:.2f}" for load in os.getloadavg()),  # anything else running shows here
    }


def _output(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=20, check=False).stdout
    except OSError:
        return ""


def write(results: Results, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    data = asdict(results)
    data["table"] = table(results)
    data["missed"] = results.missed()
    data["command"] = " ".join([Path(sys.executable).name, "-m", "tests.bench", *sys.argv[1:]])
    as_json, as_markdown = folder / "results.json", folder / "results.md"
    as_json.write_text(json.dumps(_finite(data), indent=2, ensure_ascii=False, default=str) + "\n")
    as_markdown.write_text(markdown(results))
    return as_json, as_markdown


def _finite(value: Any) -> Any:
    """JSON has no infinity: a figure never reached is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def percentile(values: list[float], p: float) -> float:
    """Nearest rank; a value of inf (a request never answered, a child never seen) counts as the slowest."""
    ordered = sorted(values)
    if not ordered:
        return math.inf
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return "never" if not math.isfinite(seconds) else f"{seconds * 1000:,.1f}"
