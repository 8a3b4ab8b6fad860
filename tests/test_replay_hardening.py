"""replay() where logs rotate, services refuse, Ruby batches, dry runs and damaged checkpoints.

Real files, the real collector over HTTP, the real command line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

from consumers import BufferedConsumer
from consumers.file import FileConsumer
from consumers.replaying import CheckpointError, ReplayResult, replay
from consumers.retry import RetryPolicy

ROOT = Path(__file__).resolve().parents[1]
NOW_MS = 1_700_000_000_000


def event(n: int, *, name: str = "Tick", writer: str = "w") -> str:
    return json.dumps({"event": name, "properties": {
        "token": "tok", "distinct_id": f"u{n}", "time": NOW_MS + n,
        "$insert_id": f"{writer}-{n}", "n": n, "writer": writer}})


def add_update(n: int) -> str:
    return json.dumps({"$token": "tok", "$distinct_id": f"u{n}", "$add": {"Logins": 1}})


def write(log: Path, messages: list[tuple[str, str]]) -> None:
    with FileConsumer(log) as consumer:
        for message_type, message_json in messages:
            consumer.send(message_type, message_json)


def events(start: int, count: int, writer: str = "w") -> list[tuple[str, str]]:
    return [("event", event(n, writer=writer)) for n in range(start, start + count)]


def deliver(log: Path, collector: Any, **kwargs: Any) -> ReplayResult:
    with BufferedConsumer(api_host=collector.url, retry=RetryPolicy.never()) as sink:
        return replay(log, sink, batch_size=100, **kwargs)


def tracked(collector: Any) -> list[tuple[str, int]]:
    """(writer, n) of every event the collector stored, duplicates included."""
    return sorted((m["properties"]["writer"], m["properties"]["n"])
                  for m in collector.messages("track"))


def cli(*args: str, env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MIXPANEL_")}
    full.update(env or {}, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "consumers", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=120)


# -- 1. rotation -----------------------------------------------------------------------------


def test_rename_rotation_replays_the_old_files_tail_then_the_new_file(
    tmp_path: Path, collector: Any,
) -> None:
    log = tmp_path / "mixpanel.log"
    write(log, events(0, 1000, "old"))
    assert deliver(log, collector).sent == 1000
    write(log, events(1000, 50, "old"))  # after the replay, before the rotation
    log.rename(tmp_path / "mixpanel.log.1")
    write(log, events(0, 1500, "new"))  # larger than where the old file was read to
    result = deliver(log, collector)
    assert result.ok and result.sent == 1550, result.summary()
    assert any("rotated" in note for note in result.notes)
    assert tracked(collector) == sorted(
        [("old", n) for n in range(1050)] + [("new", n) for n in range(1500)])
    # a writer still appending to the renamed file is followed on the next run
    write(tmp_path / "mixpanel.log.1", events(1050, 5, "old"))
    again = deliver(log, collector)
    assert again.ok and again.sent == 5
    assert deliver(log, collector).sent == 0


def test_a_rotated_file_that_is_gone_is_reported_with_its_offset(
    tmp_path: Path, collector: Any,
) -> None:
    log = tmp_path / "mixpanel.log"
    write(log, events(0, 100, "old"))
    size = log.stat().st_size
    deliver(log, collector)
    log.rename(tmp_path.parent / f"{tmp_path.name}-elsewhere.log")  # out of the folder
    write(log, events(0, 20, "new"))
    result = deliver(log, collector)
    assert result.sent == 20 and not result.ok
    assert len(result.unreachable) == 1
    assert "mixpanel.log" in result.unreachable[0] and f"byte {size}" in result.unreachable[0]
    out = cli("replay", str(log), "--api-host", collector.url)
    assert out.returncode == 0  # reported once: the checkpoint now follows the new file


def test_copytruncate_between_runs_reads_the_copy_then_the_new_content(
    tmp_path: Path, collector: Any,
) -> None:
    log = tmp_path / "mixpanel.log"
    write(log, events(0, 1000, "old"))
    deliver(log, collector)
    write(log, events(1000, 50, "old"))
    shutil.copyfile(log, tmp_path / "mixpanel.log.1")
    os.truncate(log, 0)
    write(log, events(0, 300, "new"))
    result = deliver(log, collector)
    assert result.ok and result.sent == 350, result.summary()
    assert tracked(collector) == sorted(
        [("old", n) for n in range(1050)] + [("new", n) for n in range(300)])


class RotatingSink:
    """Delivers to the collector; at one flush, rotates the log with copytruncate mid-read."""

    def __init__(self, collector: Any, log: Path, at_flush: int) -> None:
        self.inner = BufferedConsumer(api_host=collector.url, max_batch=500)
        self.log = log
        self.at_flush = at_flush
        self.flushes = 0

    def __call__(self, message_type: str, message_json: str) -> None:
        self.inner.send(message_type, message_json)

    def flush(self) -> None:
        self.inner.flush()
        self.flushes += 1
        if self.flushes == self.at_flush:
            shutil.copyfile(self.log, str(self.log) + ".1")
            os.truncate(self.log, 0)
            write(self.log, events(0, 20_000, "new"))  # the writer goes on from byte 0

    def take_pending(self) -> list[tuple[str, str]]:
        return self.inner.take_pending()


def test_copytruncate_during_a_replay_loses_and_repeats_nothing(
    tmp_path: Path, collector: Any,
) -> None:
    log = tmp_path / "mixpanel.log"
    write(log, events(0, 20_000, "old"))
    sink = RotatingSink(collector, log, at_flush=3)
    result = replay(log, sink, batch_size=500)
    sink.inner.close()
    assert result.ok and result.corrupt == 0, result.summary()
    assert result.sent == 40_000
    assert tracked(collector) == sorted(
        [("old", n) for n in range(20_000)] + [("new", n) for n in range(20_000)])
    assert deliver(log, collector).sent == 0  # the checkpoint describes the new file


def test_a_new_file_under_the_old_name_starts_from_its_beginning(
    tmp_path: Path, collector: Any,
) -> None:
    log = tmp_path / "mixpanel.log"
    write(log, events(0, 300, "old"))
    deliver(log, collector)
    log.unlink()
    write(log, events(0, 400, "new"))  # longer than the old offset: not a truncation
    result = deliver(log, collector)
    assert result.sent == 400
    assert [n for w, n in tracked(collector) if w == "new"] == list(range(400))


# -- 2. refusal is not an outage ---------------------------------------------------------------


def test_a_refused_event_is_rejected_and_profile_updates_are_never_sent_twice(
    tmp_path: Path, collector: Any,
) -> None:
    log = tmp_path / "mixpanel.log"
    write(log, [("event", event(1, name="")),
                *[("profile_update", add_update(n)) for n in range(3)]])
    first = cli("replay", str(log), "--api-host", collector.url)
    assert first.returncode == 1, first.stdout + first.stderr
    rejects = [json.loads(line) for line in (tmp_path / "mixpanel.log.rejects").read_text()
               .splitlines()]
    assert len(rejects) == 1 and rejects[0]["line"] == 1 and rejects[0]["type"] == "event"
    assert "event" in rejects[0]["reason"]
    second = cli("replay", str(log), "--api-host", collector.url)
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(collector.messages("engage")) == 3  # once each: $add is not deduplicated


def test_an_outage_owes_only_what_was_not_delivered(tmp_path: Path, collector: Any) -> None:
    log = tmp_path / "mixpanel.log"
    write(log, [("profile_update", add_update(n)) for n in range(60)] + events(0, 60))
    collector.fail_next(10**6, 503, path="/track")  # /engage answers, /track does not
    first = deliver(log, collector)  # the first confirm flushes both types: /track fails
    assert first.stopped_by == "outage" and first.owed == 40, first.summary()
    assert len(collector.messages("engage")) == 60 and tracked(collector) == []
    collector.clear_faults()
    second = deliver(log, collector)
    assert second.ok, second.summary()
    assert sorted(n for _, n in tracked(collector)) == list(range(60))
    assert len(collector.messages("engage")) == 60  # none sent twice


# -- 3. the Ruby library's batched lines -------------------------------------------------------


def test_ruby_buffered_block_lines_are_unwrapped_into_their_messages(
    tmp_path: Path, collector: Any,
) -> None:
    log = tmp_path / "ruby.log"
    batch = [json.loads(event(n)) for n in range(3)]
    lines = [
        json.dumps(["event", json.dumps({"data": batch, "api_key": "RUBY-KEY"})]),
        json.dumps(["event", json.dumps({"data": json.loads(event(3))})]),
        json.dumps(["profile_update", json.dumps({"data": [json.loads(add_update(9))]})]),
    ]
    log.write_text("\n".join(lines) + "\n")
    result = deliver(log, collector)
    assert result.ok and result.sent == 5, result.summary()
    assert sorted(n for _, n in tracked(collector)) == [0, 1, 2, 3]
    assert len(collector.messages("engage")) == 1
    assert all("RUBY-KEY" not in p.read_text() for p in tmp_path.iterdir() if p != log)


# -- 4. --dry-run applies the service's rules --------------------------------------------------


def test_dry_run_reports_what_the_service_would_refuse(tmp_path: Path, collector: Any) -> None:
    log = tmp_path / "mixpanel.log"
    write(log, [("event", event(1)), ("event", event(2, name="")),
                ("profile_update", json.dumps({"$token": "tok", "$set": {"a": 1}})),
                ("import", json.dumps({"event": "E", "properties": {"time": NOW_MS}}))])
    out = cli("replay", str(log), "--dry-run")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "valid=1" in out.stdout and "refused=3" in out.stdout
    assert "'event' must be a non-empty string" in out.stderr
    assert "$distinct_id" in out.stderr and "distinct_id" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mixpanel.log"]  # nothing written
    good = tmp_path / "good.log"
    write(good, events(0, 5))
    assert cli("replay", str(good), "--dry-run").returncode == 0
    assert collector.requests() == []


# -- 5. a damaged checkpoint -------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["", "{\"version\": 2, \"files\": {\"a.lo", "garbage\x00\xff",
                                    "[1, 2]", "{\"version\": 2, \"files\": {\"a.log\": 7}}"])
def test_a_damaged_checkpoint_is_one_clear_line_and_exit_4(
    tmp_path: Path, collector: Any, damage: str,
) -> None:
    log = tmp_path / "a.log"
    write(log, events(0, 10))
    checkpoint = tmp_path / "a.log.checkpoint"
    checkpoint.write_bytes(damage.encode("utf-8", "surrogateescape"))
    with pytest.raises(CheckpointError, match="damaged"):
        replay(log, lambda t, m: None)
    out = cli("replay", str(log), "--api-host", collector.url)
    assert out.returncode == 4, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    [line] = out.stderr.strip().splitlines()
    assert str(checkpoint) in line and "--restart" in line
    again = cli("replay", str(log), "--api-host", collector.url, "--restart")
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(collector.unique("track")) == 10
    assert json.loads(checkpoint.read_text())["files"]["a.log"]["line"] == 10
