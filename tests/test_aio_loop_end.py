"""The asyncio consumer when its loop ends before ``aclose()`` (what it held is kept or
reported, never lost in silence) and when its process forks (the child starts with
nothing of the parent's): real loops, real processes, the real collector."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from consumers.aio import AsyncBackgroundConsumer, AsyncConsumer
from tests.consumer_messages import event, quick_retry

ROOT = Path(__file__).resolve().parents[1]


def consumer(collector: Any, **options: Any) -> AsyncBackgroundConsumer:
    inner = AsyncConsumer(api_host=collector.url, retry=quick_retry(2))
    return AsyncBackgroundConsumer(inner, probe_interval=0.01, max_probe_interval=0.05,
                                   **options)


def test_what_a_loop_left_is_spooled_and_delivered_on_the_next_loop(collector: Any,
                                                                     tmp_path: Path) -> None:
    kept = consumer(collector, spool=tmp_path)

    async def forgets_to_close() -> None:
        for _ in range(40):  # fewer than a request's worth: they wait for flush_interval
            kept.send("event", event())

    asyncio.run(forgets_to_close())  # cancels the delivery task on its way out
    assert kept.stats()["spilled"] == 40
    assert collector.unique("track") == []

    async def closes() -> None:
        kept.send("event", event())  # starts delivery on this loop, spool first
        await kept.aclose()

    asyncio.run(closes())
    assert len(collector.unique("track")) == 41
    assert kept.stats()["replayed"] == 40


def test_without_a_spool_the_loss_is_reported(collector: Any) -> None:
    losses: list[tuple[BaseException, int]] = []
    dropping = consumer(collector, spool=False,
                        on_error=lambda error, messages: losses.append((error, len(messages))))

    async def forgets_to_close() -> None:
        for _ in range(7):
            dropping.send("event", event())

    asyncio.run(forgets_to_close())
    assert [n for _, n in losses] == [7]
    assert "ended before aclose()" in str(losses[0][0])
    assert dropping.stats()["dropped"] == 7


def test_a_process_whose_loop_ended_leaves_its_spool_to_the_next_one(collector: Any,
                                                                    tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import asyncio
        from consumers.aio import AsyncBackgroundConsumer, AsyncConsumer
        from tests.consumer_messages import event

        async def main():
            global c
            c = AsyncBackgroundConsumer(AsyncConsumer(api_host={collector.url!r}),
                                        spool={str(tmp_path)!r})
            for _ in range(25):
                c.send("event", event())

        asyncio.run(main())
        print(c.stats()["spilled"])
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, timeout=60,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["25"]
    assert collector.unique("track") == []

    async def next_process() -> None:
        async with consumer(collector, spool=tmp_path) as adopting:
            for _ in range(400):  # counted once the answer is back, after the collector has them
                if adopting.stats()["replayed"] == 25:
                    break
                await asyncio.sleep(0.05)
            assert adopting.stats()["replayed"] == 25

    asyncio.run(next_process())
    assert len(collector.unique("track")) == 25


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_delivers_its_own_messages_and_not_the_parents(collector: Any,
                                                                      tmp_path: Path) -> None:
    shared = consumer(collector, spool=tmp_path)

    def child() -> None:
        async def main() -> None:
            assert shared.stats()["queued"] == 0  # the parent's five stay the parent's
            for _ in range(3):
                shared.send("event", event("from the child"))
            await shared.aclose()

        asyncio.run(main())

    async def parent() -> None:
        for _ in range(5):
            shared.send("event", event("from the parent"))
        await asyncio.sleep(0.05)  # the task runs, its connection open, five queued
        process = multiprocessing.get_context("fork").Process(target=child)
        process.start()
        await asyncio.to_thread(process.join, 30)
        assert process.exitcode == 0
        await shared.aclose()

    asyncio.run(parent())
    names = sorted(m["event"] for m in collector.messages("track"))
    assert names == ["from the child"] * 3 + ["from the parent"] * 5
