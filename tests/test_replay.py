"""replay(): line forms, rejects, torn lines, checkpoints, confirmation protocol (real files)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Optional

import pytest

from consumers._replay.checkpoint import Checkpoint
from consumers.errors import FailedRecord, RecordsRejectedError, TransportError
from consumers.file import FileConsumer
from consumers.replaying import (
    CorruptLineError,
    ReplayInProgressError,
    ReplayProgress,
    parse_line,
    replay,
)


def event(n: int) -> str:
    return json.dumps({"event": "Tick", "properties": {
        "token": "tok", "distinct_id": f"u{n}", "time": 1700000000000 + n,
        "$insert_id": f"id-{n}", "n": n}})


def write_log(path: Path, count: int, start: int = 0) -> None:
    with FileConsumer(path) as log:
        for n in range(start, start + count):
            log.send("event", event(n))


def numbers(items: list[tuple[str, str]]) -> list[int]:
    return [json.loads(m)["properties"]["n"] for _, m in items]


class RecordingSink:
    """A buffered sink: flush() "delivers" what was sent since the last flush.

    ``fail_flush_at``: the flush calls (1-based) that raise ``error`` instead.
    """

    def __init__(self, *, fail_flush_at: tuple[int, ...] = (), error: Optional[Exception] = None):
        self.buffer: list[tuple[str, str]] = []
        self.delivered: list[tuple[str, str]] = []
        self.flushes = 0
        self.fail_flush_at = fail_flush_at
        self.error = error
        self.taken: list[tuple[str, str]] = []

    def send(self, message_type: str, message_json: str) -> None:
        self.buffer.append((message_type, message_json))

    __call__ = send

    def flush(self) -> None:
        self.flushes += 1
        if self.flushes in self.fail_flush_at:
            assert self.error is not None
            raise self.error
        self.delivered += self.buffer
        self.buffer = []

    def take_pending(self) -> list[tuple[str, str]]:
        taken, self.buffer = self.buffer, []
        self.taken += taken
        return taken


def test_replay_delivers_every_line_in_order_and_unchanged(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write_log(log, 1234)
    sink = RecordingSink()
    result = replay(log, sink, batch_size=100)
    assert result.ok and result.sent == 1234 and result.batches == 13
    assert sink.delivered == [("event", event(n)) for n in range(1234)]
    assert sink.flushes == 13


def test_ruby_library_lines_replay_unwrapped_without_api_key(tmp_path: Path) -> None:
    log = tmp_path / "ruby.log"
    data = {"event": "Sent Message", "properties": {"distinct_id": "u1", "token": "tok",
                                                    "$insert_id": "r1", "time": 1700000000}}
    profile = {"$token": "tok", "$distinct_id": "u1", "$set": {"Plan": "Premium"}}
    with open(log, "w") as f:
        # what `tracker_log.write([type, message].to_json + "\n")` writes in Ruby
        f.write(json.dumps(["event", json.dumps({"data": data})]) + "\n")
        f.write(json.dumps(["profile_update",
                            json.dumps({"data": profile, "api_key": "SECRETKEY"})]) + "\n")
        f.write(json.dumps(["import", json.dumps({"data": data, "api_key": "SECRETKEY"})]) + "\n")
        f.write(json.dumps(["group_update", {"$token": "tok", "$group_key": "Company",
                                             "$group_id": "Acme", "$set": {"a": 1}}]) + "\n")
    sink = RecordingSink()
    result = replay(log, sink)
    assert result.ok and result.sent == 4
    types = [t for t, _ in sink.delivered]
    assert types == ["event", "profile_update", "import", "group_update"]
    decoded = [json.loads(m) for _, m in sink.delivered]
    assert decoded[0] == data and decoded[1] == profile and decoded[2] == data
    assert decoded[3]["$group_id"] == "Acme"
    assert all("SECRETKEY" not in m for _, m in sink.delivered)
    for path in tmp_path.iterdir():
        if path != log:
            assert "SECRETKEY" not in path.read_text()


def test_parse_line_keeps_own_messages_byte_for_byte() -> None:
    message = '{"event":"x",  "properties": {"b": 1, "a": "é"}}'
    assert parse_line(json.dumps(["event", message])) == ("event", message)
    with pytest.raises(CorruptLineError, match="unknown message type"):
        parse_line('["purchase", "{}"]')
    with pytest.raises(CorruptLineError, match="not a JSON object"):
        parse_line('["event", "[1, 2]"]')


def test_corrupt_lines_go_to_the_reject_file_with_line_numbers(tmp_path: Path) -> None:
    log = tmp_path / "mixed.log"
    write_log(log, 3)
    with open(log, "a") as f:
        f.write("this is not json\n")
        f.write(json.dumps(["event"]) + "\n")
        f.write("\n")
        f.write(json.dumps(["event", json.dumps({"data": "x", "api_key": "SECRETKEY"})[:-1]])
                + "\n")
    write_log(log, 2, start=3)
    sink = RecordingSink()
    result = replay(log, sink)
    assert numbers(sink.delivered) == [0, 1, 2, 3, 4]
    assert result.corrupt == 3 and result.empty == 1 and not result.ok
    rejects = [json.loads(line) for line in (tmp_path / "mixed.log.rejects").read_text()
               .splitlines()]
    assert [r["line"] for r in rejects] == [4, 5, 7]
    assert rejects[0]["raw"] == "this is not json" and rejects[0]["segment"] == "mixed.log"
    assert all("corrupt line" in r["reason"] for r in rejects)
    assert "SECRETKEY" not in (tmp_path / "mixed.log.rejects").read_text()
    assert stat.S_IMODE((tmp_path / "mixed.log.rejects").stat().st_mode) == 0o600


def test_torn_last_line_is_reported_and_picked_up_once_complete(tmp_path: Path) -> None:
    log = tmp_path / "torn.log"
    write_log(log, 5)
    line = json.dumps(["event", event(5)]) + "\n"
    with open(log, "a") as f:
        f.write(line[:25])
    sink = RecordingSink()
    first = replay(log, sink)
    assert first.sent == 5 and first.torn == 1 and first.torn_at == [("torn.log", 6)]
    assert first.error is None and first.corrupt == 0
    with open(log, "a") as f:  # the writer finishes its line
        f.write(line[25:])
    second = replay(log, sink)
    assert second.sent == 1 and second.torn == 0
    assert numbers(sink.delivered) == list(range(6))


def test_checkpoint_resumes_after_the_last_confirmed_batch(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write_log(log, 1000)
    failing = RecordingSink(fail_flush_at=(4,), error=TransportError("connection refused"))
    result = replay(log, failing, batch_size=100)
    assert result.sent == 300 and result.error is not None and "TransportError" in result.error
    assert result.stopped_by == "outage" and result.owed == 100
    assert failing.buffer == [] and numbers(failing.taken) == list(range(300, 400))
    saved = json.loads((tmp_path / "a.log.checkpoint").read_text())
    # read past the failed batch, which is owed: the next run sends it first
    assert saved["files"]["a.log"]["line"] == 400
    assert numbers([(t, m) for t, m, _, _ in saved["owed"]]) == list(range(300, 400))
    sink = RecordingSink()
    again = replay(log, sink, batch_size=100)
    assert again.ok and again.sent == 700 and again.resumed_bytes > 0
    assert numbers(failing.delivered + sink.delivered) == list(range(1000))
    nothing = replay(log, RecordingSink())
    assert nothing.sent == 0 and nothing.ok


def test_refused_records_are_rejected_and_the_rest_count_as_delivered(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write_log(log, 10)
    refused = ("event", event(3))
    error = RecordsRejectedError(
        "1 record refused", status=400,
        failed_records=[FailedRecord(index=3, message="'properties.time' is invalid",
                                     field="properties.time", insert_id="id-3",
                                     record=refused)],
        num_imported=9)
    sink = RecordingSink(fail_flush_at=(1,), error=error)
    result = replay(log, sink, batch_size=10)
    assert result.refused == 1 and result.sent == 9 and result.error is None
    rejects = [json.loads(x) for x in (tmp_path / "a.log.rejects").read_text().splitlines()]
    assert rejects == [{"reason": "refused by the service: 'properties.time' is invalid",
                        "segment": "a.log", "line": 4, "type": "event",
                        "field": "properties.time", "insert_id": "id-3",
                        "message": event(3)}]
    assert json.loads((tmp_path / "a.log.checkpoint").read_text())["files"]["a.log"][
        "line"] == 10


def test_checkpoint_is_replaced_atomically(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write_log(log, 50)
    seen: list[dict[str, object]] = []

    def watch(p: ReplayProgress) -> None:
        # at every progress report the checkpoint on disk is whole JSON, and no temp remains
        seen.append(json.loads((tmp_path / "a.log.checkpoint").read_text()))
        assert [x.name for x in tmp_path.iterdir() if ".tmp" in x.name] == []

    result = replay(log, RecordingSink(), batch_size=10, progress=watch)
    assert result.ok and len(seen) == 5
    assert [s["files"]["a.log"]["line"] for s in seen] == [10, 20, 30, 40, 50]  # type: ignore[index]
    assert stat.S_IMODE((tmp_path / "a.log.checkpoint").stat().st_mode) == 0o600
    # A stale temp file from a killed run never replaces the real checkpoint.
    (tmp_path / "a.log.checkpoint.tmp999").write_text('{"segments": {"a.log": {"off')
    assert replay(log, RecordingSink()).sent == 0


def test_progress_reports_bytes_for_an_eta(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write_log(log, 30)
    reports: list[ReplayProgress] = []
    replay(log, RecordingSink(), batch_size=10, progress=reports.append)
    assert [r.sent for r in reports] == [10, 20, 30]
    assert reports[-1].bytes_done == reports[-1].bytes_total == log.stat().st_size


def test_dry_run_validates_and_counts_but_writes_and_sends_nothing(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write_log(log, 20)
    with open(log, "a") as f:
        f.write("garbage\n")
    sink = RecordingSink()
    result = replay(log, sink, dry_run=True)
    assert result.dry_run and result.sent == 20 and result.corrupt == 1
    assert result.examples == [{"segment": "a.log", "line": 21,
                                "reason": result.examples[0]["reason"]}]
    assert sink.buffer == [] and sink.flushes == 0
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.log"]


def test_one_replay_per_log_at_a_time(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write_log(log, 5)
    with Checkpoint(str(tmp_path / "a.log.checkpoint"), write=True):
        with pytest.raises(ReplayInProgressError):
            replay(log, RecordingSink())
    assert replay(log, RecordingSink()).sent == 5


def test_truncated_log_is_replayed_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write_log(log, 10)
    replay(log, RecordingSink())
    os.truncate(log, 0)
    write_log(log, 3, start=10)
    sink = RecordingSink()
    result = replay(log, sink)
    assert numbers(sink.delivered) == [10, 11, 12]
    assert result.unreachable and "a.log" in result.unreachable[0]
    assert "after byte" in result.unreachable[0]


def test_a_plain_callable_is_a_sink_and_bad_arguments_raise(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write_log(log, 3)
    got: list[tuple[str, str]] = []
    assert replay(log, lambda t, m: got.append((t, m)), checkpoint=False).sent == 3
    assert not (tmp_path / "a.log.checkpoint").exists()
    with pytest.raises(ValueError, match="batch_size"):
        replay(log, got.append, batch_size=0)
    with pytest.raises(FileNotFoundError):
        replay(tmp_path / "missing.log", lambda t, m: None)


READ_CASES = [
    '{"a": NaN}', '{"a": Infinity}', '{"a": "\\ud800"}', '{"a": 123456789012345678901234567890}',
    '{"a": 1e400}', '{"a": -0.0}', '{"a": 18446744073709551615}', '{"a": [1, 2]',
    '{"a": 1} trailing', '', '[' * 5000 + ']' * 5000, '{"a": 1, "a": 2}', '[1]',
    '{"data": {"n": 123456789012345678901234567890}, "api_key": "k"}',
    '{"data": [{"n": 18446744073709551616}, {"x": 1.5}]}',
]


def _as_lines() -> list[str]:
    """Each case as a message string, and (when it is JSON) as a message object."""
    lines = [json.dumps(["event", text]) for text in READ_CASES]
    for text in READ_CASES:
        try:
            lines.append(json.dumps(["event", json.loads(text)]))
        except (ValueError, RecursionError):
            pass
    return lines


@pytest.mark.parametrize("raw", _as_lines())
def test_reading_a_line_gives_what_json_alone_gives(
    raw: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from consumers._replay import lines

    def outcome() -> Any:
        try:
            return lines.parse_messages(raw)
        except CorruptLineError:
            return "refused"

    fast = outcome()
    monkeypatch.setattr(lines, "_orjson", None)
    assert fast == outcome()
