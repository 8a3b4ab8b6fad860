"""Worker processes: SIGKILL mid-batch, graceful SIGTERM, the --stats command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from redis_server import RedisServer

from consumers.buffered import BufferedConsumer
from consumers.redis_stream import RedisStreamSink
from consumers.redis_worker import StreamWorker, stream_stats

redis = pytest.importorskip(
    "redis", reason='the redis extra is not installed: pip install ".[redis]"'
)

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent


def _worker_process(srv: RedisServer, collector, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "consumers", "worker", "--redis", srv.url,
         "--api-host", collector.url, *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _queue(sink: RedisStreamSink, n: int) -> None:
    for i in range(n):
        sink.send("event", json.dumps({"event": "Page viewed", "properties": {
            "token": "tok", "distinct_id": f"u{i % 13}", "time": 1_700_000_000_000 + i,
            "$insert_id": f"id-{i}", "n": i}}))


def test_worker_killed_mid_batch_has_its_entries_reclaimed(redis_srv, collector):
    n = 1_000
    with RedisStreamSink(redis_srv.url) as sink:
        _queue(sink, n)
        # The first answers are slow: the worker is inside a batch when it dies.
        collector.delay_next(4, 1.0)
        proc = _worker_process(redis_srv, collector, "--consumer-name", "doomed",
                               "--batch-size", "400", "--max-batch", "50")
        _wait_for(lambda: stream_stats(sink.client, "tracking", "mixpanel")["pending"] > 0,
                  what="the first worker to read a batch")
        time.sleep(1.5)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert stream_stats(sink.client, "tracking", "mixpanel")["pending"] > 0

        consumer = BufferedConsumer(api_host=collector.url, max_batch=200)
        rescuer = StreamWorker(redis_srv.url, consumer, name="rescuer", claim_idle_ms=300,
                               block_ms=100)
        stop = threading.Event()
        thread = threading.Thread(target=rescuer.run, args=(stop,))
        thread.start()
        try:
            _wait_for(lambda: len(collector.unique("track")) >= n, what="every event")
            _wait_for(lambda: stream_stats(sink.client, "tracking", "mixpanel")["pending"] == 0,
                      what="the rescuer to ack")
        finally:
            stop.set()
            thread.join(60)
            rescuer.close()
    assert rescuer.counters["reclaimed"] > 0
    ids = sorted(m["properties"]["$insert_id"] for m in collector.unique("track"))
    assert ids == sorted(f"id-{i}" for i in range(n))


def test_sigterm_finishes_the_batch_acks_it_and_exits_0(redis_srv, collector):
    n = 500
    with RedisStreamSink(redis_srv.url) as sink:
        _queue(sink, n)
        collector.delay_next(3, 0.3)
        proc = _worker_process(redis_srv, collector, "--batch-size", "100")
        _wait_for(lambda: stream_stats(sink.client, "tracking", "mixpanel")["pending"] > 0,
                  what="the worker to read a batch")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        stats = stream_stats(sink.client, "tracking", "mixpanel")
        assert stats["pending"] == 0
        delivered = json.loads(out.strip().splitlines()[-1])["worker"]["delivered"]
        assert delivered > 0
        assert len(collector.unique("track")) == delivered
        assert stats["lag"] == n - delivered


def test_worker_drain_delivers_everything_then_exits(redis_srv, collector):
    with RedisStreamSink(redis_srv.url) as sink:
        _queue(sink, 300)
        proc = _worker_process(redis_srv, collector, "--drain")
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert len(collector.unique("track")) == 300


def test_stats_command_prints_json(redis_srv, collector):
    with RedisStreamSink(redis_srv.url) as sink:
        _queue(sink, 3)
        proc = _worker_process(redis_srv, collector, "--stats")
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    stats = json.loads(out)
    assert stats["lag"] == 3
    assert stats["pending"] == 0
    assert stats["stream"] == "tracking"
