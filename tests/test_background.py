"""BackgroundConsumer with an in-process sink: queueing, overflow policies, errors, close.

These tests control the wrapped sink directly (it can be paused or made to
fail) so every queue state is reached deterministically; the tests in
test_background_http.py run the same consumer against the real collector.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from consumers.background import BackgroundConsumer, QueueFullError
from consumers.errors import RefusedError, TransportError

WAIT = 30.0  # generous: the machine is shared
ROOT = str(Path(__file__).resolve().parents[1])


class Sink:
    """A buffered sink: ``flush`` delivers, can be paused (``gate``) or made to fail."""

    max_batch = 10

    def __init__(self) -> None:
        self.buffer: list[tuple[str, str]] = []
        self.delivered: list[tuple[str, str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.failures: list[Exception] = []
        self.closed = False
        self.forked = 0

    def send(self, message_type: str, message_json: str) -> None:
        self.entered.set()
        self.gate.wait(WAIT)
        self.buffer.append((message_type, message_json))

    def flush(self) -> None:
        if self.failures:
            error = self.failures.pop(0)
            if isinstance(error, RefusedError) and error.status == 400:
                # a refusal of the first message only
                refused = self.buffer[:1]
                raise RefusedError("refused", status=400, messages=refused,
                                   pending=len(self.buffer))
            raise error
        self.delivered.extend(self.buffer)
        self.buffer = []

    def take_pending(self) -> list[tuple[str, str]]:
        taken, self.buffer = self.buffer, []
        return taken

    def close(self) -> None:
        self.flush()
        self.closed = True


def messages(n: int, prefix: str = "m") -> list[tuple[str, str]]:
    return [("event", f'{{"n": "{prefix}{i}"}}') for i in range(n)]


def test_send_returns_while_the_sink_is_stuck() -> None:
    sink = Sink()
    sink.gate.clear()
    with BackgroundConsumer(sink, overflow="drop") as bc:
        for m in messages(100):
            bc.send(*m)  # the worker is parked inside sink.send; these only queue
        assert sink.entered.wait(WAIT)
        assert bc.stats()["enqueued"] == 100
        sink.gate.set()
        assert bc.flush(WAIT)
    assert sorted(sink.delivered) == sorted(messages(100))


def test_calling_the_consumer_is_send() -> None:
    sink = Sink()
    with BackgroundConsumer(sink) as bc:
        bc("event", "{}")
        assert bc.flush(WAIT)
    assert sink.delivered == [("event", "{}")]


def test_close_delivers_everything_and_closes_inner() -> None:
    sink = Sink()
    bc = BackgroundConsumer(sink, flush_interval=60.0)
    for m in messages(25):
        bc.send(*m)
    bc.close()
    assert sorted(sink.delivered) == sorted(messages(25))
    assert sink.closed
    stats = bc.stats()
    assert stats["enqueued"] == stats["delivered"] == 25


def test_messages_from_many_threads_each_delivered_once() -> None:
    sink = Sink()
    bc = BackgroundConsumer(sink, max_queue=100_000)

    def produce(k: int) -> None:
        for m in messages(2000, prefix=f"t{k}-"):
            bc.send(*m)

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bc.flush(WAIT)
    bc.close()
    assert len(sink.delivered) == 8000
    assert len(set(sink.delivered)) == 8000


def test_drop_policy_counts_and_reports() -> None:
    sink = Sink()
    sink.gate.clear()
    reports: list[tuple[BaseException, list[tuple[str, str]]]] = []
    bc = BackgroundConsumer(sink, max_queue=5, overflow="drop",
                            on_error=lambda e, m: reports.append((e, m)))
    bc.send("event", "first")
    assert sink.entered.wait(WAIT)  # the worker holds "first"; the queue is empty
    for m in messages(8):
        bc.send(*m)
    assert bc.stats()["dropped"] == 3
    assert bc.stats()["queued"] == 5
    sink.gate.set()
    assert bc.flush(WAIT)
    bc.close()
    dropped = [m for _, batch in reports for m in batch]
    assert dropped == messages(8)[5:]
    assert all(isinstance(e, QueueFullError) for e, _ in reports)
    assert len(sink.delivered) == 6


def test_block_policy_waits_for_room() -> None:
    sink = Sink()
    sink.gate.clear()
    bc = BackgroundConsumer(sink, max_queue=2, overflow="block", block_timeout=WAIT)
    bc.send("event", "first")
    assert sink.entered.wait(WAIT)
    bc.send("event", "a")
    bc.send("event", "b")
    done = threading.Event()

    def blocked_send() -> None:
        bc.send("event", "c")
        done.set()

    thread = threading.Thread(target=blocked_send)
    thread.start()
    assert not done.wait(0.2)  # still waiting for room
    sink.gate.set()
    assert done.wait(WAIT)
    thread.join()
    bc.close()
    assert bc.stats()["dropped"] == 0
    assert sorted(m for _, m in sink.delivered) == ["a", "b", "c", "first"]


def test_block_policy_times_out_into_a_reported_drop() -> None:
    sink = Sink()
    sink.gate.clear()
    reports: list[list[tuple[str, str]]] = []
    bc = BackgroundConsumer(sink, max_queue=1, overflow="block", block_timeout=0.05,
                            on_error=lambda e, m: reports.append(m))
    bc.send("event", "first")
    assert sink.entered.wait(WAIT)
    bc.send("event", "queued")
    bc.send("event", "late")  # no room within block_timeout
    assert bc.stats()["dropped"] == 1
    sink.gate.set()
    bc.close()
    assert reports == [[("event", "late")]]


def test_on_error_exceptions_do_not_stop_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    sink.failures = [RefusedError("bad", status=400)]

    def explode(error: BaseException, batch: list[tuple[str, str]]) -> None:
        raise RuntimeError("handler bug")

    with BackgroundConsumer(sink, on_error=explode) as bc:
        for m in messages(3):
            bc.send(*m)
        assert bc.flush(WAIT)
        for m in messages(3, prefix="after"):
            bc.send(*m)
        assert bc.flush(WAIT)
    assert "on_error raised" in caplog.text
    assert len(sink.delivered) == 5  # one refused, the rest delivered
    assert bc.stats()["failed"] == 1


def test_refused_messages_are_reported_the_rest_delivered() -> None:
    sink = Sink()
    sink.failures = [RefusedError("bad", status=400)]
    reports: list[tuple[BaseException, list[tuple[str, str]]]] = []
    with BackgroundConsumer(sink, on_error=lambda e, m: reports.append((e, m))) as bc:
        for m in messages(4):
            bc.send(*m)
        assert bc.flush(WAIT)
    assert [m for _, m in reports] == [messages(1)]
    assert sorted(sink.delivered) == sorted(messages(4)[1:])
    stats = bc.stats()
    assert (stats["delivered"], stats["failed"]) == (3, 1)


def test_outage_without_spool_holds_messages_and_recovers() -> None:
    sink = Sink()
    sink.failures = [TransportError("down")] * 3
    bc = BackgroundConsumer(sink, overflow="drop", probe_interval=0.01)
    for m in messages(30):
        bc.send(*m)
    assert bc.flush(WAIT)
    bc.close()
    assert sorted(sink.delivered) == sorted(messages(30))
    assert bc.stats()["failed"] == 0


def test_flush_times_out_while_the_sink_is_stuck() -> None:
    sink = Sink()
    sink.gate.clear()
    bc = BackgroundConsumer(sink)
    bc.send("event", "x")
    assert sink.entered.wait(WAIT)
    assert bc.flush(0.05) is False
    sink.gate.set()
    assert bc.flush(WAIT) is True
    bc.close()


def test_send_after_close_is_dropped_and_reported() -> None:
    sink = Sink()
    reports: list[list[tuple[str, str]]] = []
    bc = BackgroundConsumer(sink, on_error=lambda e, m: reports.append(m))
    bc.close()
    bc.send("event", "late")
    assert bc.stats()["dropped"] == 1
    assert reports == [[("event", "late")]]
    assert sink.delivered == []


def test_a_plain_callable_is_a_valid_inner() -> None:
    got: list[tuple[str, str]] = []
    with BackgroundConsumer(lambda t, m: got.append((t, m))) as bc:
        bc.send("event", "x")
    assert got == [("event", "x")]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="overflow"):
        BackgroundConsumer(Sink(), overflow="later")
    with pytest.raises(ValueError, match="max_queue"):
        BackgroundConsumer(Sink(), max_queue=0)
    with pytest.raises(TypeError, match="inner"):
        BackgroundConsumer(object())


class FileSink(Sink):
    """Delivers by appending lines to a real file, so another process's deliveries show."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def flush(self) -> None:
        with open(self.path, "a") as f:
            for _, m in self.buffer:
                f.write(f"{os.getpid()} {m}\n")
        self.buffer = []

    def reset_after_fork(self) -> None:
        self.forked += 1
        self.buffer = []


def test_forked_child_starts_empty_and_delivers_its_own(tmp_path: Any) -> None:
    out = str(tmp_path / "delivered.txt")
    sink = FileSink(out)
    sink.gate.clear()
    bc = BackgroundConsumer(sink, overflow="block")
    bc.send("event", "parent-0")
    assert sink.entered.wait(WAIT)  # the worker is stuck delivering parent-0
    for i in range(1, 5):
        bc.send("event", f"parent-{i}")  # these wait in the parent's queue at fork time
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sink.gate.set()
            child_ok = sink.forked == 1 and bc.stats()["queued"] == 0
            for i in range(3):
                bc.send("event", f"child-{i}")
            code = 0 if (bc.flush(WAIT) and child_ok) else 2
            bc.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    sink.gate.set()
    bc.close()
    lines = Path(out).read_text().split()
    by_pid = {}
    for owner, message in zip(lines[::2], lines[1::2]):
        by_pid.setdefault(owner, []).append(message)
    assert sorted(by_pid[str(os.getpid())]) == [f"parent-{i}" for i in range(5)]
    assert sorted(by_pid[str(pid)]) == [f"child-{i}" for i in range(3)]


EXIT_SCRIPT = """
import sys
import tempfile
from consumers.background import BackgroundConsumer

class Sink:
    def __init__(self):
        self.buffer = []
    def send(self, t, m):
        self.buffer.append(m)
    def flush(self):
        with open(sys.argv[1], "a") as f:
            f.writelines(m + "\\n" for m in self.buffer)
        self.buffer = []
    def close(self):
        self.flush()

bc = BackgroundConsumer(Sink(), flush_interval=3600, atexit_drain=sys.argv[2] == "on")
for i in range(1000):
    bc.send("event", f"m{i}")
"""


@pytest.mark.parametrize("drain", ["on", "off"])
def test_normal_exit_drains_the_queue_unless_turned_off(tmp_path: Any, drain: str) -> None:
    out = tmp_path / "out.txt"
    env = dict(os.environ, PYTHONPATH=ROOT)
    subprocess.run([sys.executable, "-c", EXIT_SCRIPT, str(out), drain], env=env, check=True,
                   timeout=WAIT)
    lines = out.read_text().split() if out.exists() else []
    if drain == "on":
        assert lines == [f"m{i}" for i in range(1000)]
    else:
        assert len(lines) < 1000


def test_spill_policy_writes_to_the_spool_and_replays_it(tmp_path: Any) -> None:
    sink = Sink()
    sink.gate.clear()
    spool = tmp_path / "spool"
    # the worker is stuck in a delivery longer than block_timeout: callers spill themselves
    bc = BackgroundConsumer(sink, max_queue=5, spool=spool, block_timeout=0.05)
    bc.send("event", "first")
    assert sink.entered.wait(WAIT)
    for m in messages(100):
        bc.send(*m)
    stats = bc.stats()
    assert (stats["queued"], stats["spilled"], stats["spooled"]) == (5, 95, 95)
    assert stats["enqueued"] == 101
    assert bc.spool_path is not None and bc.spool_path.parent == spool
    assert any(p.is_file() and p.name != ".lock" for p in spool.rglob("*"))
    sink.gate.set()
    assert bc.flush(WAIT)
    stats = bc.stats()
    assert (stats["replayed"], stats["spooled"], stats["delivered"]) == (95, 0, 101)
    bc.close()
    assert sorted(sink.delivered) == sorted([("event", "first"), *messages(100)])
    assert list(spool.iterdir()) == []  # an empty spool folder is removed on close


def test_outage_spills_failed_batches_and_replays_them(tmp_path: Any) -> None:
    sink = Sink()
    sink.failures = [TransportError("down")] * 4
    bc = BackgroundConsumer(sink, spool=tmp_path, probe_interval=0.01)
    for m in messages(40):
        bc.send(*m)
    assert bc.flush(WAIT)
    bc.close()
    stats = bc.stats()
    assert stats["spilled"] > 0 and stats["replayed"] > 0
    assert (stats["spooled"], stats["delivered"], stats["failed"]) == (0, 40, 0)
    assert sorted(sink.delivered) == sorted(messages(40))


def test_default_spool_is_a_private_temp_folder_removed_when_empty() -> None:
    sink = Sink()
    sink.gate.clear()
    bc = BackgroundConsumer(sink, max_queue=1, block_timeout=0.05)
    bc.send("event", "first")
    assert sink.entered.wait(WAIT)
    for m in messages(3):
        bc.send(*m)
    folder = bc.spool_path
    assert folder is not None and folder.is_dir()
    assert folder.parent == Path(tempfile.gettempdir())
    assert folder.name.startswith(f"tracking-spool-{os.getpid()}-")
    sink.gate.set()
    bc.close()
    assert not folder.exists()
    assert len(sink.delivered) == 4


def test_unusable_spool_falls_back_to_block(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    sink = Sink()
    sink.gate.clear()
    bc = BackgroundConsumer(sink, max_queue=1, spool=not_a_dir, block_timeout=0.05)
    bc.send("event", "first")
    assert sink.entered.wait(WAIT)
    bc.send("event", "queued")
    bc.send("event", "late")
    assert "falling back to overflow='block'" in caplog.text
    assert bc.stats()["dropped"] == 1
    sink.gate.set()
    bc.close()
