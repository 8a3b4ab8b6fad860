"""StreamWorker: real redis-server, real local collector, real HTTP."""

from __future__ import annotations

import json
import threading
import time

import pytest

from consumers.buffered import BufferedConsumer
from consumers.redis_stream import RedisStreamSink
from consumers.redis_worker import StreamWorker, stream_stats, trim_delivered
from consumers.retry import RetryPolicy
from tracker import Tracker

redis = pytest.importorskip(
    "redis", reason='the redis extra is not installed: pip install ".[redis]"'
)

pytestmark = pytest.mark.redis

FAST_RETRY = RetryPolicy(max_attempts=2, max_elapsed=2.0, initial_backoff=0.01, max_backoff=0.05)


def _event(n: int) -> str:
    """One valid /track event, numbered ``n``."""
    return json.dumps({"event": "e", "properties": {
        "token": "TOKEN", "distinct_id": "u1", "time": int(time.time() * 1000),
        "$insert_id": f"redis-{n}", "n": n}})


def _consumer(collector, **kwargs) -> BufferedConsumer:
    kwargs.setdefault("max_batch", 200)
    return BufferedConsumer(api_host=collector.url, retry=FAST_RETRY, **kwargs)


def _worker(srv, consumer, **kwargs) -> StreamWorker:
    kwargs.setdefault("block_ms", 100)
    kwargs.setdefault("backoff_initial", 0.05)
    kwargs.setdefault("backoff_max", 0.5)
    return StreamWorker(srv.url, consumer, **kwargs)


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class _Running:
    """Workers running in threads until the block ends."""

    def __init__(self, *workers: StreamWorker) -> None:
        self.workers = workers
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=w.run, args=(self.stop,)) for w in workers]

    def __enter__(self) -> _Running:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)
        for w in self.workers:
            w.close()


def _track_from_threads(sink, n: int, threads: int = 4) -> None:
    def produce(part: int) -> None:
        tracker = Tracker("tok", sink)
        for i in range(part, n, threads):
            assert tracker.track(f"user-{i % 97}", "Page viewed", {"n": i}) is not False

    pool = [threading.Thread(target=produce, args=(p,)) for p in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def _ns(collector) -> list[int]:
    return sorted(m["properties"]["n"] for m in collector.unique("track"))


def test_ten_thousand_events_from_threads_are_delivered_once_by_two_workers(
    redis_srv, collector
):
    n = 10_000
    with RedisStreamSink(redis_srv.url) as sink:
        workers = [_worker(redis_srv, _consumer(collector), name=f"w{i}") for i in range(2)]
        with _Running(*workers):
            _track_from_threads(sink, n)
            _wait_for(lambda: len(collector.unique("track")) >= n, what="delivery")
            _wait_for(lambda: stream_stats(sink.client, "tracking", "mixpanel")["pending"] == 0)
    assert _ns(collector) == list(range(n))
    delivered = [w.counters["delivered"] for w in workers]
    assert sum(delivered) == n
    assert all(d > 0 for d in delivered), delivered


def test_collector_outage_then_recovery_loses_nothing(redis_srv, collector):
    n = 600
    collector.fail_next(6, status=503)
    collector.drop_next(2)
    with RedisStreamSink(redis_srv.url) as sink:
        _track_from_threads(sink, n, threads=2)
        worker = _worker(redis_srv, _consumer(collector))
        with _Running(worker):
            _wait_for(lambda: len(collector.unique("track")) >= n, what="delivery")
            _wait_for(lambda: stream_stats(sink.client, "tracking", "mixpanel")["pending"] == 0)
    assert _ns(collector) == list(range(n))
    assert worker.counters["failures"] >= 1
    assert worker.counters["dead_lettered"] == 0


def test_redis_restart_mid_run_loses_nothing_acknowledged(redis_srv, collector):
    n = 2_000
    with RedisStreamSink(redis_srv.url) as sink:
        worker = _worker(redis_srv, _consumer(collector))
        with _Running(worker):
            _track_from_threads(sink, n // 2, threads=2)
            redis_srv.restart()
            tracker = Tracker("tok", sink)
            for i in range(n // 2, n):
                while not tracker.track(f"user-{i}", "Page viewed", {"n": i}):
                    time.sleep(0.05)  # the error handler logged it; the app may try again
            _wait_for(lambda: len(collector.unique("track")) >= n, what="delivery")
            _wait_for(lambda: stream_stats(sink.client, "tracking", "mixpanel")["pending"] == 0)
    assert _ns(collector) == list(range(n))


def test_poison_messages_go_to_the_dead_letter_stream_with_a_reason(redis_srv, collector):
    client = redis.Redis.from_url(redis_srv.url, decode_responses=True)
    good = {"event": "Signed up", "properties": {
        "distinct_id": "u1", "time": int(time.time() * 1000), "$insert_id": "good-1"}}
    refused = {"event": "Signed up", "properties": {
        "distinct_id": "u2", "time": 1000, "$insert_id": "too-old-1"}}
    client.xadd("tracking", {"type": "import", "message": json.dumps(good)})
    client.xadd("tracking", {"type": "import", "message": json.dumps(refused)})
    client.xadd("tracking", {"type": "event", "message": "{not json"})
    client.xadd("tracking", {"message": "{}"})
    client.xadd("tracking", {"type": "no-such-type", "message": "{}"})
    consumer = _consumer(collector, service_account=("user", "secret", "123"))
    worker = _worker(redis_srv, consumer)
    while worker.run_once():
        pass
    worker.run_once()
    dead = {e["source_id"]: e for _id, e in client.xrange("tracking:dead")}
    reasons = sorted(e["reason"] for e in dead.values())
    assert len(dead) == 4, reasons
    assert any("/import rejected" in r for r in reasons), reasons
    assert any("not JSON" in r for r in reasons), reasons
    assert any("'type'" in r for r in reasons), reasons
    assert [m["properties"]["$insert_id"] for m in collector.unique("import")] == ["good-1"]
    stats = worker.stats()
    assert stats["pending"] == 0
    assert stats["dead_lettered"] == 4
    assert worker.counters["delivered"] == 1
    assert "secret" not in json.dumps(stats) + repr(worker)


def test_a_single_message_the_service_refuses_is_dead_lettered_with_its_status(
    redis_srv, collector
):
    client = redis.Redis.from_url(redis_srv.url, decode_responses=True)
    event = {"event": "Signed up", "properties": {
        "token": "t", "distinct_id": "u1", "time": int(time.time() * 1000),
        "$insert_id": "refused-1"}}
    client.xadd("tracking", {"type": "event", "message": json.dumps(event)})
    collector.fail_next(status=400, body="the project is over its event quota", path="/track")
    worker = _worker(redis_srv, _consumer(collector))
    while worker.run_once():
        pass
    [dead] = [e for _id, e in client.xrange("tracking:dead")]
    assert dead["reason"].startswith("refused with status 400"), dead["reason"]
    assert "over its event quota" in dead["reason"], dead["reason"]
    assert collector.unique("track") == []
    worker.close()
    client.close()


def test_trimming_keeps_entries_a_slower_group_still_needs(redis_srv, collector):
    with RedisStreamSink(redis_srv.url) as sink:
        sink.client.xgroup_create("tracking", "archive", id="0", mkstream=True)
        for i in range(10):
            sink.send("event", _event(i))
        worker = _worker(redis_srv, _consumer(collector))
        while worker.run_once():
            pass
        assert trim_delivered(sink.client, "tracking") == 0  # "archive" has read nothing
        sink.client.xreadgroup("archive", "a", {"tracking": ">"}, count=4)
        sink.client.xack("tracking", "archive", *[
            e[0] for e in sink.client.xrange("tracking", count=3)])
        assert trim_delivered(sink.client, "tracking") == 3  # 4th is pending in "archive"
        assert sink.client.xlen("tracking") == 7
        worker.close()


def test_stats_report_lag_pending_and_consumers(redis_srv, collector):
    with RedisStreamSink(redis_srv.url) as sink:
        for i in range(5):
            sink.send("event", _event(i))
        worker = _worker(redis_srv, _consumer(collector), batch_size=2, name="w1")
        before = worker.stats()
        assert before["lag"] == 5
        assert worker.run_once() == 2
        after = worker.stats()
        assert after["lag"] == 3
        assert after["pending"] == 0
        assert [c["name"] for c in after["consumers"]] == ["w1"]
        assert after["worker"]["delivered"] == 2
        worker.close()


def _import(n: int) -> str:
    return json.dumps({"event": "Imported", "properties": {
        "distinct_id": "u1", "time": int(time.time() * 1000), "$insert_id": f"imp-{n}"}})


def test_import_without_credentials_stops_the_worker_and_stays_in_the_stream(
    redis_srv, collector
):
    from consumers.errors import ConfigurationError

    with RedisStreamSink(redis_srv.url) as sink:
        sink.send("event", _event(0))
        sink.send("event", _event(1))
        sink.send("import", _import(0))
        sink.send("event", _event(2))
        sink.send("import", _import(1))
        worker = _worker(redis_srv, _consumer(collector), name="no-credentials")
        raised: list[BaseException] = []
        stop = threading.Event()

        def run() -> None:
            try:
                worker.run(stop)
            except ConfigurationError as exc:
                raised.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(20)  # run() returns by itself: it must not go on without credentials
        stop.set()
        thread.join(20)
        worker.close()
        assert raised, "run() kept going past an /import entry it cannot deliver"
        # What came before the /import entry was delivered and acked; nothing was dead-lettered.
        assert [m["properties"]["n"] for m in collector.unique("track")] == [0, 1]
        stats = stream_stats(sink.client, "tracking", "mixpanel")
        assert stats["dead_lettered"] == 0
        assert stats["pending"] == 3
        assert collector.unique("import") == []

        # A worker with credentials takes the rest at once (no claim_idle_ms wait).
        consumer = _consumer(collector, service_account=("user", "secret", "123"))
        rescuer = _worker(redis_srv, consumer, name="with-credentials")
        started = time.monotonic()
        assert rescuer.drain(give_up_after=10)
        assert time.monotonic() - started < 10
        rescuer.close()
        assert sorted(m["properties"]["$insert_id"] for m in collector.unique("import")) == [
            "imp-0", "imp-1"]
        assert [m["properties"]["n"] for m in collector.unique("track")] == [0, 1, 2]
        stats = stream_stats(sink.client, "tracking", "mixpanel")
        assert (stats["pending"], stats["lag"], stats["dead_lettered"]) == (0, 0, 0)


def test_drain_gives_up_when_redis_stays_down(redis_srv, collector):
    with RedisStreamSink(redis_srv.url) as sink:
        for i in range(3):
            sink.send("event", _event(i))
    worker = _worker(redis_srv, _consumer(collector))
    assert worker.drain(give_up_after=5)
    redis_srv.stop()
    started = time.monotonic()
    assert worker.drain(give_up_after=1.5) is False
    assert 1.0 < time.monotonic() - started < 15
    assert "unavailable" in (worker.last_error or "")
    worker.close()
