"""consumers.aio: messages sent from other threads, over real HTTP against the local collector."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from consumers.aio import AsyncBackgroundConsumer, AsyncConsumer
from consumers.errors import Message
from tests.consumer_messages import event, quick_retry


def background(collector: Any, **options: Any) -> AsyncBackgroundConsumer:
    inner = AsyncConsumer(api_host=collector.url, retry=quick_retry(3))
    return AsyncBackgroundConsumer(inner, probe_interval=0.01, max_probe_interval=0.05,
                                   **options)


def send_from_a_thread(consumer: AsyncBackgroundConsumer, messages: list[str]) -> None:
    """Send ``messages`` from another thread while the loop's thread waits (takes nothing)."""
    thread = threading.Thread(target=lambda: [consumer.send("event", m) for m in messages])
    thread.start()
    thread.join()


async def settle(consumer: AsyncBackgroundConsumer) -> None:
    for _ in range(200):
        if await consumer.flush(0.5):
            return


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_flush_waits_for_what_other_threads_sent_before_it(collector: Any,
                                                                 anyio_backend: str) -> None:
    async with background(collector, spool=False) as consumer:
        send_from_a_thread(consumer, [event() for _ in range(300)])
        assert await consumer.flush()  # no turn of the loop in between
        assert len(collector.unique("track")) == 300
    assert consumer.stats()["enqueued"] == 300


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_other_threads_spill_on_their_side_when_the_loop_is_behind(
        collector: Any, tmp_path: Path, anyio_backend: str) -> None:
    messages = [event() for _ in range(200)]  # ~50 KB; the bound is 8 KB
    async with background(collector, max_queue_bytes=8192, spool=tmp_path) as consumer:
        send_from_a_thread(consumer, messages)
        # the loop took nothing meanwhile, yet memory stayed bounded: the rest went to disk
        assert consumer.stats()["spilled"] >= 150
        await settle(consumer)
    assert sorted(m["properties"]["$insert_id"] for m in collector.messages("track")) \
        == sorted(m["properties"]["$insert_id"] for m in map(json.loads, messages))
    assert consumer.stats()["dropped"] == 0


def test_a_send_after_the_loop_closed_is_reported_not_lost(collector: Any) -> None:
    lost: list[Message] = []
    holder: list[AsyncBackgroundConsumer] = []

    async def run_and_leave() -> None:  # the app forgot aclose()
        holder.append(background(collector, spool=False,
                                 on_error=lambda error, messages: lost.extend(messages)))
        holder[0].send("event", event())
        await holder[0].flush()

    asyncio.run(run_and_leave())
    late = event()
    holder[0].send("event", late)  # no loop runs this consumer's task any more
    send_from_a_thread(holder[0], [event()])
    assert lost[0][1] == late
    assert len(lost) == 2
    assert holder[0].stats()["dropped"] == 2



@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_large_body_is_written_in_pieces_framed_by_its_length(collector: Any,
                                                                      anyio_backend: str) -> None:
    async with background(collector, spool=False) as consumer:
        for _ in range(1000):
            consumer.send("event", event(padding="x" * 200))  # ~330 KB in one request
        assert await consumer.flush()
    [request] = collector.requests()
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert request["bytes"] > 5 * 64 * 1024
    assert headers["content-length"] == str(request["bytes"])
    assert "transfer-encoding" not in headers
    assert request["accepted"] == 1000


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_burst_sent_between_other_tasks_goes_out_in_full_requests(
        collector: Any, anyio_backend: str) -> None:
    async with background(collector, spool=False) as consumer:
        for _ in range(500):  # an app: ten events, then other tasks run
            for _ in range(10):
                consumer.send("event", event())
            await asyncio.sleep(0)
        assert await consumer.flush()
    sizes = [r["n_records"] for r in collector.requests()]
    assert sum(sizes) == 5000
    assert len(sizes) <= 6  # 1000 per request, and the few left at the end
