"""Track in a web app, deliver from worker processes, through a Redis stream.

The Ruby docs' "worker process on another machine" pattern, with a Redis
stream as the queue:

* request threads of a (pretend) web app track through a ``Tracker`` whose
  sink is a ``RedisStreamSink``: one ``XADD`` per message, no HTTP in the
  request path;
* two ``python -m consumers worker`` processes share the consumer group and
  deliver to the embedded local collector (nothing leaves this machine);
* on SIGTERM each worker finishes its batch, acks it and exits 0.

Run: ``python demo/redis_pipeline.py`` (needs ``redis-server`` on PATH and
the redis extra: ``pip install ".[redis]"``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from consumers.collector import Collector  # noqa: E402
from consumers.redis_stream import RedisStreamSink  # noqa: E402
from consumers.redis_worker import stream_stats  # noqa: E402
from tracker import Tracker  # noqa: E402

USERS = 40
REQUESTS_PER_THREAD = 250
THREADS = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
         "--appendonly", "yes", "--save", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def _web_app(tracker: Tracker, thread_no: int) -> None:
    """Each 'request' tracks an event and updates a profile."""
    for i in range(REQUESTS_PER_THREAD):
        user = f"user-{(thread_no * 7 + i) % USERS}"
        tracker.track(user, "Page viewed", {"path": f"/items/{i % 9}", "thread": thread_no})
        if i % 10 == 0:
            tracker.people.increment(user, {"Pages": 10})


def main() -> int:
    """Run the pipeline end to end and print what arrived at the collector."""
    if shutil.which("redis-server") is None:
        print("redis-server not found on PATH; apt-get install redis-server -- skipping demo")
        return 0
    try:
        import redis  # noqa: F401
    except ImportError:
        print('the redis package is missing: pip install ".[redis]" -- skipping demo')
        return 0
    with tempfile.TemporaryDirectory() as tmp, Collector() as collector:
        redis_proc, url = _start_redis(tmp)
        workers: list[subprocess.Popen[str]] = []
        try:
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            for name in ("worker-a", "worker-b"):
                workers.append(subprocess.Popen(
                    [sys.executable, "-m", "consumers", "worker", "--redis", url,
                     "--api-host", collector.url, "--consumer-name", name,
                     "--batch-size", "100"],
                    cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                    text=True,
                ))
            print(f"redis at {url}; collector at {collector.url}; 2 workers started")

            with RedisStreamSink(url, "tracking") as sink:
                tracker = Tracker("demo-token", sink)
                started = time.perf_counter()
                threads = [threading.Thread(target=_web_app, args=(tracker, t))
                           for t in range(THREADS)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                tracked = time.perf_counter() - started
                queued = THREADS * REQUESTS_PER_THREAD * 11 // 10
                print(f"web app: {queued} messages queued in {tracked:.2f} s "
                      f"({queued / tracked:,.0f} per second across {THREADS} threads)")

                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    info = stream_stats(sink.client, "tracking", "mixpanel")
                    if info["lag"] == 0 and info["pending"] == 0:
                        break
                    time.sleep(0.1)
                delivered = time.perf_counter() - started
        finally:
            for proc in workers:
                proc.send_signal(signal.SIGTERM)
            outputs = [proc.communicate(timeout=60)[0] for proc in workers]
            redis_proc.terminate()
            redis_proc.wait(30)

        print(f"all delivered {delivered:.2f} s after the first request")
        for proc, out in zip(workers, outputs):
            last = out.strip().splitlines()[-1] if out.strip() else "{}"
            stats = json.loads(last).get("worker", {})
            print(f"  {stats.get('name')}: exit {proc.returncode}, "
                  f"delivered {stats.get('delivered')}, batches {stats.get('batches')}")
        arrived = Counter(r["endpoint"] for r in collector.records())
        print("arrived at the collector (raw):", dict(arrived))
        print("after dedup: track", len(collector.unique("track")),
              "engage", len(collector.unique("engage")))
        sample = collector.messages("track")[0]
        print("one event as delivered:", json.dumps(sample)[:200])
    return 0


if __name__ == "__main__":
    sys.exit(main())
