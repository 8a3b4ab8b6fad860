"""FileConsumer: whole lines under concurrency, crash safety, rotation, permissions."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from consumers.file import FileConsumer, list_segments
from consumers.replaying import replay
from tests.small_disk import fill

ROOT = Path(__file__).resolve().parents[1]


def event(n: int, *, writer: str = "w", pad: int = 0) -> str:
    props = {"token": "tok", "distinct_id": f"u{n}", "time": 1700000000000 + n,
             "$insert_id": f"{writer}-{n}", "writer": writer, "n": n}
    if pad:
        props["pad"] = "x" * pad
    return json.dumps({"event": "Tick", "properties": props})


def read_lines(path: Path) -> list[list[str]]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.decode().splitlines()]


def writer_process(target: str, writer: str, count: int, *, rotate: int = 0,
                   pad_every: int = 0, go: str = "") -> subprocess.Popen[bytes]:
    """A separate process appending ``count`` events (forever if < 0), after ``go`` exists."""
    code = f"""
import json, os, sys, time
sys.path.insert(0, {str(ROOT)!r})
while {go!r} and not os.path.exists({go!r}):
    time.sleep(0.005)
from consumers.file import FileConsumer
from tests.test_file import event
count = {count}
with FileConsumer({target!r}, rotate_bytes={rotate or None!r}) as log:
    n = 0
    while count < 0 or n < count:
        pad = 20000 if {pad_every} and n % {pad_every or 1} == 0 else 0
        log.send("event", event(n, writer={writer!r}, pad=pad))
        n += 1
"""
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)


class ListSink:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def __call__(self, message_type: str, message_json: str) -> None:
        self.items.append((message_type, message_json))


def test_line_is_the_ruby_documented_form(tmp_path: Path) -> None:
    log = tmp_path / "mixpanel.log"
    message = event(1)
    with FileConsumer(log) as consumer:
        consumer.send("event", message)
        consumer("profile_update", '{"$token":"tok","$distinct_id":"u1","$set":{"a":1}}')
    assert log.read_text() == json.dumps(["event", message]) + "\n" + json.dumps(
        ["profile_update", '{"$token":"tok","$distinct_id":"u1","$set":{"a":1}}']
    ) + "\n"


def test_new_log_is_private_to_its_owner(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with FileConsumer(tmp_path / "a.log") as a:
            a.send("event", event(1))
        with FileConsumer(tmp_path / "spool", rotate_bytes=100) as s:
            for n in range(5):
                s.send("event", event(n))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.log").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    for _, path in list_segments(tmp_path / "spool"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_eight_threads_write_only_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / "threads.log"
    per_thread = 2000
    with FileConsumer(log) as consumer:
        def work(name: str) -> None:
            for n in range(per_thread):
                consumer.send("event", event(n, writer=name, pad=6000 if n % 50 == 0 else 0))

        threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    lines = read_lines(log)
    assert len(lines) == 8 * per_thread
    seen = {(json.loads(m)["properties"]["writer"], json.loads(m)["properties"]["n"])
            for _, m in lines}
    assert len(seen) == 8 * per_thread


def test_four_processes_write_only_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / "procs.log"
    per_process = 5000
    go = tmp_path / "go"
    procs = [writer_process(str(log), f"p{i}", per_process, pad_every=97, go=str(go))
             for i in range(4)]
    time.sleep(0.5)
    go.touch()  # all four start appending at about the same moment
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    lines = read_lines(log)
    assert len(lines) == 4 * per_process
    per_writer: dict[str, list[int]] = {}
    for _, m in lines:
        props = json.loads(m)["properties"]
        per_writer.setdefault(props["writer"], []).append(props["n"])
    # each process's lines are whole and in that process's order
    assert per_writer == {f"p{i}": list(range(per_process)) for i in range(4)}


def test_writer_killed_mid_stream_leaves_a_log_that_replays_to_its_last_whole_line(
    tmp_path: Path,
) -> None:
    log = tmp_path / "killed.log"
    proc = writer_process(str(log), "k", -1, pad_every=13)
    deadline = time.monotonic() + 60
    while (not log.exists() or log.stat().st_size < 400_000) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    data = log.read_bytes()
    whole = data.count(b"\n")
    sink = ListSink()
    result = replay(log, sink, batch_size=100)
    assert result.error is None and result.corrupt == 0
    assert result.sent == whole == len(sink.items)
    assert result.torn == (0 if data.endswith(b"\n") else 1)
    assert [json.loads(m)["properties"]["n"] for _, m in sink.items] == list(range(whole))


def test_fragment_left_by_a_killed_writer_stays_on_its_own_line(tmp_path: Path) -> None:
    log = tmp_path / "torn.log"
    with FileConsumer(log) as consumer:
        consumer.send("event", event(1))
    with open(log, "ab") as f:
        f.write(json.dumps(["event", event(2)]).encode()[:30])  # a line cut short
    with FileConsumer(log) as consumer:
        consumer.send("event", event(3))
    sink = ListSink()
    result = replay(log, sink)
    assert [json.loads(m)["properties"]["n"] for _, m in sink.items] == [1, 3]
    assert result.corrupt == 1 and result.examples[0]["line"] == 2


def test_a_write_that_fails_on_a_full_disk_leaves_no_fragment(small_disk: Path) -> None:
    log = small_disk / "events.log"
    consumer = FileConsumer(log)
    filler = fill(small_disk, leave=3 * 4096)
    accepted: list[int] = []
    refused = 0
    for n in range(1000):
        try:
            consumer.send("event", event(n, pad=(n % 4) * 450))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
            refused += 1
            if refused == 3:
                break
        else:
            accepted.append(n)
    assert refused == 3 and len(accepted) > 10
    filler.unlink()  # space again: the next line must be whole, and so must the log
    consumer.send("event", event(5000))
    consumer.close()
    sink = ListSink()
    result = replay(log, sink)
    assert result.corrupt == 0 and result.torn == 0
    assert [json.loads(m)["properties"]["n"] for _, m in sink.items] == [*accepted, 5000]


def test_rotation_produces_segments_that_replay_in_order(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with FileConsumer(str(spool) + "/", rotate_bytes=2000) as consumer:
        for n in range(300):
            consumer.send("event", event(n))
        assert consumer.current_path.endswith(".log")
    segments = list_segments(spool)
    assert len(segments) > 10
    assert [os.path.basename(p) for _, p in segments[:2]] == ["events-000001.log",
                                                             "events-000002.log"]
    for _, path in segments[:-1]:
        assert os.path.getsize(path) < 2000 + 300
    sink = ListSink()
    result = replay(spool, sink, batch_size=7)
    assert result.ok and result.sent == 300
    assert [json.loads(m)["properties"]["n"] for _, m in sink.items] == list(range(300))


def test_rotation_with_several_writer_processes_loses_nothing(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    go = tmp_path / "go"
    procs = [writer_process(str(spool), f"p{i}", 1500, rotate=50_000, go=str(go))
             for i in range(4)]
    time.sleep(0.5)
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    segments = list_segments(spool)
    numbers = [n for n, _ in segments]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) > 5
    sink = ListSink()
    result = replay(spool, sink, batch_size=250)
    assert result.ok and result.sent == 6000
    keys = [(json.loads(m)["properties"]["writer"], json.loads(m)["properties"]["n"])
            for _, m in sink.items]
    assert sorted(keys) == sorted((f"p{i}", n) for i in range(4) for n in range(1500))


def test_reopening_a_spool_appends_to_its_newest_segment(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with FileConsumer(str(spool) + "/", rotate_bytes=1000) as consumer:
        for n in range(30):
            consumer.send("event", event(n))
        newest = consumer.current_path
    with FileConsumer(spool, rotate_bytes=1000) as consumer:
        assert consumer.current_path == newest
        consumer.send("event", event(30))
    sink = ListSink()
    replay(spool, sink)
    assert [json.loads(m)["properties"]["n"] for _, m in sink.items] == list(range(31))


@pytest.mark.parametrize("policy", ["none", "batch", "line"])
def test_every_fsync_policy_writes_the_same_lines(tmp_path: Path, policy: str) -> None:
    log = tmp_path / f"{policy}.log"
    with FileConsumer(log, fsync=policy) as consumer:
        for n in range(20):
            consumer.send("event", event(n))
        consumer.flush()
        consumer.send("event", event(20))
    assert len(read_lines(log)) == 21


def test_bad_arguments_raise_at_once(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync"):
        FileConsumer(tmp_path / "a.log", fsync="always")
    (tmp_path / "a.log").write_text("")
    with pytest.raises(ValueError, match="spool folder"):
        FileConsumer(tmp_path / "a.log", rotate_bytes=100)
    with pytest.raises(ValueError, match="rotate_bytes"):
        FileConsumer(tmp_path, rotate_bytes=0)
    with FileConsumer(tmp_path / "b.log") as consumer:
        with pytest.raises(TypeError, match="message_json"):
            consumer.send("event", {"event": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="closed"):
        consumer.send("event", event(1))
    consumer.close()  # twice is fine
