"""The background consumer's health counters over real HTTP: retries, refusals, the last
error, spool bytes and delivery lag."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from consumers.background import BackgroundConsumer
from consumers.buffered import BufferedConsumer
from tests.consumer_messages import event, quick_retry
from tests.waiting import wait_for

SECRET = "api-secret-do-not-show"


def on_disk(folder: Path) -> int:
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(folder) for name in names)


def no_token() -> str:
    return json.dumps({"event": "No token", "properties": {"distinct_id": "u"}})


def test_retries_are_counted_and_a_retried_success_is_no_error(collector):
    collector.fail_next(2, 503)
    consumer = BackgroundConsumer(BufferedConsumer(api_host=collector.url,
                                                   retry=quick_retry(3)), spool=None)
    consumer.send("event", event())
    assert consumer.flush(20)
    stats = consumer.stats()
    consumer.close()
    assert (stats["retried"], stats["delivered"], stats["failed"]) == (2, 1, 0)
    assert [r["status"] for r in collector.requests()] == [503, 503, 200]
    assert consumer.last_error() is None and stats["last_error_time"] == 0


def test_refused_is_the_services_part_of_failed(collector):
    lost: list[Any] = []
    consumer = BackgroundConsumer(
        BufferedConsumer(api_host=collector.url, retry=quick_retry(1)),
        overflow="drop", on_error=lambda error, messages: lost.extend(messages))  # no spool
    consumer.send("event", event())
    assert consumer.flush(20)
    consumer.send("event", no_token())  # alone in its request: the service refuses it
    assert consumer.flush(20)
    when, text = consumer.last_error()
    assert "RefusedError" in text and "token" in text and when > time.time() - 60
    # an outage at close, with no spool: lost for good, but not refused
    collector.fail_next(10**9, 503)
    consumer.send("event", event())
    consumer.close(timeout=1)
    stats = consumer.stats()
    assert (stats["failed"], stats["refused"], stats["delivered"]) == (2, 1, 1)
    assert len(lost) == 2
    when, text = consumer.last_error()
    assert stats["last_error_time"] == int(when)
    assert "undelivered when the background consumer closed" in text


def test_the_last_error_carries_no_credentials():
    consumer = BackgroundConsumer(BufferedConsumer(
        api_host=f"http://ann:{SECRET}@127.0.0.1:9", retry=quick_retry(1), api_secret=SECRET),
        spool=None, overflow="drop", probe_interval=0.05)
    consumer.send("event", event())
    assert not consumer.flush(0.5)  # nothing listens there
    _, text = consumer.last_error()
    consumer.close(timeout=0.5)
    assert "TransportError" in text and "127.0.0.1:9" in text
    assert SECRET not in text and "ann" not in text
    assert consumer.stats()["failed"] == 1 and consumer.stats()["refused"] == 0


def test_spool_bytes_and_delivery_lag_during_an_outage(collector, tmp_path):
    consumer = BackgroundConsumer(
        BufferedConsumer(api_host=collector.url, retry=quick_retry(1)),
        # no probe while the spool is measured: a probe's replay writes its checkpoint there
        spool=tmp_path / "spool", probe_interval=3, max_probe_interval=3)
    idle = consumer.stats()
    assert (idle["delivery_lag_ms"], idle["spool_bytes"]) == (0, 0)
    collector.fail_next(10**9, 503)
    sent_at = time.monotonic()
    for n in range(30):
        consumer.send("event", event(n=n))
    assert wait_for(lambda: consumer.stats()["spooled"] == 30)
    time.sleep(0.3)
    at_least_ms = int((time.monotonic() - sent_at) * 1000)
    stats = consumer.stats()
    at_most_ms = (time.monotonic() - sent_at) * 1000
    # the reported age is the longer bound: never less than the true age, read
    # on each side of the call (a scheduling pause in between is not an error)
    assert at_least_ms <= stats["delivery_lag_ms"] <= at_most_ms + 2000
    assert stats["spool_bytes"] == on_disk(consumer.spool_path) > 30 * 100
    later = consumer.stats()["delivery_lag_ms"]
    assert later >= stats["delivery_lag_ms"]
    collector.clear_faults()
    assert consumer.flush(20)
    after = consumer.stats()
    consumer.close()
    assert (after["delivery_lag_ms"], after["spool_bytes"], after["delivered"]) == (0, 0, 30)


def test_delivery_lag_counts_a_message_queued_behind_a_slow_answer(collector):
    consumer = BackgroundConsumer(BufferedConsumer(api_host=collector.url,
                                                   retry=quick_retry(1)), spool=None)
    consumer.send("event", event())
    assert consumer.flush(20)
    collector.delay_next(1, 1.0)  # the worker sits in this request for a second
    consumer.send("event", event())
    assert wait_for(lambda: consumer.stats()["in_flight"] == 1)
    queued_at = time.monotonic()
    consumer.send("event", event())  # waits in the queue behind it
    time.sleep(0.4)
    at_least_ms = int((time.monotonic() - queued_at) * 1000)  # read before: a pause after
    lag = consumer.stats()["delivery_lag_ms"]                 # the call is no error
    assert lag >= at_least_ms >= 400
    assert consumer.flush(20)
    assert consumer.stats()["delivery_lag_ms"] == 0
    consumer.close()
