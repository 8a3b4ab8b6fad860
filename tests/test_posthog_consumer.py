"""PostHogConsumer and the default Client against the local collector, over real HTTP."""

from __future__ import annotations

import gzip
import json
import socket
from typing import Any

import pytest

from consumers.errors import PayloadTooLargeError, RefusedError, TransportError
from consumers.posthog import (
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    PostHogConsumer,
    posthog_batch_url,
)
from consumers.retry import RetryPolicy
from tracker.posthog import NO_RESPONSE, Client

KEY = "phc_test_project_key"


def quick(attempts: int = 3) -> RetryPolicy:
    """A retry policy that gives up fast: tests count attempts, never time them."""
    return RetryPolicy(max_attempts=attempts, initial_backoff=0.001, max_backoff=0.01,
                       max_elapsed=30.0, retry_statuses=frozenset({408, 429, *range(500, 600)}))


def built(n: int, **props: Any) -> list[str]:
    """``n`` messages exactly as the facade builds them."""
    raw: list[str] = []
    client = Client(KEY, sink=lambda t, m: raw.append(m))
    for i in range(n):
        client.capture(f"user-{i}", "movie played", {"i": i, **props})
    return raw


def batch_requests(collector: Any) -> list[dict[str, Any]]:
    return [r for r in collector.requests() if r["path"].startswith("/batch")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- hosts -------------------------------------------------------------------------------


@pytest.mark.parametrize("host, region, url", [
    (None, None, "https://us.i.posthog.com/batch/"),
    ("us", None, "https://us.i.posthog.com/batch/"),
    ("eu", None, "https://eu.i.posthog.com/batch/"),
    ("EU", None, "https://eu.i.posthog.com/batch/"),
    (None, "eu", "https://eu.i.posthog.com/batch/"),
    ("https://posthog.example.com", None, "https://posthog.example.com/batch/"),
    ("https://posthog.example.com/", None, "https://posthog.example.com/batch/"),
    ("http://127.0.0.1:8000/batch/", None, "http://127.0.0.1:8000/batch/"),
    ("https://example.com/ingest", None, "https://example.com/ingest/batch/"),
])
def test_host_resolution(host: Any, region: Any, url: str) -> None:
    assert posthog_batch_url(host, region=region) == url
    with PostHogConsumer(KEY, host, region=region) as consumer:
        assert consumer.url == url


@pytest.mark.parametrize("host, region, text", [
    ("posthog.example.com", None, "scheme"),
    (None, "ap", "region must be one of"),
    ("eu", "eu", "not both"),
])
def test_bad_hosts_are_refused(host: Any, region: Any, text: str) -> None:
    with pytest.raises(ValueError, match=text):
        posthog_batch_url(host, region=region)


def test_the_client_routes_to_eu_and_custom_hosts() -> None:
    for kwargs, url in [({"region": "eu"}, "https://eu.i.posthog.com/batch/"),
                        ({"host": "eu"}, "https://eu.i.posthog.com/batch/"),
                        ({"api_host": "https://ph.example.com"}, "https://ph.example.com/batch/")]:
        client = Client(KEY, **kwargs)
        try:
            assert "url=" + repr(url) in repr(client)
        finally:
            client.shutdown()


# -- delivery ----------------------------------------------------------------------------


def test_messages_arrive_exactly_as_built(collector: Any) -> None:
    raw = built(3, tags=["a", "b"])
    with PostHogConsumer(KEY, collector.url) as consumer:
        for m in raw:
            consumer.send("posthog", m)
        assert consumer.pending() == 3
        consumer.flush()
        assert consumer.pending() == 0
    assert collector.messages("posthog") == [json.loads(m) for m in raw]
    assert len(batch_requests(collector)) == 1


def test_every_call_of_the_client_arrives_exactly(collector: Any) -> None:
    raw: list[str] = []
    recorder = Client(KEY, sink=lambda t, m: raw.append(m))
    recorder.capture("u1", "movie played", {"movie_id": "123"}, groups={"company": "acme"})
    recorder.identify("u1", {"email": "john@doe.com"})
    recorder.alias("u1", "session-9")
    recorder.page("u1", "https://example.com")
    with PostHogConsumer(KEY, collector.url) as consumer:
        for m in raw:
            consumer.send("posthog", m)
    assert collector.messages("posthog") == [json.loads(m) for m in raw]


def test_the_batch_body_is_the_api_key_and_the_joined_messages(collector: Any) -> None:
    raw = built(2)
    consumer = PostHogConsumer(KEY, collector.url, gzip=False)
    for m in raw:
        consumer.send("posthog", m)
    assert consumer._body(consumer._buffer) == (
        '{"api_key":"' + KEY + '","batch":[' + raw[0] + "," + raw[1] + "]}").encode()
    consumer.close()
    assert collector.unique("posthog") == [json.loads(m) for m in raw]


def test_a_full_batch_is_sent_by_send(collector: Any) -> None:
    consumer = PostHogConsumer(KEY, collector.url, max_batch=10)
    for m in built(25):
        consumer.send("posthog", m)
    assert [r["n_records"] for r in batch_requests(collector)] == [10, 10]
    assert consumer.pending() == 5
    consumer.close()
    assert [r["n_records"] for r in batch_requests(collector)] == [10, 10, 5]


def test_batches_hold_at_most_100_messages(collector: Any) -> None:
    raw = built(250)
    consumer = PostHogConsumer(KEY, collector.url)
    for m in raw:
        consumer.send("posthog", m)
    consumer.close()
    assert [r["n_records"] for r in batch_requests(collector)] == [100, 100, 50]
    assert [m["uuid"] for m in collector.messages("posthog")] == [
        json.loads(m)["uuid"] for m in raw]


def test_batches_hold_at_most_5_mib(collector: Any) -> None:
    raw = built(60, blob="x" * 200_000)  # about 200 KB each
    consumer = PostHogConsumer(KEY, collector.url, gzip=False)
    for m in raw:
        consumer.send("posthog", m)
    consumer.close()
    sent = batch_requests(collector)
    assert MAX_BATCH_BYTES == 5 * 1024 * 1024
    assert len(sent) >= 3
    assert all(r["bytes"] <= MAX_BATCH_BYTES for r in sent)
    assert sum(r["n_records"] for r in sent) == 60
    full = sent[0]["n_records"]
    assert sent[0]["bytes"] + len(raw[0]) + 1 > MAX_BATCH_BYTES  # as many as fit
    assert all(r["n_records"] == full for r in sent[:-1])
    assert len(collector.unique("posthog")) == 60


def test_bodies_are_gzipped_unless_disabled(collector: Any) -> None:
    for use_gzip in (True, False):
        with PostHogConsumer(KEY, collector.url, gzip=use_gzip) as consumer:
            consumer.send("posthog", built(1)[0])
    first, second = batch_requests(collector)
    headers = [{k.lower(): v for k, v in r["headers"].items()} for r in (first, second)]
    assert headers[0].get("content-encoding") == "gzip"
    assert "content-encoding" not in headers[1]
    assert len(collector.messages("posthog")) == 2


def test_gzip_body_is_smaller_and_decodes_to_the_plain_one() -> None:
    raw = built(50)
    zipped = PostHogConsumer(KEY, "http://127.0.0.1:9")
    plain = PostHogConsumer(KEY, "http://127.0.0.1:9", gzip=False)
    for m in raw:
        zipped.send("posthog", m)
        plain.send("posthog", m)
    body = zipped._body(zipped._buffer)
    assert gzip.decompress(body) == plain._body(plain._buffer)
    assert len(body) < len(plain._body(plain._buffer)) / 3
    zipped.take_pending()
    plain.take_pending()


# -- refusals and limits -----------------------------------------------------------------


def test_a_message_over_900_kib_is_refused_and_nothing_else_is_lost(collector: Any) -> None:
    small = built(2)
    # built by hand: the facade itself refuses to build it
    big = ('{"type":"capture","event":"E","distinct_id":"u","properties":{"blob":"'
           + "x" * MAX_MESSAGE_BYTES + '"}}')
    consumer = PostHogConsumer(KEY, collector.url)
    consumer.send("posthog", small[0])
    with pytest.raises(PayloadTooLargeError) as info:
        consumer.send("posthog", big)
    assert str(len(big)) in str(info.value)
    assert info.value.messages == [("posthog", big)]
    assert info.value.pending == 1
    consumer.send("posthog", small[1])
    consumer.close()
    assert collector.messages("posthog") == [json.loads(m) for m in small]


def test_other_message_types_are_refused() -> None:
    consumer = PostHogConsumer(KEY, "http://127.0.0.1:9")
    with pytest.raises(ValueError, match="'posthog'"):
        consumer.send("event", "{}")
    assert consumer.pending() == 0


@pytest.mark.parametrize("status", [503, 500, 429, 408])
def test_retryable_statuses_are_retried(collector: Any, status: int) -> None:
    collector.fail_next(2, status, path="/batch")
    with PostHogConsumer(KEY, collector.url, retry=quick(3)) as consumer:
        consumer.send("posthog", built(1)[0])
        consumer.flush()
    assert [r["status"] for r in batch_requests(collector)] == [status, status, 200]
    assert len(collector.unique("posthog")) == 1


def test_retry_after_is_honoured_without_failing(collector: Any) -> None:
    collector.fail_next(1, 429, retry_after=0, path="/batch")
    with PostHogConsumer(KEY, collector.url, retry=quick(3)) as consumer:
        consumer.send("posthog", built(1)[0])
    assert [r["status"] for r in batch_requests(collector)] == [429, 200]


@pytest.mark.parametrize("status", [400, 401, 403, 413])
def test_other_client_errors_are_not_retried_and_the_batch_is_dropped(
        collector: Any, status: int) -> None:
    raw = built(3)
    collector.fail_next(1, status, body='{"error": "nope"}', path="/batch")
    consumer = PostHogConsumer(KEY, collector.url, retry=quick(5))
    for m in raw:
        consumer.send("posthog", m)
    with pytest.raises(RefusedError) as info:
        consumer.flush()
    assert info.value.status == status
    assert info.value.messages == [("posthog", m) for m in raw]
    assert info.value.pending == 0
    assert consumer.pending() == 0
    consumer.close()
    assert len(batch_requests(collector)) == 1


def test_after_the_retry_budget_the_batch_stays_buffered(collector: Any) -> None:
    raw = built(3)
    collector.fail_next(3, 503, path="/batch")
    consumer = PostHogConsumer(KEY, collector.url, retry=quick(3))
    for m in raw:
        consumer.send("posthog", m)
    with pytest.raises(RefusedError) as info:
        consumer.flush()
    assert info.value.status == 503
    assert info.value.pending == 3 and consumer.pending() == 3
    consumer.flush()
    consumer.close()
    assert len(batch_requests(collector)) == 4
    assert collector.messages("posthog") == [json.loads(m) for m in raw]


def test_a_failure_in_a_later_batch_keeps_exactly_the_unsent(collector: Any) -> None:
    raw = built(25)
    consumer = PostHogConsumer(KEY, collector.url, max_batch=10, retry=quick(2))
    for m in raw[:10]:
        consumer.send("posthog", m)  # sends the first batch
    collector.fail_next(2, 503, path="/batch")
    with pytest.raises(RefusedError):
        for m in raw[10:20]:
            consumer.send("posthog", m)
    assert consumer.pending() == 10  # the failed batch is kept, in order
    assert [m["uuid"] for m in collector.messages("posthog")] == [
        json.loads(m)["uuid"] for m in raw[:10]]
    for m in raw[20:]:
        consumer.send("posthog", m)  # the service is back: the kept batch goes out first
    assert consumer.pending() == 5
    assert [m for _, m in consumer.take_pending()] == raw[20:]
    assert consumer.pending() == 0
    assert [m["uuid"] for m in collector.messages("posthog")] == [
        json.loads(m)["uuid"] for m in raw[:20]]
    consumer.close()


def test_connection_failures_raise_transport_errors_and_keep_the_batch() -> None:
    consumer = PostHogConsumer(KEY, f"http://127.0.0.1:{free_port()}", retry=quick(2))
    consumer.send("posthog", built(1)[0])
    with pytest.raises(TransportError) as info:
        consumer.flush()
    assert info.value.pending == 1 and len(info.value.messages) == 1
    assert KEY not in str(info.value)
    consumer.take_pending()
    consumer.close()


# -- the default Client: background queue, on_error, shutdown -----------------------------


def client_for(collector: Any, seen: list[tuple[int, str]], **consumer: Any) -> Client:
    consumer.setdefault("retry", quick(2))
    return Client(KEY, collector.url, on_error=lambda s, m: seen.append((s, m)),
                  consumer_options=consumer,
                  background_options={"overflow": "block", "probe_interval": 0.05,
                                      "max_probe_interval": 0.2})


def test_shutdown_delivers_everything_queued(collector: Any) -> None:
    seen: list[tuple[int, str]] = []
    client = client_for(collector, seen)
    for i in range(1000):
        assert client.capture(f"user-{i % 7}", "movie played", {"i": i}) is True
    client.shutdown()
    received = collector.unique("posthog")
    assert len(received) == 1000
    assert sorted(m["properties"]["i"] for m in received) == list(range(1000))
    assert seen == []
    assert all(r["n_records"] <= 100 for r in batch_requests(collector))


def test_on_error_gets_the_status_of_a_refused_batch(collector: Any) -> None:
    seen: list[tuple[int, str]] = []
    client = client_for(collector, seen)
    collector.fail_next(1, 400, body='{"error": "invalid"}', path="/batch")
    client.capture("u", "E")
    client.capture("u", "E")
    assert client.flush(timeout=60)
    client.capture("u", "after")
    client.shutdown()
    assert [s for s, _ in seen] == [400]
    assert "2 PostHog message(s)" in seen[0][1]
    assert [m["event"] for m in collector.unique("posthog")] == ["after"]


def test_on_error_hears_of_an_outage_and_nothing_is_lost(collector: Any) -> None:
    seen: list[tuple[int, str]] = []
    client = client_for(collector, seen)
    collector.fail_next(2, 503, path="/batch")  # exactly the retry budget of one flush
    client.capture("u", "during the outage")
    assert client.flush(timeout=60)
    client.shutdown()
    assert [s for s, _ in seen] == [503]
    assert "retry budget" in seen[0][1]
    assert [m["event"] for m in collector.unique("posthog")] == ["during the outage"]


def test_on_error_status_is_minus_one_without_an_http_answer() -> None:
    seen: list[tuple[int, str]] = []
    client = Client(KEY, f"http://127.0.0.1:{free_port()}",
                    on_error=lambda s, m: seen.append((s, m)),
                    consumer_options={"retry": quick(1)},
                    background_options={"overflow": "drop", "spool": None,
                                        "shutdown_timeout": 5})
    client.capture("u", "E")
    client.flush(timeout=0.5)
    client.shutdown(timeout=0.5)
    assert seen and seen[0][0] == NO_RESPONSE == -1
    assert KEY not in seen[0][1]


# -- log now, replay later ---------------------------------------------------------------


def test_a_file_log_of_posthog_messages_replays_into_the_consumer(
        collector: Any, tmp_path: Any) -> None:
    from consumers.file import FileConsumer
    from consumers.replaying import replay

    log = tmp_path / "spool"
    with FileConsumer(str(log) + "/") as file_sink:
        client = Client(KEY, sink=file_sink)
        for i in range(150):
            client.capture(f"user-{i}", "movie played", {"i": i})
        client.identify("user-1", {"email": "john@doe.com"})
        client.alias("user-1", "session-1")
    with PostHogConsumer(KEY, collector.url) as consumer:
        result = replay(log, consumer, batch_size=100)
    assert result.ok and result.sent == 152
    received = collector.unique("posthog")
    assert len(received) == 152
    assert [m["properties"].get("i") for m in received[:150]] == list(range(150))
    assert [m["event"] for m in received[150:]] == ["$identify", "$create_alias"]
    assert all(r["n_records"] <= 100 for r in batch_requests(collector))


def test_replaying_twice_sends_the_same_uuids(collector: Any, tmp_path: Any) -> None:
    from consumers.file import FileConsumer
    from consumers.replaying import replay

    log = tmp_path / "events.log"
    with FileConsumer(str(log)) as file_sink:
        Client(KEY, sink=file_sink).capture("u", "E")
    for _ in range(2):
        with PostHogConsumer(KEY, collector.url) as consumer:
            assert replay(log, consumer, checkpoint=False).sent == 1
    first, second = collector.messages("posthog")
    assert first == second
    assert len(collector.unique("posthog")) == 1


@pytest.mark.parametrize("kwargs, host", [
    ({"region": "eu"}, "eu.i.posthog.com"),
    ({"host": "eu"}, "eu.i.posthog.com"),
    ({}, "us.i.posthog.com"),
])
def test_cloud_hosts_are_the_ones_requested(collector: Any, kwargs: Any, host: str) -> None:
    """Requests for PostHog's cloud hosts, served by the local collector, name the host chosen."""
    from consumers.local import use_local_collector

    with use_local_collector(collector.url), PostHogConsumer(KEY, **kwargs) as consumer:
        consumer.send("posthog", built(1)[0])
    (request,) = batch_requests(collector)
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["x-forwarded-host"] == host
    assert len(collector.messages("posthog")) == 1
