"""``Tracking`` on an event loop: ``aflush()``/``aclose()`` for an asyncio consumer (awaited on
the loop) and for a threaded one (in a thread), against the real collector."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tracker.integrations import Tracking

pytest.importorskip("httpx", reason="the asyncio consumer needs httpx")

from consumers.aio import AsyncBackgroundConsumer, AsyncConsumer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def asyncio_tracking(collector: Any, **options: Any) -> Tracking:
    consumer = AsyncBackgroundConsumer(AsyncConsumer(api_host=collector.url), spool=False,
                                       flush_interval=600, **options)
    return Tracking("aio-token", consumer=consumer, close_at_exit=False)


def signed_up(collector: Any) -> int:
    return sum(1 for m in collector.unique("track") if m["event"] == "Signed Up")


async def test_an_asyncio_consumer_is_flushed_and_closed_on_its_loop(collector: Any) -> None:
    tracking = asyncio_tracking(collector)
    for i in range(5):
        tracking.tracker.track(f"user-{i}", "Signed Up")
    with pytest.raises(TypeError, match=r"await tracking\.aflush\(\)"):
        tracking.flush()
    assert await tracking.aflush()
    assert signed_up(collector) == 5

    tracking.tracker.track("user-5", "Signed Up")  # waits for the interval: only aclose sends it
    with pytest.raises(TypeError, match=r"await tracking\.aclose\(\)"):
        tracking.close()
    await tracking.aclose()
    assert signed_up(collector) == 6
    await tracking.aclose()  # once only
    assert await tracking.aflush()  # closed: nothing left to deliver


async def test_a_threaded_consumer_is_flushed_and_closed_in_a_thread(collector: Any) -> None:
    tracking = Tracking("aio-token", api_host=collector.url, close_at_exit=False)
    turns: list[float] = []  # when the loop ran another task

    async def turning() -> None:
        while True:
            turns.append(time.monotonic())
            await asyncio.sleep(0.001)

    other_task = asyncio.ensure_future(turning())
    for i in range(5):
        tracking.tracker.track(f"user-{i}", "Signed Up")
    assert await tracking.aflush()
    assert signed_up(collector) == 5
    tracking.tracker.track("user-5", "Signed Up")
    collector.delay_next(1, 0.5, path="/track")
    started = time.monotonic()
    await tracking.aclose()
    other_task.cancel()
    assert signed_up(collector) == 6
    # the loop ran on while the close waited for the answer
    assert len([t for t in turns if t > started]) >= 20


def test_where_no_loop_runs_close_leaves_an_asyncio_consumer_to_its_loop_end(
        collector: Any) -> None:
    tracking = asyncio_tracking(collector, on_error=lambda error, messages: None)

    async def tracks() -> None:
        tracking.tracker.track("user-0", "Signed Up")

    asyncio.run(tracks())
    tracking.close()  # as at interpreter exit: no loop to await the consumer on
    tracking.close()
    assert tracking.consumer.stats()["dropped"] == 1  # reported by the ended loop, not lost
