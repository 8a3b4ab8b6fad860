"""replay into BufferedConsumer over real HTTP to the local collector, including SIGKILL mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from consumers.file import FileConsumer
from consumers.replaying import replay

ROOT = Path(__file__).resolve().parents[1]


def event(n: int) -> str:
    return json.dumps({"event": "Tick", "properties": {
        "token": "tok", "distinct_id": f"u{n % 97}", "time": 1700000000000 + n,
        "$insert_id": f"id-{n}", "n": n}})


def write_log(path: Path, count: int) -> None:
    with FileConsumer(path) as log:
        for n in range(count):
            log.send("event", event(n))


def checkpoint_line(path: Path) -> int:
    try:
        return int(json.loads(path.read_text())["files"]["a.log"]["line"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def settled_count(collector: Any, quiet: float = 0.3) -> int:
    """How many /track messages the collector holds, once none arrived for ``quiet`` seconds."""
    count = len(collector.messages("track"))
    while True:
        time.sleep(quiet)
        now = len(collector.messages("track"))
        if now == count:
            return count
        count = now


def start_replay(log: Path, url: str, batch_size: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXPANEL_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-m", "consumers", "replay", str(log), "--api-host", url,
         "--batch-size", str(batch_size)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_replay_killed_mid_run_loses_nothing_and_dedup_makes_it_exactly_once(
    tmp_path: Path, collector: Any,
) -> None:
    n = 1500
    log = tmp_path / "a.log"
    write_log(log, n)
    checkpoint = tmp_path / "a.log.checkpoint"
    collector.delay_next(1000, 0.03, path="/track")
    proc = start_replay(log, collector.url, batch_size=25)
    deadline = time.monotonic() + 90
    while checkpoint_line(checkpoint) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    confirmed = checkpoint_line(checkpoint)
    assert 300 <= confirmed < n  # killed with work left
    before = settled_count(collector)  # a request the killed process sent may land late
    assert before >= confirmed  # everything confirmed had reached the service

    rerun = start_replay(log, collector.url, batch_size=25)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out + err
    assert f"sent={n - confirmed} " in out  # resumed right after the last confirmed batch
    raw = collector.messages("track")
    assert len(raw) == before + n - confirmed >= n  # raw: a resend or two is allowed
    unique = collector.unique("track")
    assert len(unique) == n  # after dedup on $insert_id: every event exactly once
    assert sorted(m["properties"]["n"] for m in unique) == list(range(n))


def test_in_process_replay_into_buffered_consumer(tmp_path: Path, collector: Any) -> None:
    from consumers import BufferedConsumer

    log = tmp_path / "a.log"
    write_log(log, 777)
    with BufferedConsumer(api_host=collector.url, max_batch=100) as sink:
        result = replay(log, sink, batch_size=100)
    assert result.ok and result.sent == 777
    assert [m["properties"]["n"] for m in collector.messages("track")] == list(range(777))


def test_failed_batch_is_not_half_held_and_resumes(tmp_path: Path, collector: Any) -> None:
    from consumers import BufferedConsumer, RetryPolicy

    log = tmp_path / "a.log"
    write_log(log, 300)
    sink = BufferedConsumer(api_host=collector.url, max_batch=100,
                            retry=RetryPolicy(max_attempts=1))
    collector.fail_next(50, status=503, path="/track")
    # first batch (1 request) fails at once: nothing confirmed
    result = replay(log, sink, batch_size=100)
    assert result.error is not None and result.sent == 0
    assert sink.pending() == 0  # cleared via take_pending(): nothing half-held
    collector.reset()
    again = replay(log, sink, batch_size=100)
    sink.close()
    assert again.ok and again.sent == 300
    assert len(collector.unique("track")) == 300
