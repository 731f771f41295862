"""`make run` as a person starts it: the runner as a process of its own, its printed addresses and demo accounts,
and Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


def start(data_dir: Path, ports: dict[str, int], **more: str) -> tuple[subprocess.Popen[str], list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env |= {"DATA_DIR": str(data_dir)} | {f"{name.upper()}_PORT": str(port) for name, port in ports.items()} | more
    runner = subprocess.Popen(
        [sys.executable, "-m", "deploy.local"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, as in a terminal
    )
    lines: list[str] = []
    assert runner.stdout is not None
    deadline = time.monotonic() + 300  # a bound only: on a loaded machine the demo data takes minutes
    for line in runner.stdout:
        lines.append(line)
        if "Ctrl-C stops everything" in line or time.monotonic() > deadline:
            break
    assert any("Ctrl-C stops everything" in line for line in lines), "".join(lines)
    return runner, lines


def interrupt(runner: subprocess.Popen[str]) -> str:
    """Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group; returns what was printed then."""
    os.killpg(runner.pid, signal.SIGINT)
    runner.wait(60)  # a bound on waiting only: `make run` kills what is not stopped at its deadlines, and says so
    assert runner.stdout is not None
    return runner.stdout.read()


def printed_accounts(output: str) -> dict[str, tuple[str, str]]:
    """The demo accounts `make run` printed: login -> (role, password)."""
    rows = re.findall(r"^  (\S+) +(admin|coordinator|volunteer|donor) +(\S{4}-\S{4}-\S{4}-\S{4}) ", output, re.M)
    return {login: (role, password) for login, role, password in rows}
