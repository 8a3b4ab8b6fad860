"""The service's pace, over real HTTP: a Retry-After holds its endpoint for every later request."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from requests.structures import CaseInsensitiveDict

from consumers._pace import Pace, endpoint_key, hold_from
from consumers.buffered import BufferedConsumer
from consumers.collector import Collector
from consumers.consumer import Consumer
from consumers.retry import RateLimitHeld, RetryableRefusal, RetryPolicy
from tests.consumer_messages import event

#: one attempt per send: the hold, not a retry, is what spaces requests here
ONCE = RetryPolicy(max_attempts=1)


class Arrivals:
    """(monotonic time, path, status) of every request the collector answered."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, Any]] = []

    def __call__(self, entry: dict[str, Any]) -> None:
        self.seen.append((time.monotonic(), entry["path"], entry["status"]))

    def on(self, path: str) -> list[tuple[float, Any]]:
        return [(t, status) for t, p, status in self.seen if p.startswith(path)]


@pytest.fixture
def timed() -> Iterator[tuple[Collector, Arrivals]]:
    arrivals = Arrivals()
    with Collector(on_request=arrivals) as c:
        yield c, arrivals


def test_a_429_with_retry_after_delays_the_next_batch_of_the_same_endpoint(timed):
    collector, arrivals = timed
    collector.fail_next(1, 429, retry_after=1, path="/track")
    with Consumer(api_host=collector.url, retry=ONCE) as consumer:
        with pytest.raises(RetryableRefusal):
            consumer.send_batch("event", [event()])
        consumer.send_batch("event", [event()])  # a new batch, not a retry: it waits too
    (refused_at, first), (sent_at, second) = arrivals.on("/track")
    assert (first, second) == (429, 200)
    assert sent_at - refused_at >= 0.9  # no request inside the window the service asked for
    assert len(collector.messages("track")) == 1


def test_a_held_endpoint_does_not_stall_the_others(timed):
    collector, arrivals = timed
    collector.fail_next(1, 429, retry_after=30, path="/import")
    policy = RetryPolicy(max_attempts=1, max_elapsed=2.0)
    with Consumer(api_host=collector.url, retry=policy, api_secret="s3cret") as consumer:
        with pytest.raises(RetryableRefusal):
            consumer.send_batch("import", [event()])
        consumer.send_batch("event", [event()])  # /track flows at once
        consumer.send_batch("profile_update", [
            '{"$token":"tok","$distinct_id":"u","$set":{"a":1}}'])
        with pytest.raises(RateLimitHeld) as held:  # /import is still held: nothing is sent
            consumer.send_batch("import", [event()])
    assert held.value.messages and held.value.messages[0][0] == "import"
    assert [s for _, s in arrivals.on("/import")] == [429]
    assert [s for _, s in arrivals.on("/track")] == [200]
    assert [s for _, s in arrivals.on("/engage")] == [200]


def test_a_retry_after_given_as_an_http_date_holds_until_that_date(timed):
    collector, arrivals = timed
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: 1-2 s ahead
    collector.fail_next(1, 503, retry_after=when, path="/track")
    with Consumer(api_host=collector.url, retry=ONCE) as consumer:
        with pytest.raises(RetryableRefusal):
            consumer.send("event", event())
        consumer.send("event", event())
    (refused_at, _), (sent_at, status) = arrivals.on("/track")
    assert status == 200
    assert sent_at - refused_at >= 0.9


def test_a_huge_retry_after_is_capped_logged_once_and_counts_against_the_budget(timed, caplog):
    collector, arrivals = timed
    collector.fail_next(10, 429, retry_after=999999, path="/track")
    policy = RetryPolicy(max_attempts=10, max_retry_after=0.3, max_elapsed=0.5)
    with caplog.at_level(logging.INFO, logger="consumers.pace"):
        with Consumer(api_host=collector.url, retry=policy) as consumer:
            started = time.monotonic()
            with pytest.raises(RetryableRefusal) as caught:
                consumer.send("event", event())
            assert time.monotonic() - started < 30  # the process is not stalled for days
            assert caught.value.status == 429
            stats = consumer.transport.pace.stats()
    # 0 s: 429, held 0.3 s; 0.3 s: 429 again; a third wait would end past the 0.5 s budget
    assert [s for _, s in arrivals.on("/track")] == [429, 429]
    assert stats["held_capped"] == 2
    assert stats["rate_limited"] == 2
    capped = [r for r in caplog.records if "waiting at most" in r.getMessage()]
    assert len(capped) == 1
    assert "999999" in capped[0].getMessage()


def test_a_buffered_consumer_shares_its_transport_pace_between_flushes(timed):
    collector, arrivals = timed
    collector.fail_next(1, 429, retry_after=1, path="/track")
    with BufferedConsumer(api_host=collector.url, retry=ONCE, max_batch=2) as buffered:
        buffered.send("event", event())
        with pytest.raises(RetryableRefusal):
            buffered.send("event", event())  # the batch of 2 is refused: kept buffered
        assert buffered.pending() == 2
        buffered.flush()
    (refused_at, _), (sent_at, status) = arrivals.on("/track")
    assert status == 200 and sent_at - refused_at >= 0.9
    assert len(collector.unique("track")) == 2


def test_a_shutdown_deadline_cuts_a_hold_and_nothing_is_sent(timed):
    collector, arrivals = timed
    collector.fail_next(1, 429, retry_after=20, path="/track")
    with Consumer(api_host=collector.url, retry=RetryPolicy(max_attempts=1)) as consumer:
        with pytest.raises(RetryableRefusal):
            consumer.send("event", event())
        consumer.end_retries_at(time.monotonic() + 0.2)
        with pytest.raises(RateLimitHeld):
            consumer.send("event", event())
    assert [s for _, s in arrivals.on("/track")] == [429]


def test_rate_limit_headers_hold_the_endpoint_too():
    def h(**headers: str) -> CaseInsensitiveDict[str]:
        return CaseInsensitiveDict({k.replace("_", "-"): v for k, v in headers.items()})

    assert hold_from(200, h(X_RateLimit_Remaining="0", X_RateLimit_Reset="7")) == 7.0
    assert hold_from(429, h(RateLimit_Reset="3")) == 3.0
    assert hold_from(200, h(X_RateLimit_Remaining="5", X_RateLimit_Reset="7")) is None
    assert hold_from(500, h(Retry_After="4")) is None  # only 429 and 503 hold
    assert hold_from(503, h(Retry_After="4")) == 4.0
    assert hold_from(429, h(X_RateLimit_Reset="1700000030"), now=1_700_000_000) == 30


def test_holds_are_per_endpoint_key_and_capped():
    now = [100.0]
    pace = Pace(max_hold=5.0, clock=lambda: now[0])
    track = endpoint_key("https://API.mixpanel.com/track/?ip=0")
    assert track == "https://api.mixpanel.com:443/track"
    assert endpoint_key("http://127.0.0.1:8080/import") != endpoint_key("http://127.0.0.1:8081/import")
    assert pace.hold(track, 999.0, status=429) == 105.0
    assert pace.remaining(track) == 5.0
    assert pace.remaining("https://api.mixpanel.com:443/import") == 0.0
    assert pace.pressed(track)
    now[0] = 200.0
    assert pace.remaining(track) == 0.0
    assert not pace.pressed(track)
    assert pace.stats() == {"rate_limited": 1, "held_ms": 5000, "held_capped": 1}


def test_a_flush_sends_the_free_endpoints_before_waiting_for_a_held_one(timed):
    collector, arrivals = timed
    collector.fail_next(1, 429, retry_after=1, path="/track")
    with BufferedConsumer(api_host=collector.url, retry=ONCE) as buffered:
        buffered.send("event", event())
        with pytest.raises(RetryableRefusal):
            buffered.flush()  # /track refused: held 1 s, the event stays buffered
        buffered.send("profile_update", '{"$token":"tok","$distinct_id":"u","$set":{"a":1}}')
        buffered.flush()  # /engage first, then /track once its hold ends
    paths = [p for _, p, _ in arrivals.seen]
    assert paths == ["/track", "/engage", "/track"]
    assert len(collector.unique("track")) == 1


def test_the_services_retry_after_replaces_the_backoff_guess():
    policy = RetryPolicy(rate_limit_backoff=2.0, initial_backoff=10.0, jitter=0,
                         max_retry_after=60)
    assert policy.wait(3, status=429, retry_after=1) == 1  # not 8 s of our own
    assert policy.wait(3, status=503, retry_after=0.5) == 0.5
    assert policy.wait(1, status=429, retry_after=120) == 60  # capped
    assert policy.wait(1, status=429) == 2.0  # no word from the service: the backoff
