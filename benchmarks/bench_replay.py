"""Replay throughput, naive replay, and the cost of FileConsumer's fsync policies.

Run: ``python benchmarks/bench_replay.py [--lines 200000] [--repeat 3]``

* replay(): a 200,000-line log delivered to the local collector running as a
  separate process (``python -m consumers.collector``), through a
  BufferedConsumer, in confirmed batches with a checkpoint.
* naive: the Ruby docs' loop, one ``Consumer.send`` (one HTTP request) per
  line.  Measured on a sample (``--naive-sample`` lines) and extrapolated to
  the full log, because it would take minutes.
* peer: the ``mixpanel`` package's BufferedConsumer (50 per request), when installed.
* fsync policies: FileConsumer lines/s with fsync none / batch (every 500) / line,
  against the floor: a bare ``os.write`` loop of the same encoded line.
* flock: the cost of the lock FileConsumer takes around every line.

Every figure is the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import tempfile
import time
from typing import Callable

from _common import ROOT, CollectorProcess

from consumers import BufferedConsumer, Consumer
from consumers.file import FileConsumer
from consumers.replaying import parse_line, replay


def event(n: int) -> str:
    return json.dumps({"event": "Page Viewed", "properties": {
        "token": "bench-token", "distinct_id": f"user-{n % 5000}", "time": 1700000000000 + n,
        "$insert_id": f"bench-{n:012d}", "mp_lib": "python", "page": f"/docs/{n % 300}",
        "plan": "pro", "referrer": "https://example.com/search?q=analytics"}})


def write_log(path: str, lines: int) -> None:
    with FileConsumer(path) as log:
        for n in range(lines):
            log.send("event", event(n))


def median_of(repeat: int, run: Callable[[], float]) -> float:
    return statistics.median(run() for _ in range(repeat))


def bench_replay(log: str, lines: int, collector: CollectorProcess, batch: int) -> float:
    collector.reset()
    start = time.perf_counter()
    with BufferedConsumer(api_host=collector.url, max_batch=batch) as sink:
        result = replay(log, sink, batch_size=batch, checkpoint=log + f".bench{batch}.ckpt")
    elapsed = time.perf_counter() - start
    os.unlink(log + f".bench{batch}.ckpt")
    assert result.ok and result.sent == lines, result.summary()
    return lines / elapsed


def bench_naive(log: str, sample: int, collector: CollectorProcess) -> float:
    collector.reset()
    consumer = Consumer(api_host=collector.url)
    start = time.perf_counter()
    with open(log, "rb") as f:
        for i, raw in enumerate(f):
            if i == sample:
                break
            message_type, message = json.loads(raw)
            consumer.send(message_type, message)
    elapsed = time.perf_counter() - start
    consumer.close()
    return sample / elapsed


def bench_mixpanel_peer(log: str, sample: int, collector: CollectorProcess) -> float:
    import mixpanel

    collector.reset()
    peer = mixpanel.BufferedConsumer(
        max_size=50, events_url=collector.url + "/track", people_url=collector.url + "/engage",
        groups_url=collector.url + "/groups", import_url=collector.url + "/import")
    kinds = {"event": "events", "profile_update": "people", "group_update": "groups"}
    start = time.perf_counter()
    with open(log, "rb") as f:
        for i, raw in enumerate(f):
            if i == sample:
                break
            message_type, message = parse_line(raw)
            peer.send(kinds[message_type], message)
    peer.flush()
    return sample / (time.perf_counter() - start)


def bench_parse_only(log: str, lines: int) -> float:
    start = time.perf_counter()
    result = replay(log, lambda t, m: None, checkpoint=False, dry_run=True)
    assert result.sent == lines
    return lines / (time.perf_counter() - start)


def bench_fsync(folder: str, policy: str, lines: int) -> float:
    path = os.path.join(folder, f"fsync-{policy}-{time.monotonic_ns()}.log")
    message = event(1)
    start = time.perf_counter()
    with FileConsumer(path, fsync=policy) as log:
        for n in range(lines):
            log.send("event", message)
            if n % 500 == 499:
                log.flush()
    rate = lines / (time.perf_counter() - start)
    os.unlink(path)
    return rate


def bench_write_floor(folder: str, lines: int) -> float:
    path = os.path.join(folder, f"floor-{time.monotonic_ns()}.log")
    line = (json.dumps(["event", event(1)], ensure_ascii=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    start = time.perf_counter()
    for _ in range(lines):
        os.write(fd, line)
    rate = lines / (time.perf_counter() - start)
    os.close(fd)
    os.unlink(path)
    return rate


def bench_flock(folder: str, lines: int, locked: bool) -> float:
    path = os.path.join(folder, f"flock-{locked}.log")
    line = b"x" * 8191 + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    start = time.perf_counter()
    for _ in range(lines):
        if locked:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            fcntl.flock(fd, fcntl.LOCK_UN)
        else:
            os.write(fd, line)
    rate = lines / (time.perf_counter() - start)
    os.close(fd)
    os.unlink(path)
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--naive-sample", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fsync-lines", type=int, default=20_000)
    parser.add_argument("--fsync-line-lines", type=int, default=2_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=str(ROOT)) as tmp:
        log = os.path.join(tmp, "bench.log")
        write_log(log, args.lines)
        size_mb = os.path.getsize(log) / 1e6
        print(f"log: {args.lines:,} lines, {size_mb:.1f} MB; median of {args.repeat} runs; "
              f"{os.cpu_count()} CPUs")
        collector = CollectorProcess()
        try:
            parse = median_of(args.repeat, lambda: bench_parse_only(log, args.lines))
            rates = {b: median_of(args.repeat,
                                  lambda b=b: bench_replay(log, args.lines, collector, b))
                     for b in (500, 2000)}
            naive = median_of(args.repeat,
                              lambda: bench_naive(log, args.naive_sample, collector))
            try:
                peer = median_of(args.repeat,
                                 lambda: bench_mixpanel_peer(log, args.naive_sample * 4,
                                                             collector))
            except ImportError:
                peer = 0.0
        finally:
            collector.close()

        print("\nreplay to the collector (separate process), events/s:")
        print(f"  read + validate only (--dry-run)     {parse:>10,.0f}")
        for b, rate in rates.items():
            print(f"  replay(), batch {b:<5}               {rate:>10,.0f}   "
                  f"{rate / naive:6.1f}x naive   {args.lines / rate:6.1f} s for the log")
        if peer:
            print(f"  mixpanel BufferedConsumer (50/req)   {peer:>10,.0f}   "
                  f"{peer / naive:6.1f}x naive   (sample of {args.naive_sample * 4:,}, "
                  f"extrapolated: {args.lines / peer:6.1f} s)")
        print(f"  naive, one Consumer.send per line    {naive:>10,.0f}     1.0x         "
              f"(sample of {args.naive_sample:,} lines, extrapolated: "
              f"{args.lines / naive:6.1f} s for the log)")

        floor = median_of(args.repeat, lambda: bench_write_floor(tmp, args.fsync_lines))
        print("\nFileConsumer append, lines/s (fsync policy):")
        print(f"  bare os.write  {floor:>12,.0f}   (floor: the same line, no encoding, no lock)")
        base = 0.0
        for policy, n in (("none", args.fsync_lines), ("batch", args.fsync_lines),
                          ("line", args.fsync_line_lines)):
            rate = median_of(args.repeat, lambda p=policy, n=n: bench_fsync(tmp, p, n))
            base = base or rate
            print(f"  fsync={policy:<6} {rate:>12,.0f}   {rate / base:8.3f}x of none   "
                  f"{rate / floor:6.3f}x of the floor"
                  + ("   (batch = fsync every 500 lines)" if policy == "batch" else ""))

        plain = median_of(args.repeat, lambda: bench_flock(tmp, 20_000, False))
        locked = median_of(args.repeat, lambda: bench_flock(tmp, 20_000, True))
        print("\n8 KB lines, lines/s:")
        print(f"  write only         {plain:>12,.0f}")
        print(f"  flock + write      {locked:>12,.0f}   {locked / plain:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
