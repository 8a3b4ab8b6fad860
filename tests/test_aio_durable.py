"""The asyncio consumer's durable mode: on disk before ``send()`` returns, so a SIGKILL loses
nothing; real processes, real files, the real collector."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from consumers.aio import AsyncBackgroundConsumer, AsyncConsumer
from consumers.background import TEMP_SPOOL
from tests.consumer_messages import event, quick_retry
from tests.framework_apps import free_port

ROOT = Path(__file__).resolve().parents[1]


def consumer(collector: Any, **options: Any) -> AsyncBackgroundConsumer:
    inner = AsyncConsumer(api_host=collector.url, retry=quick_retry(2))
    return AsyncBackgroundConsumer(inner, probe_interval=0.01, max_probe_interval=0.05,
                                   **options)


@pytest.mark.parametrize("spool", [None, False, True, TEMP_SPOOL])
def test_durable_mode_needs_a_folder_the_next_process_looks_in(spool: Any) -> None:
    with pytest.raises(ValueError, match=r"durable=True needs spool='some/dir'"):
        AsyncBackgroundConsumer(api_host="http://127.0.0.1:9", durable=True, spool=spool)


def test_a_killed_process_loses_nothing_send_accepted(collector: Any, tmp_path: Path) -> None:
    """SIGKILL right after the sends, from the loop's thread and from another thread."""
    down = free_port()  # nobody listens: the child delivers nothing before it is killed
    script = textwrap.dedent(f"""
        import asyncio, sys
        from consumers.aio import AsyncBackgroundConsumer, AsyncConsumer
        from tests.consumer_messages import event, quick_retry

        async def main():
            c = AsyncBackgroundConsumer(
                AsyncConsumer(api_host="http://127.0.0.1:{down}", retry=quick_retry(1)),
                spool={str(tmp_path)!r}, durable=True)
            for i in range(1500):
                c.send("event", event(f"loop {{i}}"))
            await asyncio.to_thread(lambda: [c.send("event", event(f"thread {{i}}"))
                                             for i in range(700)])
            print("sent", flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line == "sent\n", child.stderr.read() if child.stderr else line
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert collector.unique("track") == []

    async def next_process() -> None:
        async with consumer(collector, spool=tmp_path) as adopting:
            for _ in range(600):  # counted once the answer is back, after the collector has them
                if adopting.stats()["replayed"] >= 2200:
                    break
                await asyncio.sleep(0.05)
            assert adopting.stats()["replayed"] == 2200

    asyncio.run(next_process())
    names = sorted(m["event"] for m in collector.messages("track"))
    assert names == sorted([f"loop {i}" for i in range(1500)]
                           + [f"thread {i}" for i in range(700)])


def test_flush_waits_until_the_spool_is_delivered(collector: Any, tmp_path: Path) -> None:
    durable = consumer(collector, spool=tmp_path, durable=True)

    async def main() -> None:
        durable.send("event", event("first"))
        assert durable.spool is not None and durable.spool.count == 1  # on disk already
        for i in range(1200):
            durable.send("event", event(f"loop {i}"))
        await asyncio.to_thread(lambda: [durable.send("event", event(f"thread {i}"))
                                         for i in range(300)])
        assert await durable.flush(20)
        assert len(collector.unique("track")) == 1501
        durable.send("event", event("last"))
        assert await durable.flush(20)
        await durable.aclose()

    asyncio.run(main())
    assert len(collector.unique("track")) == 1502
    stats = durable.stats()
    assert (stats["enqueued"], stats["delivered"], stats["replayed"]) == (1502, 1502, 1502)
    assert not [p for p in tmp_path.rglob("seg-*")]  # nothing left on disk


def test_a_spool_that_cannot_be_written_falls_back_to_memory_and_says_so(
        collector: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    durable = consumer(collector, spool=blocker / "spool", durable=True)

    async def main() -> None:
        with caplog.at_level(logging.WARNING, logger="consumers"):
            for i in range(30):
                durable.send("event", event(f"e{i}"))
        assert await durable.flush(20)
        await durable.aclose()

    asyncio.run(main())
    assert len(collector.unique("track")) == 30
    warned = [r.getMessage() for r in caplog.records if "durable mode" in r.getMessage()]
    assert warned == ["durable mode: the spool cannot be written; queueing in memory"]
    assert not durable.durable


def test_unreadable_lines_of_a_left_spool_are_reported_and_the_rest_delivered(
        collector: Any, tmp_path: Path) -> None:
    """A process killed mid-write leaves a torn last line; a corrupt line is counted too."""
    from consumers.file import FileConsumer

    segment = tmp_path / "4242-gone" / "seg-000001"
    segment.parent.mkdir()
    (segment.parent / ".lock").write_text("")
    writer = FileConsumer(f"{segment}{os.sep}")
    for i in range(3):
        writer.send("event", event(f"kept {i}"))
    writer.close()
    [log] = segment.glob("events-*.log")
    with log.open("ab") as f:
        f.write(b'not json at all\n["event", "{\\"event\\": \\"torn')
    reported: list[tuple[str, int]] = []

    async def next_process() -> None:
        async with consumer(collector, spool=tmp_path, on_error=lambda error, messages:
                            reported.append((str(error), len(messages)))) as adopting:
            for _ in range(400):
                if reported:
                    break
                await asyncio.sleep(0.05)
            assert await adopting.flush(10)
            assert adopting.stats()["refused"] == 2
            for _ in range(400):  # the adopted folder is removed once all of it was read
                if not segment.parent.exists():
                    break
                await asyncio.sleep(0.05)

    asyncio.run(next_process())
    names = sorted(m["event"] for m in collector.messages("track"))
    assert names == [f"kept {i}" for i in range(3)]
    assert [(text.split(" of the")[0], n) for text, n in reported] == [("2 line(s)", 0)]
    assert not segment.parent.exists()


def test_a_segment_opened_ahead_is_used_by_the_next_write_and_never_replayed_empty(
        tmp_path: Path) -> None:
    from consumers._spool import Spool

    spool = Spool(tmp_path)
    spool.prepare()  # what the delivery task does on a thread after each seal
    [opened] = list(tmp_path.glob("*/seg-*"))
    assert not spool.has_data and spool.segments() == []
    spool.seal()  # nothing written: it stays open
    assert spool.write([("event", event("one"))])
    assert list(tmp_path.glob("*/seg-*")) == [opened]  # the write made no folder of its own
    assert spool.has_data and spool.segments() == []  # open: not yet to replay
    spool.seal()
    assert spool.segments() == [opened]
    spool.prepare()
    assert len(list(tmp_path.glob("*/seg-*"))) == 2
    spool.done(opened)
    spool.close()  # the one opened ahead and never written to goes with the folder
    assert list(tmp_path.iterdir()) == []
