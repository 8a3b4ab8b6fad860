"""What BackgroundConsumer promises, each shown with real processes, files and the collector.

Each test is named in the table of docs/background.md.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from consumers.background import BackgroundConsumer, QueueFullError
from consumers.buffered import BufferedConsumer
from consumers.errors import RefusedError
from consumers.retry import RetryPolicy
from tests.small_disk import fill
from tracker import Tracker

WAIT = 60.0
ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
TINY_RETRY = RetryPolicy(max_attempts=2, max_elapsed=0.5, initial_backoff=0.01, max_backoff=0.02)


def event(i: int, prefix: str = "e") -> str:
    return json.dumps({"event": "Tested", "properties": {
        "token": "tok", "distinct_id": f"u{i % 7}", "time": 1_700_000_000_000 + i,
        "$insert_id": f"{prefix}{i}", "n": i}})


def ids(collector: Any, endpoint: str = "track") -> list[str]:
    return sorted(m["properties"]["$insert_id"] for m in collector.unique(endpoint))


def expected(n: int, prefix: str = "e") -> list[str]:
    return sorted(f"{prefix}{i}" for i in range(n))


# -- 1. throughput: whole slices, public limits, no disk on the caller's thread ---------------
def test_default_composition_posts_bulk_batches_and_never_touches_disk(collector: Any) -> None:
    bc = BackgroundConsumer(BufferedConsumer(api_host=collector.url))
    for i in range(20_000):
        bc.send("event", event(i))
    assert bc.spool_path is None  # healthy destination: nothing was written to disk
    bc.close()
    assert ids(collector) == expected(20_000)
    batches = [r for r in collector.requests() if "/track" in r.get("path", "")]
    assert len(batches) <= 25, len(batches)  # 1000 per request, not 50


def test_an_explicit_max_batch_is_honoured(collector: Any) -> None:
    bc = BackgroundConsumer(BufferedConsumer(api_host=collector.url, max_batch=200))
    for i in range(2000):
        bc.send("event", event(i))
    bc.close()
    assert ids(collector) == expected(2000)
    assert len(collector.requests()) >= 10


# -- 2. exit during an outage ----------------------------------------------------------------
OUTAGE_EXIT = textwrap.dedent("""
    import json, sys, time, logging
    logging.basicConfig(level=logging.WARNING)
    from consumers.background import BackgroundConsumer
    from consumers.buffered import BufferedConsumer
    url, spool, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # the default retry budget (a minute) outlasts close(timeout=1)
    bc = BackgroundConsumer(BufferedConsumer(api_host=url), spool=spool, shutdown_timeout=1.0)
    for i in range(n):
        bc.send("event", json.dumps({"event": "Tested", "properties": {
            "token": "tok", "distinct_id": "u", "time": 1700000000000 + i,
            "$insert_id": f"e{i}"}}))
    bc.flush(0.5)  # the worker is now retrying a batch
    t0 = time.monotonic()
    bc.close()
    print(json.dumps({"close_s": time.monotonic() - t0, "stats": bc.stats()}), flush=True)
""")


def test_close_during_an_outage_longer_than_the_close_timeout_keeps_everything(
    collector: Any, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    collector.fail_next(10**9, 503)
    done = subprocess.run([sys.executable, "-c", OUTAGE_EXIT, collector.url, str(spool), "500"],
                          capture_output=True, text=True, env=ENV, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["close_s"] < 3.0, report
    assert report["stats"]["spooled"] == 500, report
    assert str(spool) in done.stderr and "500 undelivered message(s)" in done.stderr
    collector.clear_faults()
    with BackgroundConsumer(BufferedConsumer(api_host=collector.url), spool=spool) as bc:
        assert bc.flush(WAIT)
    assert ids(collector) == expected(500)


def test_close_during_an_outage_without_a_spool_reports_every_message(collector: Any) -> None:
    collector.fail_next(10**9, 503)
    reports: list[list[Any]] = []
    bc = BackgroundConsumer(BufferedConsumer(api_host=collector.url, retry=TINY_RETRY),
                            overflow="drop", on_error=lambda e, m: reports.append(m))
    for i in range(300):
        bc.send("event", event(i))
    t0 = time.monotonic()
    bc.close(timeout=1.0)
    assert time.monotonic() - t0 < 3.0
    assert sum(len(m) for m in reports) == 300
    assert bc.stats()["failed"] == 300


# -- 3. forked children (multiprocessing, fork start method) ---------------------------------
_bc: Any = None


def _track_in_child(i: int) -> int:
    _bc.send("event", event(i, prefix="child"))
    return i


def _process_child(start: int) -> None:
    for i in range(start, start + 50):
        _bc.send("event", event(i, prefix="child"))


@pytest.mark.parametrize("how", ["process", "pool-with", "pool-close-join"])
def test_events_tracked_in_multiprocessing_children_are_delivered(
    collector: Any, how: str
) -> None:
    global _bc
    ctx = multiprocessing.get_context("fork")
    _bc = BackgroundConsumer(BufferedConsumer(api_host=collector.url))
    try:
        if how == "process":
            children = [ctx.Process(target=_process_child, args=(k * 50,)) for k in range(4)]
            for child in children:
                child.start()
            for child in children:
                child.join(WAIT)
                assert child.exitcode == 0
        elif how == "pool-with":
            with ctx.Pool(4) as pool:  # __exit__ terminates the workers (SIGTERM)
                assert pool.map(_track_in_child, range(200)) == list(range(200))
        else:
            pool = ctx.Pool(4)
            assert pool.map(_track_in_child, range(200)) == list(range(200))
            pool.close()
            pool.join()
        _bc.close()
    finally:
        _bc = None
    assert ids(collector) == expected(200, "child")


# -- 4. durable mode: SIGKILL mid-burst --------------------------------------------------------
KILLED = textwrap.dedent("""
    import json, sys
    from consumers.background import BackgroundConsumer
    from consumers.buffered import BufferedConsumer
    url, spool, n, durable = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    bc = BackgroundConsumer(BufferedConsumer(api_host=url), spool=spool, durable=durable,
                            atexit_drain=False)
    for i in range(n):
        bc.send("event", json.dumps({"event": "Tested", "properties": {
            "token": "tok", "distinct_id": "u", "time": 1700000000000 + i,
            "$insert_id": f"e{i}"}}))
    print("sent", flush=True)
    sys.stdin.read()
""")


@pytest.mark.parametrize("durable", [True, False])
def test_sigkill_mid_burst(collector: Any, tmp_path: Path, durable: bool) -> None:
    spool = tmp_path / "spool"
    n = 3000
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, collector.url, str(spool), str(n), "1" if durable else "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=ENV, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "sent"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(WAIT)
    with BackgroundConsumer(BufferedConsumer(api_host=collector.url), spool=spool) as bc:
        assert bc.flush(WAIT)
    got = ids(collector)
    assert set(got) <= set(expected(n))
    print(f"durable={durable}: {n - len(got)} of {n} lost to SIGKILL")
    if durable:
        assert got == expected(n)  # nothing send() accepted is lost


# -- 5. spool unwritable during an outage: bounded, block-then-drop, counted ------------------
def test_full_disk_during_an_outage_keeps_memory_bounded_and_counts_every_drop(
    collector: Any, small_disk: Path
) -> None:
    fill(small_disk, leave=8192)
    collector.fail_next(10**9, 503)
    reports: list[QueueFullError] = []
    other: list[BaseException] = []
    max_bytes = 200_000
    bc = BackgroundConsumer(BufferedConsumer(api_host=collector.url, retry=TINY_RETRY),
                            spool=small_disk / "spool", max_queue_bytes=max_bytes,
                            block_timeout=0.2, probe_interval=0.05, max_probe_interval=0.2,
                            on_error=lambda e, m: (reports if isinstance(e, QueueFullError)
                                                   else other).append(e))
    n = 20_000
    t0 = time.monotonic()
    peak = 0
    for i in range(n):
        bc.send("event", event(i))
        if i % 500 == 0:
            stats = bc.stats()
            peak = max(peak, stats["queued_bytes"])
            assert stats["in_flight"] <= 2000, stats
    assert time.monotonic() - t0 < 20  # one block_timeout, not one per message
    assert peak <= max_bytes
    stats = bc.stats()
    assert stats["dropped"] > 0
    bc.close(timeout=1.0)
    stats = bc.stats()
    # every message is accounted for: on disk, delivered, failed or dropped, exactly
    assert stats["dropped"] == sum(e.dropped for e in reports)
    assert stats["spooled"] + stats["delivered"] + stats["failed"] + stats["dropped"] == n, stats


# -- 6. drop-mode accounting ------------------------------------------------------------------
def test_drop_mode_reports_every_drop_with_exact_counts(collector: Any) -> None:
    collector.delay_next(1, 2.0)
    reports: list[QueueFullError] = []
    bc = BackgroundConsumer(BufferedConsumer(api_host=collector.url, max_batch=5),
                            max_queue=50, overflow="drop",
                            on_error=lambda e, m: reports.append(e))  # type: ignore[arg-type]
    bc.send("event", event(-1))
    bc.flush(0.3)  # the worker is now in the slow request
    for i in range(2000):
        bc.send("event", event(i))
    bc.close()
    dropped = bc.stats()["dropped"]
    assert dropped >= 1900
    assert sum(e.dropped for e in reports) == dropped
    assert all(isinstance(e, QueueFullError) and f"{e.dropped} message(s) dropped" in str(e)
               for e in reports)
    assert len(ids(collector)) + dropped == 2001


# -- 7. one error path --------------------------------------------------------------------------
def test_a_final_failure_reaches_the_trackers_error_handler(collector: Any) -> None:
    heard: list[BaseException] = []
    bc = BackgroundConsumer(BufferedConsumer(api_host=collector.url, max_batch=1))
    tracker = Tracker("tok", bc, error_handler=heard.append)
    collector.fail_next(1, 400, body={"error": "bad", "status": 0})
    assert tracker.track("u1", "Refused")
    bc.close()
    assert len(heard) == 1
    error = heard[0]
    assert isinstance(error, RefusedError) and error.status == 400
    assert "still pending" not in str(error)
    assert len(error.messages) == 1


# -- 8. a forgotten flush is never silent ------------------------------------------------------
def test_an_unflushed_buffer_warns_when_collected(collector: Any,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    consumer = BufferedConsumer(api_host=collector.url)
    consumer.send("event", event(1))
    consumer.send("event", event(2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del consumer
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) and "2 buffered message(s)" in
               str(w.message) for w in caught)
    assert "2 buffered message(s) never sent" in caplog.text


def test_an_unflushed_buffer_warns_at_exit(collector: Any) -> None:
    script = textwrap.dedent(f"""
        import logging
        logging.basicConfig()
        from tracker import Tracker
        from consumers.buffered import BufferedConsumer
        tracker = Tracker("tok", BufferedConsumer(api_host={collector.url!r}))
        assert tracker.track("u1", "One") and tracker.track("u1", "Two")
    """)
    done = subprocess.run([sys.executable, "-W", "always::ResourceWarning", "-c", script],
                          capture_output=True, text=True, env=ENV, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    text = "was still open at interpreter exit with 2 buffered message(s)"
    assert f"ERROR:consumers.buffered:a BufferedConsumer {text}" in done.stderr
    assert f"ResourceWarning: a BufferedConsumer {text}" in done.stderr


# -- 9. alias during an outage --------------------------------------------------------------------
def test_alias_during_an_outage_returns_within_its_budget_and_is_delivered_later(
    collector: Any,
) -> None:
    collector.fail_next(10**9, 503)
    bc = BackgroundConsumer(BufferedConsumer(api_host=collector.url), alias_timeout=0.5,
                            probe_interval=0.05)
    tracker = Tracker("tok", bc)
    t0 = time.monotonic()
    assert tracker.alias("anon-1", "user-1") is True
    assert time.monotonic() - t0 < 2.0
    collector.clear_faults()
    assert bc.flush(WAIT)
    bc.close()
    aliases = [m for m in collector.unique("track") if m["event"] == "$create_alias"]
    assert aliases and aliases[0]["properties"]["alias"] == "anon-1"


def test_alias_on_an_event_loop_does_not_wait_and_arrives_once_in_order(
    collector: Any,
) -> None:
    collector.delay_next(1, 3.0, path="/track")  # the first answer comes after alias_timeout
    bc = BackgroundConsumer(BufferedConsumer(api_host=collector.url))
    tracker = Tracker("tok", bc)
    held: list[float] = []

    async def view() -> None:
        tracker.track("anon-1", "Before")
        t0 = time.monotonic()
        assert tracker.alias("user-1", "anon-1") is True
        held.append(time.monotonic() - t0)
        tracker.track("user-1", "After")

    asyncio.run(view())
    assert held[0] < 1.0  # not the 2 s budget, nor the 3 s answer: the loop was never held
    assert bc.flush(WAIT)
    bc.close()
    names = [m["event"] for m in collector.messages("track")]
    assert names == ["Before", "$create_alias", "After"]  # once each, in order


def test_an_alias_refused_on_an_event_loop_reaches_on_error(collector: Any) -> None:
    collector.fail_next(1, 400, path="/track")
    lost: list[tuple[BaseException, int]] = []
    bc = BackgroundConsumer(BufferedConsumer(api_host=collector.url),
                            on_error=lambda error, messages: lost.append((error, len(messages))))

    async def view() -> None:
        assert Tracker("tok", bc).alias("user-1", "anon-1") is True

    asyncio.run(view())
    assert bc.flush(WAIT) is True
    bc.close()
    assert [n for _, n in lost] == [1] and isinstance(lost[0][0], RefusedError)
    assert bc.stats()["refused"] == 1


def test_a_message_that_is_not_text_is_refused_at_the_call_site(collector: Any) -> None:
    with BackgroundConsumer(BufferedConsumer(api_host=collector.url)) as bc:
        with pytest.raises(TypeError, match="message_json must be a str, got dict"):
            bc.send("event", {"event": "x"})  # type: ignore[arg-type]
        bc.send("event", event(1))
    assert ids(collector) == ["e1"] and bc.stats()["enqueued"] == 1


def test_durable_mode_on_a_full_disk_falls_back_to_memory_says_so_and_delivers(
    collector: Any, small_disk: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.small_disk import fill

    fill(small_disk)  # no room for a spool folder, let alone a line
    with caplog.at_level(logging.WARNING, logger="consumers.background"):
        bc = BackgroundConsumer(BufferedConsumer(api_host=collector.url),
                                spool=small_disk / "spool", durable=True, atexit_drain=False)
        for i in range(200):
            bc.send("event", event(i))
        assert bc.flush(WAIT)
        bc.close()
    assert ids(collector) == expected(200)
    said = [r.getMessage() for r in caplog.records if "durable mode" in r.getMessage()]
    assert said == ["durable mode: the spool cannot be written; queueing in memory"]


def test_a_multiprocessing_child_without_a_spool_warns_that_a_terminated_child_loses(
    collector: Any, tmp_path: Path,
) -> None:
    global _bc
    log = tmp_path / "child.log"
    handler = logging.FileHandler(log)  # inherited by the forked children
    background_logger = logging.getLogger("consumers.background")
    background_logger.addHandler(handler)
    ctx = multiprocessing.get_context("fork")
    _bc = BackgroundConsumer(BufferedConsumer(api_host=collector.url), overflow="drop")
    try:
        child = ctx.Process(target=_process_child, args=(0,))
        child.start()
        child.join(WAIT)
        assert child.exitcode == 0
        _bc.close()
    finally:
        _bc = None
        background_logger.removeHandler(handler)
        handler.close()
    assert ids(collector) == expected(50, "child")  # a child that ends normally delivers
    warned = [line for line in log.read_text().splitlines() if "without a spool" in line]
    assert len(warned) == 1 and "give spool= to keep it" in warned[0]
