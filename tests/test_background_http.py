"""BackgroundConsumer(BufferedConsumer) against the real local collector, files and processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from consumers.background import BackgroundConsumer
from consumers.buffered import BufferedConsumer
from consumers.retry import RetryPolicy

WAIT = 60.0
ROOT = Path(__file__).resolve().parents[1]
# A retry budget that runs out quickly, so a test outage outlasts it.
TINY_RETRY = RetryPolicy(max_attempts=2, max_elapsed=0.5, initial_backoff=0.01, max_backoff=0.02)


def event(i: int, prefix: str = "e") -> str:
    return json.dumps({
        "event": "Tested",
        "properties": {"token": "tok", "distinct_id": f"u{i % 7}", "time": 1_700_000_000_000 + i,
                       "$insert_id": f"{prefix}{i}", "n": i},
    })


def insert_ids(messages: list[dict[str, Any]]) -> list[str]:
    return [m["properties"]["$insert_id"] for m in messages]


def buffered(collector: Any, **kwargs: Any) -> BufferedConsumer:
    return BufferedConsumer(api_host=collector.url, retry=TINY_RETRY, timeout=(2.0, 5.0),
                            **kwargs)


def test_events_from_many_threads_arrive_exactly_once(collector: Any) -> None:
    bc = BackgroundConsumer(buffered(collector), max_queue=100_000)

    def produce(k: int) -> None:
        for i in range(500):
            bc.send("event", event(i, prefix=f"t{k}-"))

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bc.close()
    raw = insert_ids(collector.messages("track"))
    assert len(raw) == 3000
    assert len(set(raw)) == 3000
    assert bc.stats()["delivered"] == 3000


def test_close_delivers_what_is_still_queued(collector: Any) -> None:
    bc = BackgroundConsumer(buffered(collector), flush_interval=3600.0)
    for i in range(120):
        bc.send("event", event(i))
    bc.close()
    assert sorted(insert_ids(collector.unique("track"))) == sorted(f"e{i}" for i in range(120))


def test_outage_longer_than_the_retry_budget_loses_nothing_and_memory_stays_bounded(
    collector: Any, tmp_path: Path
) -> None:
    n = 50_000
    collector.fail_next(10**9, 503)
    bc = BackgroundConsumer(buffered(collector), max_queue=1000, spool=tmp_path / "spool",
                            probe_interval=0.05, max_probe_interval=0.5)
    tracemalloc.start()
    try:
        for i in range(n):
            bc.send("event", event(i))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # n messages held in memory would take ~n * 300 bytes (15 MB); the queue holds 1000.
    print(f"tracemalloc peak {peak} bytes for {n} events")
    assert peak < 4_000_000, peak
    stats = bc.stats()
    assert stats["spilled"] > n // 2
    refused = len(collector.requests())
    collector.drop_next(10**9)
    time.sleep(0.5)
    collector.clear_faults()  # the outage ends; what was accepted stays
    assert bc.flush(WAIT)
    bc.close()
    # the worker backed off instead of hammering the failing destination
    assert refused < 200, refused
    unique = insert_ids(collector.unique("track"))
    assert sorted(unique) == sorted(f"e{i}" for i in range(n))
    stats = bc.stats()
    assert stats["delivered"] == n
    assert stats["replayed"] > 0
    assert stats["failed"] == stats["dropped"] == 0


def test_spill_policy_writes_the_spool_and_replays_it(collector: Any, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    collector.delay_next(1, 2.0)  # the worker sits in one slow request meanwhile
    # a worker stuck past block_timeout: callers spill as a last resort
    bc = BackgroundConsumer(buffered(collector, max_batch=10), max_queue=10, spool=spool,
                            block_timeout=0.2)
    for i in range(300):
        bc.send("event", event(i))
    assert bc.stats()["spilled"] > 0
    assert any(p.is_file() for p in spool.rglob("*"))
    assert bc.flush(WAIT)
    stats = bc.stats()
    assert stats["replayed"] == stats["spilled"]
    bc.close()
    assert sorted(insert_ids(collector.unique("track"))) == sorted(f"e{i}" for i in range(300))
    assert not any(p.is_file() and p.name != ".lock" for p in spool.rglob("*"))


def test_drop_policy_reports_what_it_dropped(collector: Any) -> None:
    reports: list[list[tuple[str, str]]] = []
    collector.delay_next(1, 1.0)
    bc = BackgroundConsumer(buffered(collector, max_batch=5), max_queue=5, overflow="drop",
                            on_error=lambda e, m: reports.append(m))
    for i in range(200):
        bc.send("event", event(i))
    bc.close()
    dropped = bc.stats()["dropped"]
    assert dropped > 0
    assert sum(len(m) for m in reports) == dropped
    delivered = insert_ids(collector.unique("track"))
    assert len(delivered) + dropped == 200


def test_forked_child_sends_only_its_own_events(collector: Any) -> None:
    bc = BackgroundConsumer(buffered(collector), flush_interval=3600.0)
    bc.send("event", event(0, prefix="warm-up"))
    assert bc.flush(WAIT)  # a keep-alive connection now waits in the pool
    for i in range(20):
        bc.send("event", event(i, prefix="parent-a"))
    # hold the worker in a slow request so the next events wait in the queue at fork time
    collector.delay_next(1, 2.0)
    bc.flush(0.01)
    deadline = time.monotonic() + WAIT
    while len(collector.requests()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    for i in range(20):
        bc.send("event", event(i, prefix="parent-b"))
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            for i in range(30):
                bc.send("event", event(i, prefix="child"))
            ok = bc.flush(WAIT)
            bc.close()
            code = 0 if ok else 2
        finally:
            os._exit(code)
    delivered_at_fork = bc.stats()["delivered"]
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert delivered_at_fork == 1  # the fork did not wait for the slow request to end
    bc.close()
    raw = insert_ids(collector.messages("track"))
    expected = (["warm-up0"] + [f"parent-a{i}" for i in range(20)]
                + [f"parent-b{i}" for i in range(20)] + [f"child{i}" for i in range(30)])
    assert sorted(raw) == sorted(expected)  # each exactly once: no parent event twice


CHILD = textwrap.dedent("""
    import json, os, sys, time
    from consumers.background import BackgroundConsumer
    from consumers.buffered import BufferedConsumer
    from consumers.retry import RetryPolicy

    url, spool, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    retry = RetryPolicy(max_attempts=1, max_elapsed=0.1, initial_backoff=0.01, max_backoff=0.01)
    bc = BackgroundConsumer(BufferedConsumer(api_host=url, retry=retry), spool=spool,
                            max_queue=50, max_probe_interval=60.0, atexit_drain=False)
    for i in range(n):
        bc.send("event", json.dumps({"event": "Tested", "properties": {
            "token": "tok", "distinct_id": "u", "time": 1700000000000 + i,
            "$insert_id": f"orphan{i}"}}))
    while bc.stats()["spooled"] < n:
        time.sleep(0.05)
    print("spooled", flush=True)
    time.sleep(3600)
""")


def test_spool_left_by_a_killed_process_is_replayed_by_the_next(
    collector: Any, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    collector.fail_next(10**9, 503)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", CHILD, collector.url, str(spool), "500"],
                             stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "spooled"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(WAIT)
    assert collector.unique("track") == []
    collector.clear_faults()  # the outage ends; what was accepted stays
    with BackgroundConsumer(buffered(collector), spool=spool) as bc:
        assert bc.flush(WAIT)
    assert sorted(insert_ids(collector.unique("track"))) == sorted(
        f"orphan{i}" for i in range(500))
    assert [p for p in spool.iterdir()] == []
