"""Consumers' counters exported through OpenTelemetry, read back with the SDK's in-memory reader."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk.metrics", reason="the OpenTelemetry SDK is not installed "
                    "(it is in the test extra: pip install '.[test]')")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from consumers import BackgroundConsumer, BufferedConsumer, Consumer
from consumers.errors import DeliveryError
from consumers.metrics import ConsumerMetrics, Counted
from consumers.retry import RetryPolicy

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
TINY_RETRY = RetryPolicy(max_attempts=2, max_elapsed=0.5, initial_backoff=0.01, max_backoff=0.02)


def documented() -> dict[str, tuple[str, list[str]]]:
    """{instrument: (kind, what it is read from)} from the table in docs/metrics.md."""
    rows = re.findall(r"^\| `(tracking\.consumer\.[\w.]+)` \| (counter|gauge) \| [^|]+ \| "
                      r"([^|]+) \|", DOCS.read_text(), re.M)
    assert len(rows) > 20, "no instrument table in docs/metrics.md"
    return {name: (kind, [w.strip() for w in who.split(",")]) for name, kind, who in rows}


def check(values, label: str, source: str, expected: dict[str, Any]) -> int:
    """Assert every documented instrument read from ``source`` has its expected value."""
    checked = 0
    for name, (kind, sources) in documented().items():
        if source in sources:
            key = name[len("tracking.consumer."):]
            assert values.get((name, label)) == (kind, expected[key]), (name, label)
            checked += 1
    return checked


def event(i: int, **props: Any) -> str:
    properties = {"token": "tok", "distinct_id": f"u{i % 3}", "time": 1_700_000_000_000 + i,
                  "$insert_id": f"m{i}", **props}
    return json.dumps({"event": "Tested", "properties": properties})


def meter_and_reader() -> tuple[ConsumerMetrics, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    return ConsumerMetrics(provider.get_meter("test")), reader


def read(reader: InMemoryMetricReader) -> dict[tuple[str, str], tuple[str, float]]:
    """{(instrument, consumer): (kind, value)} of one collection."""
    out = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if not metric.name.startswith("tracking.consumer."):
                    continue  # the SDK's own metrics, in some versions
                kind = "counter" if type(metric.data).__name__ == "Sum" else "gauge"
                for point in metric.data.data_points:
                    out[(metric.name, point.attributes["consumer"])] = (kind, point.value)
    return out


def wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_scripted_run_reads_every_documented_instrument(collector, tmp_path: Path) -> None:
    metrics, reader = meter_and_reader()
    lost: list[DeliveryError] = []
    bc = BackgroundConsumer(
        BufferedConsumer(api_host=collector.url, retry=TINY_RETRY, timeout=(2.0, 5.0)),
        spool=tmp_path / "spool", probe_interval=0.05, max_probe_interval=0.2,
        on_error=lambda error, messages: lost.append(error))
    metrics.watch(bc, name="events")
    dropping = BackgroundConsumer(
        BufferedConsumer(api_host=collector.url, retry=TINY_RETRY, max_batch=5),
        max_queue=5, overflow="drop", on_error=lambda error, messages: lost.append(error))
    metrics.watch(dropping, name="dropping")
    counted = Counted(Consumer(api_host=collector.url, retry=TINY_RETRY))
    metrics.watch(counted, name="direct")

    # deliveries, and one message the service refuses (no token)
    for i in range(20):
        bc.send("event", event(i))
    assert bc.flush(30)
    bc.send("event", json.dumps({"event": "No token", "properties": {"distinct_id": "u"}}))
    assert bc.flush(30)
    # an outage: what the worker cannot deliver goes to the spool
    collector.fail_next(10**9, 503)
    for i in range(20, 50):
        bc.send("event", event(i))
    wait_for(lambda: bc.stats()["spooled"] == 30, "30 messages in the spool")
    during = read(reader)
    time.sleep(0.2)
    stalled = read(reader)[("tracking.consumer.stalled", "events")][1]
    # a direct Consumer during the outage: that message is lost, and counted
    with pytest.raises(DeliveryError):
        counted.send("event", event(99))
    collector.clear_faults()
    assert bc.flush(30)
    counted.send("event", event(100))
    # drops: a queue of 5 behind a worker held up by a slow answer, then sends after close
    collector.delay_next(1, 1.0)
    for i in range(200, 260):
        dropping.send("event", event(i))
    dropping.close()
    bc.close()
    for i in range(300, 303):
        bc.send("event", event(i))
    wait_for(lambda: bc.stats()["dropped"] == 3, "3 drops counted")

    after = read(reader)
    stats, dropped_stats = bc.stats(), dropping.stats()
    assert (stats["delivered"], stats["failed"], stats["spilled"], stats["replayed"],
            stats["dropped"]) == (50, 1, 30, 30, 3)
    assert dropped_stats["dropped"] > 0
    assert dropped_stats["dropped"] + dropped_stats["delivered"] == 60
    assert sum(getattr(e, "dropped", 0) for e in lost) == 3 + dropped_stats["dropped"]
    assert len(collector.unique("track")) == 50 + dropped_stats["delivered"] + 1

    # the refusal is the only loss of the service's making; the outage made retries
    assert (stats["refused"], stats["held_back"], stats["spool_bytes"]) == (1, 0, 0)
    assert stats["retried"] > 0 and stats["delivery_lag_ms"] == 0
    when, text = bc.last_error()
    assert stats["last_error_time"] == int(when) > 0 and "503" in text
    assert check(after, "events", "BackgroundConsumer", {**stats, "stalled": 0}) == 20
    assert check(after, "dropping", "BackgroundConsumer", {**dropped_stats, "stalled": 0}) == 20
    value = {name[len("tracking.consumer."):]: v for (name, label), (_, v) in during.items()
             if label == "events"}
    assert check(during, "events", "BackgroundConsumer", {
        "enqueued": 51, "delivered": 20, "failed": 1, "refused": 1, "dropped": 0,
        "spilled": 30, "replayed": 0, "queued": 0, "queued_bytes": 0, "in_flight": 0,
        "held_back": 0, "spooled": 30, "rate_limited": 0, "held_ms": 0, "held_capped": 0,
        # read during the outage: the spool's files, retries made, messages waiting
        "spool_bytes": value["spool_bytes"], "retried": value["retried"],
        "delivery_lag_ms": value["delivery_lag_ms"], "last_error_time": value["last_error_time"],
        "stalled": value["stalled"]}) == 20
    assert value["spool_bytes"] > 30 * 100 and value["retried"] >= 1
    assert value["delivery_lag_ms"] > 0 and value["last_error_time"] > 0
    assert stalled > 0  # read during the outage: nothing delivered while 30 waited
    direct = counted.stats()
    assert (direct["sent"], direct["failed"], direct["delivered"], direct["errors"]) == (2, 1, 1, 1)
    assert direct["last_error_time"] > 0
    assert check(after, "direct", "Counted(Consumer)", direct) == 5


def test_a_buffered_consumer_counts_what_it_keeps_and_what_is_refused(collector) -> None:
    metrics, reader = meter_and_reader()
    counted = Counted(BufferedConsumer(api_host=collector.url, retry=TINY_RETRY))
    metrics.watch(counted, name="buffered")
    for i in range(5):
        counted.send("event", event(i))
    assert counted.stats()["pending"] == 5
    collector.fail_next(10, 503)
    with pytest.raises(DeliveryError):
        counted.flush()  # kept buffered: nothing lost yet
    values = read(reader)
    assert values[("tracking.consumer.pending", "buffered")] == ("gauge", 5)
    assert values[("tracking.consumer.failed", "buffered")] == ("counter", 0)
    collector.clear_faults()
    counted.flush()
    counted.send("event", json.dumps({"event": "No token", "properties": {"distinct_id": "u"}}))
    with pytest.raises(DeliveryError):
        counted.flush()  # refused: {"status": 0}, and dropped
    values = read(reader)
    stats = counted.stats()
    assert (stats["sent"], stats["delivered"], stats["failed"], stats["pending"],
            stats["errors"]) == (6, 5, 1, 0, 2)
    assert check(values, "buffered", "Counted(BufferedConsumer)", {**stats, "stalled": 0}) == 7


def test_buffering_consumers_report_what_they_hold(collector) -> None:
    from consumers import PostHogConsumer

    metrics, reader = meter_and_reader()
    buffered = BufferedConsumer(api_host=collector.url)
    posthog = PostHogConsumer("phc_key", host=collector.url)
    metrics.watch(buffered)
    metrics.watch(posthog)
    for i in range(3):
        buffered.send("event", event(i))
        posthog.send("posthog", json.dumps({"event": "Tested", "distinct_id": "u", "n": i}))
    values = read(reader)
    assert check(values, "BufferedConsumer", "BufferedConsumer", {"pending": 3}) == 1
    assert values[("tracking.consumer.pending", "PostHogConsumer")] == ("gauge", 3)
    buffered.flush()
    posthog.flush()
    values = read(reader)
    assert check(values, "BufferedConsumer", "BufferedConsumer", {"pending": 0}) == 1
    assert values[("tracking.consumer.pending", "PostHogConsumer")] == ("gauge", 0)
    assert len(collector.messages("posthog")) == 3


@pytest.mark.redis
def test_the_redis_worker_reports_its_stream_and_its_counters(redis_srv, collector) -> None:
    pytest.importorskip("redis", reason='the redis extra is not installed: pip install ".[redis]"')
    from consumers.redis_stream import RedisStreamSink
    from consumers.redis_worker import StreamWorker

    metrics, reader = meter_and_reader()
    with RedisStreamSink(redis_srv.url) as sink:
        for i in range(5):
            sink.send("event", event(i))
        worker = StreamWorker(redis_srv.url, BufferedConsumer(api_host=collector.url,
                                                              retry=TINY_RETRY),
                              batch_size=2, name="w1", block_ms=100)
        metrics.watch(worker, name="w1")
        assert worker.run_once() == 2
        values = read(reader)
        stats = worker.stats()
        expected = {**{k: v for k, v in stats.items() if k != "worker"},
                    **{f"worker.{k}": v for k, v in stats["worker"].items()}, "stalled": 0}
        assert (expected["lag"], expected["length"], expected["worker.delivered"],
                expected["worker.batches"]) == (3, 5, 2, 1)
        assert check(values, "w1", "StreamWorker", expected) == 11
        worker.close()


def test_every_documented_instrument_is_read_by_a_test() -> None:
    tested = {"BackgroundConsumer", "Counted(Consumer)", "Counted(BufferedConsumer)",
              "BufferedConsumer", "StreamWorker"}
    for name, (_, sources) in documented().items():
        assert set(sources) <= tested, (name, sources)


def test_a_number_stats_gains_later_is_exported_too() -> None:
    metrics, reader = meter_and_reader()

    class Future:
        def stats(self) -> dict[str, Any]:
            return {"delivered": 4, "holds": {"rate_limited": 2}, "last_error": "boom",
                    "closed": True}

    metrics.watch(Future())
    values = read(reader)
    assert values == {("tracking.consumer.delivered", "Future"): ("counter", 4),
                      ("tracking.consumer.holds.rate_limited", "Future"): ("gauge", 2)}


def test_watching_needs_counters_and_distinct_names(collector) -> None:
    metrics, _ = meter_and_reader()
    with pytest.raises(TypeError, match=r"Consumer counts nothing.*Counted\(it\)"):
        metrics.watch(Consumer(api_host=collector.url))
    metrics.watch(Counted(print), name="a")
    with pytest.raises(ValueError, match="named 'a' is already watched"):
        metrics.watch(Counted(print), name="a")
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        metrics.watch(Counted(print), name="")
    with pytest.raises(TypeError, match="sink must be callable"):
        Counted(42)
    metrics.unwatch("a")
    metrics.watch(Counted(print), name="a")


def test_without_the_api_the_import_error_names_the_extra(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['opentelemetry'] = None\n"
            "try:\n    import consumers.metrics\nexcept ImportError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(DOCS.parents[1])})
    assert "pip install 'tracking-toolkit[otel]'" in done.stdout
