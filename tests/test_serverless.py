"""Serverless: a simulated runtime freezes the process between invocations; nothing is lost.

The runtime is a real child process: a loop that calls a decorated handler
with a Lambda-style ``context``, then stops itself (SIGSTOP) as Lambda
freezes a sandbox.  While it is frozen the collector closes (or later
resets) the idle keep-alive connection, or starts failing; then the test
thaws it (SIGCONT).  At the end the collector holds every event exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from consumers.buffered import BufferedConsumer
from consumers.serverless import Invocations

ROOT = str(Path(__file__).resolve().parent.parent)
PER = 40

RUNTIME = textwrap.dedent("""
    import json, os, signal, sys, time
    from consumers.buffered import BufferedConsumer
    from consumers.retry import RetryPolicy
    from consumers.serverless import Invocations

    url, spool, rounds, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    # no retries at all: a dead connection may cost nothing, a failure spills at once
    consumer = BufferedConsumer(api_host=url, retry=RetryPolicy(max_attempts=1))
    invocations = Invocations(consumer, spool=spool, margin=0.3)

    class Context:  # what the Lambda runtime hands a handler
        def __init__(self, seconds):
            self._end = time.monotonic() + seconds
        def get_remaining_time_in_millis(self):
            return int(max(0.0, self._end - time.monotonic()) * 1000)

    @invocations
    def handler(event, context):
        for i in range(per):
            consumer.send("event", json.dumps({"event": "Invoked", "properties": {
                "token": "tok", "distinct_id": "u", "time": int(time.time() * 1000),
                "$insert_id": f"r{event}-{i}"}}))
        return "ok"

    for k in range(rounds):
        result = handler(k, Context(3.0))
        print(json.dumps({"round": k, "result": result, "spilled": invocations.spilled,
                          "resent": invocations.resent}), flush=True)
        if k < rounds - 1:
            os.kill(os.getpid(), signal.SIGSTOP)  # frozen until the next invocation
""")


def wait_stopped(child: subprocess.Popen[str]) -> None:
    _, status = os.waitpid(child.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), status


def test_frozen_between_invocations_every_event_arrives_once(collector: Any, tmp_path: Path):
    spool = tmp_path / "spool"
    rounds = 5
    env = dict(os.environ, PYTHONPATH=ROOT)
    child = subprocess.Popen(
        [sys.executable, "-c", RUNTIME, collector.url, str(spool), str(rounds), str(PER)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reports = []
    try:
        collector.close_idle(0.2)  # the server's keep-alive timeout passes during each freeze
        for k in range(rounds):
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line, child.stderr.read() if child.stderr else ""
            reports.append(json.loads(line))
            if k == rounds - 1:
                break
            wait_stopped(child)
            if k == 1:  # round 2 meets a destination that fails: its events are spilled
                collector.fail_next(10**6, 503)
            elif k == 2:  # the destination is back; a NAT forgets the connection meanwhile
                collector.clear_faults()
                collector.close_idle(0.2, reset=True, when="request")
            time.sleep(0.5)  # frozen longer than the idle timeout
            os.kill(child.pid, signal.SIGCONT)
        assert child.wait(60) == 0, child.stderr.read() if child.stderr else ""
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert [r["result"] for r in reports] == ["ok"] * rounds
    assert reports[2]["spilled"] == PER and reports[3]["resent"] == PER
    assert reports[-1]["spilled"] == PER  # nothing else needed the disk
    expected = sorted(f"r{k}-{i}" for k in range(rounds) for i in range(PER))
    ids = [m["properties"]["$insert_id"] for m in collector.messages("track")]
    assert sorted(ids) == expected  # raw: not one duplicate, so also after dedup
    assert sorted(m["properties"]["$insert_id"] for m in collector.unique("track")) == expected
    assert collector.idle_closed() >= rounds - 1
    assert list(spool.glob("spill-*")) == []


def test_a_deadline_in_the_past_spills_everything_and_the_next_invocation_sends_it(
        collector: Any, tmp_path: Path):
    consumer = BufferedConsumer(api_host=collector.url)
    invocations = Invocations(consumer, spool=tmp_path)
    collector.fail_next(10**6, 503)
    with invocations.invocation(deadline=time.monotonic() + 0.2):
        consumer.send("event", json.dumps({"event": "Late", "properties": {
            "token": "tok", "distinct_id": "u", "time": int(time.time() * 1000),
            "$insert_id": "late"}}))
    assert invocations.spilled == 1 and len(list(tmp_path.glob("spill-*.jsonl"))) == 1
    collector.clear_faults()
    with invocations.invocation():  # no context: the default budget
        pass
    assert [m["properties"]["$insert_id"] for m in collector.messages("track")] == ["late"]
    assert list(tmp_path.glob("spill-*")) == []


def test_bad_arguments_are_refused_at_once(tmp_path: Path):
    with pytest.raises(TypeError, match="send"):
        Invocations(lambda t, m: None)
    with pytest.raises(ValueError, match="margin"):
        Invocations(BufferedConsumer(), margin=-1)
    with pytest.raises(ValueError, match="budget"):
        Invocations(BufferedConsumer(), budget=0)
