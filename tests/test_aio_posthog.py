"""consumers.aio for PostHog: historical migration, over real HTTP against the local collector."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.aio import AsyncPostHogConsumer
from tests.consumer_messages import quick_retry
from tracker.posthog import Client

pytestmark = pytest.mark.anyio

KEY = "phc_key"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_historical_migration_marks_every_batch_and_live_ones_stay_live(
        collector: Any) -> None:
    async with AsyncPostHogConsumer(KEY, collector.url, retry=quick_retry(3),
                                    historical_migration=True) as past:
        client = Client(KEY, sink=past)
        for i in range(150):  # two batches
            client.capture(f"user-{i}", "Imported", {"i": i}, "2020-01-01T00:00:00Z")
        assert await past.flush()
    async with AsyncPostHogConsumer(KEY, collector.url, retry=quick_retry(3)) as live:
        Client(KEY, sink=live).capture("user-1", "Live")
        assert await live.flush()
    requests = [r for r in collector.requests() if r["path"].startswith("/batch")]
    seen = [(r["n_records"], r.get("historical_migration", False)) for r in requests]
    # the import's two batches may be in flight at once: either may arrive first
    assert sorted(seen[:2]) == [(50, True), (100, True)] and seen[2:] == [(1, False)]
    events = [m["event"] for m in collector.messages("posthog")]
    assert events == ["Imported"] * 150 + ["Live"]
    assert "historical_migration=True" in repr(past.inner)
    assert "historical_migration" not in repr(live.inner)


async def test_a_historical_import_keeps_its_own_spool(collector: Any) -> None:
    past = AsyncPostHogConsumer(KEY, collector.url, historical_migration=True)
    live = AsyncPostHogConsumer(KEY, collector.url)
    try:
        assert past.spool is not None and live.spool is not None
        assert past.spool.root != live.spool.root  # never replayed as live events
    finally:
        await past.aclose()
        await live.aclose()
