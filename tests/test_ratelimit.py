"""Under a real rate limit: the collector's limiter, and every sender waiting for the hold."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from consumers.background import BackgroundConsumer
from consumers.buffered import BufferedConsumer
from consumers.collector import Collector, build_parser
from consumers.file import FileConsumer
from consumers.replaying import replay
from consumers.retry import RetryPolicy
from tests.consumer_messages import event
from tests.test_pace import Arrivals


@pytest.fixture
def timed() -> Iterator[tuple[Collector, Arrivals]]:
    arrivals = Arrivals()
    with Collector(on_request=arrivals) as c:
        yield c, arrivals


def _post(session: Any, url: str, path: str) -> Any:
    return session.post(url + path, data=json.dumps([json.loads(event())]),
                        headers={"Content-Type": "application/json"})


def _gaps_after_429s(arrivals: list[tuple[float, Any]]) -> list[float]:
    """Seconds from each 429 to the next request on the same endpoint."""
    return [arrivals[i + 1][0] - t for i, (t, status) in enumerate(arrivals[:-1])
            if status == 429]


# -- the collector ---------------------------------------------------------------------
def test_the_collector_admits_n_requests_per_second_per_endpoint(collector, session):
    collector.rate_limit(2)
    answers = [_post(session, collector.url, "/track") for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 429, 429, 429]
    assert all(a.headers["Retry-After"] == "1" for a in answers[2:])
    assert _post(session, collector.url, "/engage").status_code != 429  # its own allowance
    assert len(collector.messages("track")) == 2  # refused requests store nothing
    assert collector.rate_limited() == 3
    time.sleep(1.05)  # the window has moved on
    assert _post(session, collector.url, "/track").status_code == 200
    collector.rate_limit(None)
    assert all(_post(session, collector.url, "/track").status_code == 200 for _ in range(5))


def test_the_collector_limit_takes_a_fixed_retry_after_and_a_path(collector, session):
    collector.rate_limit(1, retry_after=7, path="/import")
    assert _post(session, collector.url, "/track").status_code == 200
    assert _post(session, collector.url, "/track").status_code == 200
    session.post(collector.url + "/import", data=b"[]")
    refused = session.post(collector.url + "/import", data=b"[]")
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "7")
    with pytest.raises(ValueError, match="per_second"):
        collector.rate_limit(0)


def test_the_collector_command_line_takes_a_rate_limit():
    assert build_parser().parse_args(["--rate-limit", "5"]).rate_limit == 5
    assert build_parser().parse_args([]).rate_limit is None


# -- the background consumer -------------------------------------------------------------
def test_a_background_consumer_under_a_real_limit_delivers_everything_in_fuller_batches(
        timed, tmp_path):
    collector, arrivals = timed
    collector.rate_limit(1)
    consumer = BackgroundConsumer(BufferedConsumer(api_host=collector.url),
                                  spool=tmp_path / "spool")
    n = 5000
    for _ in range(n):
        consumer.send("event", event())
    consumer.close(timeout=60)
    stats = consumer.stats()
    assert stats["delivered"] == n
    assert len(collector.unique("track")) == n
    assert stats["rate_limited"] >= 1 and stats["held_ms"] > 0
    track = arrivals.on("/track")
    assert all(gap >= 0.9 for gap in _gaps_after_429s(track))  # none inside a hold
    sizes = [r["n_records"] for r in collector.requests() if r["status"] == 200]
    assert max(sizes) == 2000  # under the limit, requests filled up to the service's maximum


def test_close_during_a_hold_spills_and_the_next_consumer_delivers(timed, tmp_path):
    collector, arrivals = timed
    collector.fail_next(1, 429, retry_after=30, path="/track")
    spool = tmp_path / "spool"
    first = BackgroundConsumer(BufferedConsumer(api_host=collector.url), spool=spool)
    for _ in range(10):
        first.send("event", event())
    assert first.flush(timeout=0.5) is False  # held for 30 s
    started = time.monotonic()
    first.close(timeout=1.0)
    assert time.monotonic() - started < 10  # the close deadline holds
    stats = first.stats()
    assert (stats["delivered"], stats["spilled"], stats["failed"]) == (0, 10, 0)
    assert [s for _, s in arrivals.on("/track")] == [429]  # nothing sent inside the hold
    second = BackgroundConsumer(BufferedConsumer(api_host=collector.url), spool=spool)
    second.close(timeout=30)
    assert len(collector.unique("track")) == 10


def test_the_outage_probe_waits_for_the_hold_not_its_own_interval(timed, tmp_path):
    collector, arrivals = timed
    collector.fail_next(1, 429, retry_after=2, path="/track")
    policy = RetryPolicy(max_attempts=1, max_elapsed=0.5)
    consumer = BackgroundConsumer(BufferedConsumer(api_host=collector.url, retry=policy),
                                  spool=tmp_path / "spool", probe_interval=0.05)
    for _ in range(10):
        consumer.send("event", event())
    assert consumer.flush(timeout=30)
    consumer.close()
    (refused_at, first), (sent_at, second) = arrivals.on("/track")
    assert (first, second) == (429, 200)
    assert sent_at - refused_at >= 1.8
    assert len(collector.unique("track")) == 10


# -- replay and the Redis worker ---------------------------------------------------------
def test_a_replay_after_a_429_waits_for_the_hold(timed, tmp_path):
    collector, arrivals = timed
    log = tmp_path / "log"
    with FileConsumer(f"{log}/") as writer:
        for _ in range(30):
            writer.send("event", event())
    collector.fail_next(1, 429, retry_after=1, path="/track")
    with BufferedConsumer(api_host=collector.url, retry=RetryPolicy(max_attempts=1)) as sink:
        stopped = replay(log, sink, batch_size=10)
        assert stopped.error is not None and stopped.sent == 0
        resumed = replay(log, sink, batch_size=10)
    assert resumed.error is None
    assert len(collector.unique("track")) == 30
    track = arrivals.on("/track")
    assert track[0][1] == 429 and all(s == 200 for _, s in track[1:])
    assert track[1][0] - track[0][0] >= 0.9


@pytest.mark.redis
def test_the_redis_worker_waits_for_the_hold(redis_srv, timed):
    pytest.importorskip("redis", reason='the redis extra is not installed: pip install ".[redis]"')
    from consumers.redis_stream import RedisStreamSink
    from consumers.redis_worker import StreamWorker

    collector, arrivals = timed
    collector.fail_next(1, 429, retry_after=1, path="/track")
    consumer = BufferedConsumer(api_host=collector.url, retry=RetryPolicy(max_attempts=1),
                                max_batch=100)
    with RedisStreamSink(redis_srv.url) as sink:
        for _ in range(50):
            sink.send("event", event())
    worker = StreamWorker(redis_srv.url, consumer, block_ms=100, backoff_initial=0.01,
                          backoff_max=0.02)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 30
    while len(collector.unique("track")) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(30)
    worker.close()
    assert len(collector.unique("track")) == 50
    assert worker.counters["failures"] >= 1
    track = arrivals.on("/track")
    assert track[0][1] == 429 and all(s == 200 for _, s in track[1:])
    assert track[1][0] - track[0][0] >= 0.9


def test_the_collector_command_line_refuses_a_rate_limit_below_one(capsys):
    from consumers.collector import main

    assert main(["--port", "0", "--rate-limit", "0"]) == 2
    assert "--rate-limit must be at least 1" in capsys.readouterr().err
