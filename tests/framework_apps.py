"""Running a framework app in a real process of its own, and waiting for what it delivers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parent.parent


def child_env(**extra: str) -> dict[str, str]:
    """This interpreter's environment with the checkout importable first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKING_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def write(folder: Path, name: str, source: str) -> Path:
    """``source`` (dedented) as ``folder/name``."""
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def run_script(folder: Path, name: str, source: str, timeout: float = 120,
               **env: str) -> subprocess.CompletedProcess[str]:
    """Write and run a Python script to its end; its output is returned."""
    path = write(folder, name, source)
    return subprocess.run([sys.executable, str(path)], cwd=folder, env=child_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "it") -> Any:
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def stop(process: subprocess.Popen[str], signum: int, timeout: float = 60) -> str:
    """Send ``signum``, wait for the process to exit, and return what it printed."""
    process.send_signal(signum)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        raise AssertionError(f"process did not exit after signal {signum}:\n{out}") from None
    return out


def events_named(collector: Any, name: str) -> list[dict[str, Any]]:
    """The collector's events called ``name``, after dedup."""
    return [e for e in collector.unique("track") if e.get("event") == name]


def sent_twice(collector: Any) -> int:
    """How many accepted /track records were duplicates."""
    return len(collector.messages("track")) - len(collector.unique("track"))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 just now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def popen(args: list[str], folder: Path, **env: str) -> subprocess.Popen[str]:
    """Start ``args`` in ``folder``; output (stdout and stderr together) is kept."""
    return subprocess.Popen(args, cwd=folder, env=child_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_http(url: str, process: Optional[subprocess.Popen[str]] = None,
              timeout: float = 60) -> None:
    """Wait until ``url`` answers (any status)."""
    import requests

    def up() -> bool:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"server exited early:\n{process.communicate()[0]}")
        try:
            requests.get(url, timeout=1)
        except requests.ConnectionError:
            return False
        return True

    wait_for(up, timeout, f"{url} to answer")
