"""What the benchmarks share: the sample properties and the collector in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: the properties every client sends with each benchmark event
PROPS: dict[str, Any] = {
    "plan": "premium",
    "amount": 49.99,
    "items": 3,
    "coupon": None,
    "first_purchase": True,
    "tags": ["spring", "sale"],
    "referrer": "https://example.com/landing?utm_source=newsletter",
}


class CollectorProcess:
    """``python -m consumers.collector`` on a free port, in a process of its own.

    A separate process keeps the server's CPU out of the client's measurements.
    ``flags`` go to the command line (``"--mode", "asyncio"``, ``"--fast-json"``).
    """

    def __init__(self, *flags: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "consumers.collector", "--port", "0", "--quiet", *flags],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()  # "collector listening on http://127.0.0.1:N (...)"
        if "listening on " not in first:
            self.proc.kill()
            raise RuntimeError(f"the collector did not start: {first!r}")
        self.url = first.split("listening on ", 1)[1].split()[0]
        self.port = int(self.url.rsplit(":", 1)[1])

    def separate_cpus(self) -> bool:
        """Run the collector on the last CPU, this thread (and threads it starts) on the others.

        The collector stands in for a remote service, whose CPU is not the
        client's: on a small machine, sharing CPUs with it lets the scheduler
        pause the client for whole time slices.  False where that is not
        possible (one CPU, or no ``sched_setaffinity``).
        """
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if len(cpus) < 2:
            return False
        self._pin_collector({cpus[-1]})
        os.sched_setaffinity(0, set(cpus[:-1]))
        self._cpus = cpus
        return True

    def _pin_collector(self, cpus: set[int]) -> None:
        """Every thread of the collector on ``cpus``: the threads it starts later inherit it.

        Setting the process's affinity moves only its main thread; its server
        threads (started before) would go on running on any CPU, the
        client's included, and preempt it.
        """
        tasks = Path(f"/proc/{self.proc.pid}/task")
        ids = [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [self.proc.pid]
        for tid in ids:
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:  # a thread that ended meanwhile
                pass

    def share_cpus(self) -> None:
        """Undo :meth:`separate_cpus`: the collector and this process share every CPU."""
        cpus = getattr(self, "_cpus", None)
        if cpus:
            self._pin_collector(set(cpus))
            os.sched_setaffinity(0, set(cpus))

    def get(self, path: str) -> Any:
        """GET a read-API path (``/_collector/stats``) and decode its JSON."""
        with urllib.request.urlopen(self.url + path, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def stats(self) -> Any:
        return self.get("/_collector/stats")

    def records(self, endpoint: str) -> list[Any]:
        """Everything accepted on ``endpoint`` (``track``, ``import``, ``posthog``, ...)."""
        data = self.get(f"/_collector/records?endpoint={endpoint}")
        return list(data.get("records", []) if isinstance(data, dict) else data)

    def add_latency(self, seconds: float) -> None:
        """Answer every request ``seconds`` late, as a service across a network does."""
        body = json.dumps({"count": 10**9, "delay": seconds}).encode()
        request = urllib.request.Request(self.url + "/_collector/faults", data=body,
                                         headers={"Content-Type": "application/json"},
                                         method="POST")
        urllib.request.urlopen(request, timeout=60).close()

    def reset(self) -> None:
        """Forget every record and request, and any latency or fault."""
        request = urllib.request.Request(self.url + "/_collector/reset", data=b"", method="POST")
        urllib.request.urlopen(request, timeout=60).close()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> CollectorProcess:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()
