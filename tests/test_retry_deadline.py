"""A retry deadline ends a transport's retries on time: close() during an outage, over HTTP."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from consumers import BackgroundConsumer, BufferedConsumer, Consumer, RetryPolicy
from consumers.errors import RefusedError

PATIENT = RetryPolicy(max_attempts=1000, max_elapsed=600, initial_backoff=0.5, max_backoff=2.0,
                      jitter=0.0)


def event(n: int) -> str:
    return json.dumps({"event": "Tick", "properties": {
        "token": "tok", "distinct_id": f"u{n}", "time": 1_700_000_000_000 + n,
        "$insert_id": f"d-{n}", "n": n}})


def test_a_deadline_cuts_a_wait_in_progress_and_raises_the_last_error(collector: Any) -> None:
    collector.fail_next(10**6, 503, path="/track")
    consumer = Consumer(api_host=collector.url, retry=PATIENT)
    failure: list[BaseException] = []

    def send() -> None:
        try:
            consumer.send("event", event(1))
        except BaseException as exc:  # what the sender learns
            failure.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.8)  # inside a wait between attempts, with retries left for minutes
    consumer.end_retries_at(time.monotonic())
    sender.join(5)
    assert not sender.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], RefusedError)
    assert failure[0].status == 503
    attempts = len(collector.requests())
    time.sleep(1.0)
    assert len(collector.requests()) == attempts  # no attempt after the deadline
    consumer.end_retries_at(None)  # lifted: the policy's budget applies again
    collector.clear_faults()
    consumer.send("event", event(2))
    consumer.close()


@pytest.mark.slow
def test_close_during_an_outage_ends_retries_on_time_and_sends_nothing_twice(
    collector: Any, tmp_path: Path,
) -> None:
    collector.fail_next(10**6, 503, path="/track")
    spool = tmp_path / "spool"
    bc = BackgroundConsumer(BufferedConsumer(api_host=collector.url, retry=PATIENT),
                            spool=spool)
    for n in range(100):
        bc.send("event", event(n))
    bc.flush(timeout=1.0)  # the worker is now inside the consumer's retries
    started = time.monotonic()
    bc.close(timeout=2.0)
    assert time.monotonic() - started < 3.5
    assert bc.stats()["spooled"] == 100
    collector.clear_faults()
    time.sleep(2.5)  # a retry left running would deliver the batch now
    assert collector.messages("track") == []
    again = BackgroundConsumer(BufferedConsumer(api_host=collector.url), spool=spool)
    assert again.flush(timeout=30)
    again.close()
    assert sorted(m["properties"]["n"] for m in collector.messages("track")) == list(range(100))
