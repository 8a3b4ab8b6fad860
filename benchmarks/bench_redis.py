"""Throughput of the Redis stream pipeline, and what RedisStreamSink.send costs the caller.

    python benchmarks/bench_redis.py [--events 30000] [--repeat 3]

1. Caller side: microseconds per ``send`` (median, p99) for the sink in
   immediate and batch mode, next to a bare redis-py ``XADD`` (the floor)
   and a direct HTTP ``Consumer.send`` to the collector (tracking without a
   queue).
2. End to end: events/s from the first ``XADD`` until the group has nothing
   pending or unread and the collector (a separate process) holds every
   event, with 1, 2 and 4 worker processes; next to the collector's own
   bound (a ``BufferedConsumer`` posting straight to it, 1 and 2 processes).
3. The same with ``--latency`` seconds (default 0.05) added to every answer,
   as a service across a network has, and batches of 200: there a worker
   spends its time waiting, not computing, so a 2-core machine can show how
   throughput grows with workers.

Redis runs with AOF on (``appendfsync everysec``, its default).  Everything
shares one machine: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from _common import ROOT, CollectorProcess

from consumers.consumer import Consumer
from consumers.redis_stream import RedisStreamSink
from consumers.redis_worker import stream_stats

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int) -> None:
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


@contextmanager
def redis_server() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp,
             "--appendonly", "yes", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            _wait_port(port)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(30)


def _event(i: int) -> str:
    return json.dumps({"event": "Page viewed", "properties": {
        "token": "tok", "distinct_id": f"user-{i % 1000}", "time": 1_700_000_000_000 + i,
        "$insert_id": f"bench-{i}", "mp_lib": "python", "path": f"/items/{i % 50}"}})


def _per_call(fn, n: int) -> tuple[float, float]:
    times = []
    clock = time.perf_counter_ns
    for i in range(n):
        msg = _event(i)
        t0 = clock()
        fn("event", msg)
        times.append(clock() - t0)
    times.sort()
    return statistics.median(times) / 1000, times[int(len(times) * 0.99)] / 1000


def bench_caller(url: str, collector: CollectorProcess, n: int) -> None:
    print(f"\n== caller-side cost per send ({n} events, microseconds) ==")
    client = redis.Redis.from_url(url)
    rows = {}
    rows["redis-py XADD (floor)"] = _per_call(
        lambda t, m: client.xadd("bare", {"type": t, "message": m}), n)
    with RedisStreamSink(url, "caller") as sink:
        rows["RedisStreamSink.send"] = _per_call(sink.send, n)
    with RedisStreamSink(url, "caller-batch", batch_size=100) as sink:
        rows["RedisStreamSink batch_size=100"] = _per_call(sink.send, n)
    with RedisStreamSink(url, "caller-bounded", maxlen=10 * n) as sink:
        rows["RedisStreamSink maxlen (Lua)"] = _per_call(sink.send, n)
    with Consumer(api_host=collector.url) as direct:
        rows["Consumer.send (HTTP, no queue)"] = _per_call(direct.send, min(n, 2000))
    floor = rows["redis-py XADD (floor)"][0]
    for name, (med, p99) in rows.items():
        print(f"{name:34s} median {med:8.1f}  p99 {p99:8.1f}  x{med / floor:5.2f} of XADD")
    client.close()


def _direct_worker(collector: CollectorProcess, start: int, n: int) -> subprocess.Popen[bytes]:
    code = (
        "import sys, json\n"
        "from consumers.buffered import BufferedConsumer\n"
        f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r})\n"
        "from bench_redis import _event\n"
        f"c = BufferedConsumer(api_host={collector.url!r}, max_batch=500)\n"
        f"for i in range({start}, {start + n}): c.send('event', _event(i))\n"
        "c.close()\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=ENV)


def bench_direct(collector: CollectorProcess, n: int, procs: int) -> float:
    collector.reset()
    t0 = time.perf_counter()
    running = [_direct_worker(collector, p * (n // procs), n // procs) for p in range(procs)]
    for proc in running:
        proc.wait()
    elapsed = time.perf_counter() - t0
    arrived = len(collector.records("track"))
    assert arrived == n, arrived
    return n / elapsed


def bench_pipeline(
    url: str,
    collector: CollectorProcess,
    n: int,
    workers: int,
    *,
    latency: float = 0.0,
    max_batch: int = 500,
) -> float:
    collector.reset()
    if latency:
        collector.add_latency(latency)
    client = redis.Redis.from_url(url)
    client.delete("tracking")
    client.xgroup_create("tracking", "mixpanel", id="0", mkstream=True)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "consumers", "worker", "--redis", url, "--api-host",
             collector.url, "--consumer-name", f"w{k}", "--batch-size", "1000",
             "--max-batch", str(max_batch)],
            cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for k in range(workers)
    ]
    while len(client.xinfo_consumers("tracking", "mixpanel")) < workers:
        time.sleep(0.05)
    t0 = time.perf_counter()
    with RedisStreamSink(url, "tracking", batch_size=500) as sink:
        for i in range(n):
            sink.send("event", _event(i))
    while True:
        info = stream_stats(client, "tracking", "mixpanel")
        if info["lag"] == 0 and info["pending"] == 0 and len(collector.records("track")) >= n:
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(60)
    client.close()
    return n / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server not found on PATH; apt-get install redis-server")
        return 0
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; "
          f"events per run {args.events}; runs {args.repeat} (medians)")
    with redis_server() as url, CollectorProcess() as collector:
        bench_caller(url, collector, min(args.events, 20_000))
        print("\n== end to end, events/s (median of runs) ==")
        results: dict[str, float] = {}
        for procs in (1, 2):
            name = f"collector bound: {procs} direct poster(s)"
            results[name] = statistics.median(
                bench_direct(collector, args.events, procs) for _ in range(args.repeat))
        for workers in (1, 2, 4):
            name = f"through Redis: {workers} worker process(es)"
            results[name] = statistics.median(
                bench_pipeline(url, collector, args.events, workers)
                for _ in range(args.repeat))
        bound = results["collector bound: 1 direct poster(s)"]
        one = results["through Redis: 1 worker process(es)"]
        for name, rate in results.items():
            print(f"{name:42s} {rate:9,.0f} ev/s  x{rate / bound:4.2f} of bound  "
                  f"x{rate / one:4.2f} of 1 worker")
        if args.latency > 0:
            print(f"\n== end to end with {args.latency * 1000:g} ms per answer, "
                  "batches of 200, events/s (median of runs) ==")
            slow: dict[int, float] = {}
            for workers in (1, 2, 4):
                slow[workers] = statistics.median(
                    bench_pipeline(url, collector, args.events, workers,
                                   latency=args.latency, max_batch=200)
                    for _ in range(args.repeat))
            ceiling = 200 / args.latency
            for workers, rate in slow.items():
                print(f"through Redis: {workers} worker process(es)        {rate:9,.0f} ev/s  "
                      f"x{rate / slow[1]:4.2f} of 1 worker  "
                      f"(a worker's ceiling: {ceiling:,.0f} ev/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
