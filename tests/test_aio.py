"""consumers.aio over real HTTP against the local collector, on real event loops."""

from __future__ import annotations

import asyncio
import json
import threading
import warnings
from typing import Any

import pytest

from consumers import use_local_collector
from consumers._loop_check import BlockingCallWarning
from consumers.aio import AsyncBackgroundConsumer, AsyncConsumer, AsyncPostHogConsumer
from consumers.consumer import Consumer
from consumers.errors import RecordsRejectedError, RefusedError
from tests.consumer_messages import ENDPOINT, PATHS, event, now_ms, profile_update, quick_retry
from tracker import Tracker
from tracker.posthog import Client

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def group_update() -> str:
    return json.dumps({"$token": "project-token-1", "$group_key": "company",
                       "$group_id": "acme", "$set": {"n": now_ms()}})


MESSAGES = {"event": event, "profile_update": profile_update, "group_update": group_update,
            "import": event}


def background(collector: Any, *, retry: Any = None, **options: Any) -> AsyncBackgroundConsumer:
    inner = AsyncConsumer(api_host=collector.url, api_secret="secret",
                          retry=retry or quick_retry(3), max_batch=options.pop("max_batch", None))
    return AsyncBackgroundConsumer(inner, probe_interval=0.01, max_probe_interval=0.05,
                                   **options)


@pytest.mark.parametrize("region", ["us", "eu", "in"])
async def test_every_type_reaches_its_endpoint_in_every_region(collector: Any,
                                                              region: str) -> None:
    with use_local_collector(collector.url):
        async with AsyncBackgroundConsumer(region=region, api_secret="secret",
                                           retry=quick_retry(3)) as consumer:
            sent = {t: [make() for _ in range(3)] for t, make in MESSAGES.items()}
            for message_type, messages in sent.items():
                for message in messages:
                    consumer.send(message_type, message)
            assert await consumer.flush()
    for message_type, messages in sent.items():
        assert collector.messages(ENDPOINT[message_type]) == [json.loads(m) for m in messages]
    hosts = {r["headers"].get("X-Forwarded-Host") for r in collector.requests()}
    assert all(region == "us" or f"-{region}." in (h or "") for h in hosts), hosts
    assert {r["path"] for r in collector.requests()} == set(PATHS.values())


async def test_retries_are_counted_at_the_collector(collector: Any) -> None:
    collector.fail_next(2, 503, path="/track")
    async with background(collector, retry=quick_retry(4)) as consumer:
        consumer.send("event", event())
        assert await consumer.flush()
    assert [r["status"] for r in collector.requests()] == [503, 503, 200]
    assert consumer.stats()["delivered"] == 1


async def test_a_retry_after_holds_the_endpoint_for_the_next_request_too(collector: Any) -> None:
    collector.fail_next(1, 429, retry_after=0.2, path="/track")
    async with background(collector, retry=quick_retry(3)) as consumer:
        consumer.send("event", event())
        assert await consumer.flush()
        consumer.send("event", event())
        assert await consumer.flush()
        assert consumer.inner.transport.pace.holds == 1
    assert [r["status"] for r in collector.requests()] == [429, 200, 200]
    assert len(collector.unique("track")) == 2


async def test_a_413_is_split_until_the_bad_message_is_alone(collector: Any) -> None:
    errors: list[Any] = []
    collector.fail_next(1, 413, path="/track")
    async with background(collector, on_error=lambda e, m: errors.append((e, m))) as consumer:
        messages = [event() for _ in range(4)]
        for message in messages:
            consumer.send("event", message)
        assert await consumer.flush()
    assert [r["n_records"] if r["status"] == 200 else None for r in collector.requests()] \
        == [None, 2, 2]
    assert collector.messages("track") == [json.loads(m) for m in messages]
    assert errors == []


async def test_strict_import_reports_the_refused_and_keeps_the_accepted(collector: Any) -> None:
    errors: list[Any] = []
    async with background(collector, on_error=lambda e, m: errors.append((e, m))) as consumer:
        good = [event() for _ in range(3)]
        future = event(time=now_ms() + 5 * 3_600_000)
        for message in [good[0], future, *good[1:]]:
            consumer.send("import", message)
        assert await consumer.flush()
    (error, lost), = errors
    assert isinstance(error, RecordsRejectedError) and error.num_imported == 3
    assert lost == [("import", future)]
    assert collector.messages("import") == [json.loads(m) for m in good]
    assert consumer.stats()["refused"] == 1 and consumer.stats()["delivered"] == 3


async def test_status_zero_is_reported_and_not_sent_again(collector: Any) -> None:
    errors: list[Any] = []
    collector.fail_next(1, 200, body={"status": 0, "error": "nope"}, path="/track")
    async with background(collector, on_error=lambda e, m: errors.append((e, m))) as consumer:
        message = event()
        consumer.send("event", message)
        assert await consumer.flush()
    (error, lost), = errors
    assert isinstance(error, RefusedError) and lost == [("event", message)]
    assert len(collector.requests()) == 1


async def test_an_outage_longer_than_the_budget_then_recovery_delivers_each_once(
        collector: Any) -> None:
    collector.fail_next(12, 503, path="/track")
    async with background(collector, retry=quick_retry(2)) as consumer:
        messages = [event() for _ in range(50)]
        for message in messages:
            consumer.send("event", message)
        assert not await consumer.flush()  # the destination is down: kept, not lost
        assert consumer.stats()["outages"] == 1
        for _ in range(200):
            if await consumer.flush(0.5):
                break
        assert consumer.stats()["delivered"] == 50
    assert sorted(m["properties"]["$insert_id"] for m in collector.unique("track")) == \
        sorted(json.loads(m)["properties"]["$insert_id"] for m in messages)
    assert consumer.stats()["dropped"] == consumer.stats()["refused"] == 0


async def test_aclose_during_an_outage_loses_nothing(collector: Any, tmp_path: Any) -> None:
    collector.fail_next(10_000, 503, path="/track")
    consumer = background(collector, retry=quick_retry(2), spool=tmp_path)
    consumer.start()
    messages = [event() for _ in range(30)]
    for message in messages:
        consumer.send("event", message)
    await consumer.flush(0.2)
    await consumer.aclose(timeout=0.5)
    assert consumer.stats()["spilled"] == 30 and collector.unique("track") == []
    collector.clear_faults()
    async with background(collector, spool=tmp_path) as later:  # the next run replays it
        later.send("event", event())
        for _ in range(200):
            if await later.flush(0.5):
                break
    assert len(collector.unique("track")) == 31


async def test_the_loop_runs_while_a_post_waits_for_a_slow_answer(collector: Any) -> None:
    collector.delay_next(1, 1.0, path="/track")
    async with background(collector) as consumer:
        tracker = Tracker("project-token-1", consumer)
        tracker.track("user-1", "Signed up")
        flushing = asyncio.ensure_future(consumer.flush())
        while not collector.unique("track"):  # the collector holds its answer meanwhile
            await asyncio.sleep(0.005)
        assert not flushing.done()
        assert await flushing


async def test_alias_to_a_slow_destination_returns_at_once_and_arrives(collector: Any) -> None:
    collector.delay_next(1, 1.0, path="/track")
    async with background(collector) as consumer:
        tracker = Tracker("project-token-1", consumer)
        assert tracker.alias("new-id", "user-1") is True
        assert collector.requests() == []  # nothing was sent on the caller's time
        assert await consumer.flush()
    assert [m["event"] for m in collector.messages("track")] == ["$create_alias"]


async def test_a_refused_alias_reaches_the_trackers_error_handler(collector: Any) -> None:
    seen: list[BaseException] = []
    collector.fail_next(1, 401, path="/track")
    async with background(collector) as consumer:
        tracker = Tracker("project-token-1", consumer, error_handler=seen.append)
        tracker.alias("new-id", "user-1")
        await consumer.flush(0.5)
        collector.fail_next(1, 200, body={"status": 0}, path="/track")
        tracker.alias("other-id", "user-1")
        await consumer.flush(0.5)
    assert [type(e) for e in seen] == [RefusedError]
    # the 401 kept the alias (the project's credentials may be fixed); it went out next
    assert [m["properties"]["alias"] for m in collector.messages("track")] == ["new-id"]


async def test_sends_from_other_threads_are_handed_to_the_loop(collector: Any) -> None:
    async with background(collector) as consumer:
        def worker(n: int) -> None:
            for _ in range(n):
                consumer.send("event", event())

        threads = [threading.Thread(target=worker, args=(200,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)  # the last hand-overs run on the loop
        assert await consumer.flush()
    assert len(collector.unique("track")) == 800


async def test_a_full_queue_spills_and_the_spool_is_delivered(collector: Any,
                                                             tmp_path: Any) -> None:
    async with background(collector, max_queue_bytes=4096, spool=tmp_path) as consumer:
        messages = [event() for _ in range(100)]  # far more than 4 KB: most spill
        for message in messages:
            consumer.send("event", message)
        assert consumer.stats()["spilled"] > 50
        for _ in range(200):
            if await consumer.flush(0.5):
                break
    assert len(collector.unique("track")) == 100
    assert consumer.stats()["replayed"] == consumer.stats()["spilled"]


async def test_bad_input_raises_at_the_call_site_and_nothing_is_queued(collector: Any) -> None:
    async with background(collector) as consumer:
        with pytest.raises(ValueError, match="unknown message type"):
            consumer.send("evnt", event())
        with pytest.raises(TypeError, match="message_json must be a str"):
            consumer.send("event", b"{}")  # type: ignore[arg-type]
        with pytest.raises(RefusedError, match="exceeds"):
            consumer.send("event", "x" * (2 * 1024 * 1024))
        assert consumer.stats()["enqueued"] == 0


async def test_posthog_client_through_the_async_consumer(collector: Any) -> None:
    async with AsyncPostHogConsumer("phc_key", collector.url, retry=quick_retry(3)) as consumer:
        client = Client("phc_key", sink=consumer)
        for i in range(150):
            client.capture(f"user-{i}", "Signed up", {"i": i})
        assert await consumer.flush()
    assert len(collector.unique("posthog")) == 150
    assert sorted(r["n_records"] for r in collector.requests()) == [50, 100]  # each once


async def test_a_synchronous_consumer_on_the_loop_warns_once(collector: Any) -> None:
    consumer = Consumer(api_host=collector.url)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        consumer.send("event", event())
        consumer.send("event", event())
    assert [w.category for w in caught] == [BlockingCallWarning]
    assert "AsyncBackgroundConsumer" in str(caught[0].message)
    with warnings.catch_warnings(record=True) as off_loop:
        warnings.simplefilter("always")
        await asyncio.to_thread(Consumer(api_host=collector.url).send, "event", event())
    assert off_loop == []


async def test_the_loop_keeps_turning_through_an_outage(collector: Any) -> None:
    collector.fail_next(100_000, 503, path="/track")
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    ticking = asyncio.ensure_future(ticker())
    async with background(collector, retry=quick_retry(3)) as consumer:
        for _ in range(2000):
            consumer.send("event", event())
        seen = []  # the loop's turns at each refused request the collector answered
        while len(seen) < 6:
            await asyncio.sleep(0.001)
            count = len(collector.requests())
            if count > len(seen):
                seen.append(turns)
        assert consumer.stats()["outages"] >= 1
        # between any two requests of the outage, other tasks ran
        assert all(b > a for a, b in zip(seen, seen[1:]))
        collector.clear_faults()
        for _ in range(200):
            if await consumer.flush(0.5):
                break
    ticking.cancel()
    assert len(collector.unique("track")) == 2000


async def test_concurrent_requests_that_fail_put_back_the_unsent_in_order(collector: Any) -> None:
    collector.fail_next(4, 503, path="/track")  # the four requests in flight all fail
    async with background(collector, retry=quick_retry(1), max_batch=10,
                          max_in_flight=4) as consumer:
        messages = [event() for _ in range(40)]
        for message in messages:
            consumer.send("event", message)
        for _ in range(200):
            if await consumer.flush(0.5):
                break
    assert [r["status"] for r in collector.requests()][:4] == [503] * 4
    # probing sends the kept messages again, in the order they were sent
    assert collector.messages("track") == [json.loads(m) for m in messages]
