"""A real ``redis-server`` for tests: free port, temporary directory, AOF on.

Used by the Redis tests, the demo and the benchmark.  ``RedisServer()`` raises
``FileNotFoundError`` (text: :data:`MISSING`) when the binary is missing; the
test fixtures turn that into a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Optional

import pytest

MISSING = "redis-server not found on PATH; apt-get install redis-server"


def redis_server_binary() -> Optional[str]:
    """Path of ``redis-server``, or None."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process; restartable on the same port and directory."""

    def __init__(
        self,
        directory: Optional[str] = None,
        port: Optional[int] = None,
        args: Sequence[str] = (),
    ) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise FileNotFoundError(MISSING)
        self.binary = binary
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="redis-test-")
        self.dir = Path(directory or self._tmp.name)  # type: ignore[union-attr]
        self.port = port or free_port()
        self.args = list(args)  # extra redis-server options, e.g. ["--requirepass", "pw"]
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.dir),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--daemonize", "no",
                "--logfile", str(self.dir / "redis.log"),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log()[-2000:]}")
            if self._answers():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                # With --requirepass a live server answers PING with -NOAUTH.
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (Redis finishes the AOF and exits), then wait."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return (self.dir / "redis.log").read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


@pytest.fixture
def redis_srv() -> Iterator[RedisServer]:
    """A real redis-server on a free port for one test (skips where the binary is missing)."""
    if redis_server_binary() is None:
        pytest.skip(MISSING)
    with RedisServer() as srv:
        yield srv
