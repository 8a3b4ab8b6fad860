"""One replay run: read each file, hand tuples to the sink, confirm, checkpoint.

What the sink raises decides what happens to the messages it concerns:

* a *refusal* (the data's fault: a 400, ``{"status": 0}``, a single message
  too large, records a strict /import failed) sends them to the reject file
  with the service's reason; the run goes on and the checkpoint moves past;
* anything else (no answer, 429/5xx past the retry budget, 401/403, a
  consumer that cannot send a type) *stops* the run: the messages read but
  not delivered are kept in the checkpoint as *owed* and sent first by the
  next run, so what was delivered is never sent again.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any, Callable, Optional

from consumers._replay.checkpoint import Checkpoint, Position
from consumers._replay.checks import refusal
from consumers._replay.files import Identity, LogReader, RewrittenError, find_tail
from consumers._replay.lines import CorruptLineError, parse_messages, redact
from consumers._replay.result import ReplayProgress, ReplayResult
from consumers.errors import (
    ConfigurationError,
    DeliveryError,
    PayloadTooLargeError,
    RecordsRejectedError,
    RefusedError,
)

__all__ = ["Rejects", "Run", "is_refusal"]

_FILE_MODE = 0o600
_MAX_EXAMPLES = 10

Sink = Callable[[str, str], Any]
Progress = Callable[[ReplayProgress], Any]
Handed = tuple[str, str, str, int]  # type, message_json, segment, line


def is_refusal(error: BaseException) -> bool:
    """Whether ``error`` means the service refused the data itself (sending again cannot help)."""
    if isinstance(error, (RecordsRejectedError, PayloadTooLargeError)):
        return True
    return isinstance(error, RefusedError) and error.status in (200, 400)


class Rejects:
    """The reject file, opened on first use; fsync'd before each checkpoint."""

    def __init__(self, path: Optional[str], result: ReplayResult) -> None:
        self.path = path
        self._result = result
        self._fd = -1
        self._dirty = False

    def add(self, entry: dict[str, Any]) -> None:
        if len(self._result.examples) < _MAX_EXAMPLES:
            self._result.examples.append({k: v for k, v in entry.items() if k != "raw"})
        if self.path is None:
            return
        if self._fd < 0:
            self._fd = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE
            )
        os.write(self._fd, (_dumps(entry) + "\n").encode("utf-8", "surrogatepass"))
        self._dirty = True

    def sync(self) -> None:
        if self._dirty:
            os.fsync(self._fd)
            self._dirty = False

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _dumps(entry: dict[str, Any]) -> str:
    import json

    return json.dumps(entry, ensure_ascii=False)


class Run:
    """Reads the files of one source in order and delivers their tuples in confirmed batches."""

    def __init__(self, source: str, sink: Sink, batch_size: int, checkpoint: Checkpoint,
                 rejects: Rejects, progress: Optional[Progress], result: ReplayResult) -> None:
        self.source = source
        self.folder = source if os.path.isdir(source) else os.path.dirname(
            os.path.abspath(source))
        self.sink = sink
        self.batch_size = batch_size
        self.checkpoint = checkpoint
        self.rejects = rejects
        self.progress = progress
        self.result = result
        self.dry_run = result.dry_run
        self.files = dict(checkpoint.files)
        self.rotated = list(checkpoint.rotated)
        self.batch: list[Handed] = []
        self.refused: list[tuple[str, str]] = []  # of this batch
        self.owed: list[Handed] = []
        self.unconfirmed = False
        self.started = time.monotonic()
        self.bytes_total = 0

    # -- the whole run -------------------------------------------------------------------

    def run(self, segments: list[tuple[str, str]]) -> None:
        if not self.run_all(segments):  # stopped: keep what is owed with the positions
            self.result.owed = len(self.owed)
            self.rejects.sync()
            self.checkpoint.save(self.source, self.files, self.rotated, self.owed)

    def run_all(self, segments: list[tuple[str, str]]) -> bool:
        present = {name for name, _ in segments}
        if os.path.isdir(self.source):  # a removed segment was replayed and dropped whole
            self.files = {k: v for k, v in self.files.items() if k in present}
        for name, path in segments:
            pos = self.files.get(name)
            size = os.path.getsize(path)
            self.bytes_total += max(0, size - (pos.offset if pos else 0))
        if self.checkpoint.owed and not self.dry_run:
            for item in self.checkpoint.owed:
                if not self.hand_over(*item):
                    return False
            self.unconfirmed = True
            if not self.confirm():
                return False
        rotated, self.rotated = self.rotated, []
        for pos in rotated:  # files renamed away by a rotation: read what reached them since
            assert pos.identity is not None
            found = find_tail(self.folder, pos.identity, pos.offset, skip="")
            if found is not None and not self.read_predecessor(found, pos):
                return False
        for name, path in segments:
            if not self.read_segment(name, path):
                return False
        return not self.unconfirmed or self.confirm()

    # -- reading -------------------------------------------------------------------------

    def read_segment(self, name: str, path: str) -> bool:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            pos = self.files.get(name)
            if pos is None:
                pos = self.files[name] = Position()
            elif pos.identity is None:  # a version-1 checkpoint: positions by name only
                if st.st_size < pos.offset:
                    self.result.notes.append(
                        f"{name} is shorter than its checkpoint ({st.st_size} < {pos.offset} "
                        "bytes): it was truncated or replaced; replaying it from the start")
                    pos = self.files[name] = Position()
            else:
                grown = pos.identity.check(fd, pos.offset) if pos.identity.same_file(st) else None
                if grown is None or st.st_size < pos.offset:
                    # Another file has the name now: the old one's unread tail comes first.
                    if not self.follow(name, path, pos):
                        return False
                    pos = self.files[name] = Position()
                else:
                    pos.identity = grown
            if pos.identity is None:
                pos.identity = Identity.of(fd, max(pos.offset, st.st_size))
            self.result.resumed_bytes += pos.offset
            try:
                return self.read_file(name, fd, pos)
            except RewrittenError:
                pass
        finally:
            os.close(fd)
        # Truncated (and maybe written again) while it was read: the copy holds the rest.
        if not self.follow(name, path, pos):
            return False
        self.files[name] = Position()
        return self.read_segment(name, path)

    def follow(self, name: str, live: str, pos: Position) -> bool:
        """Read the unread tail of the file ``pos`` describes, wherever it is now."""
        assert pos.identity is not None
        path = find_tail(self.folder, pos.identity, pos.offset, skip=live)
        if path is None:
            self.result.unreachable.append(
                f"{name}: the file replayed up to byte {pos.offset} (line {pos.line}, inode "
                f"{pos.identity.ino}) is no longer in {self.folder} under any name; whatever "
                f"was written to it after byte {pos.offset} cannot be replayed"
            )
            return True
        self.result.notes.append(
            f"{name} was rotated: replaying the rest of its previous file, now "
            f"{os.path.basename(path)}, from byte {pos.offset} first"
        )
        return self.read_predecessor(path, Position(pos.offset, pos.line, pos.identity))

    def read_predecessor(self, path: str, pos: Position) -> bool:
        pos.name = os.path.basename(path)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            assert pos.identity is not None
            grown = pos.identity.check(fd, pos.offset)
            if grown is None:
                return True  # not the file it was: nothing of it is left to read
            pos.identity = grown
            if pos.identity.same_file(os.fstat(fd)):
                self.rotated.append(pos)  # a renamed file may still be written to
            self.bytes_total += max(0, os.fstat(fd).st_size - pos.offset)
            try:
                return self.read_file(pos.name, fd, pos)
            except RewrittenError:
                return True
        finally:
            os.close(fd)

    def read_file(self, name: str, fd: int, pos: Position) -> bool:
        assert pos.identity is not None
        reader = LogReader(fd, pos.offset, pos.identity)
        offset, line_no = pos.offset, pos.line
        for raw in reader:
            line_no += 1
            self.result.bytes_read += len(raw)
            if not raw.endswith(b"\n"):
                self.result.torn += 1
                self.result.torn_at.append((name, line_no))
                break
            offset += len(raw)
            if not raw.strip():
                self.result.empty += 1
            else:
                try:
                    messages = parse_messages(raw)
                except CorruptLineError as e:
                    self.reject_line(name, line_no, raw, str(e))
                else:
                    pos.offset, pos.line, pos.identity = offset, line_no, reader.identity
                    for n, (message_type, message_json) in enumerate(messages):
                        if not self.hand_over(message_type, message_json, name, line_no):
                            # the rest of a Ruby batch line was read too: it is owed
                            self.owed.extend((t, m, name, line_no) for t, m in messages[n + 1:])
                            return False
            pos.offset, pos.line, pos.identity = offset, line_no, reader.identity
            self.unconfirmed = True
            if len(self.batch) >= self.batch_size and not self.confirm():
                return False
        return True

    def reject_line(self, segment: str, line: int, raw: bytes, reason: str) -> None:
        self.result.corrupt += 1
        text = redact(raw.decode("utf-8", errors="replace").rstrip("\n"))
        self.rejects.add(
            {"segment": segment, "line": line, "reason": f"corrupt line: {reason}", "raw": text}
        )

    # -- delivering ----------------------------------------------------------------------

    def hand_over(self, message_type: str, message_json: str, segment: str, line: int) -> bool:
        item = (message_type, message_json, segment, line)
        self.batch.append(item)
        if self.dry_run:
            reason = refusal(message_type, message_json)
            if reason is not None:
                self.refuse_one(item, f"would be refused by the service: {reason}")
            return True
        try:
            self.sink(message_type, message_json)
        except DeliveryError as e:
            if is_refusal(e):
                self.refuse(e, default=item)
                return True
            self.refuse_attached(e)
            self.stop(e, "outage", failed=item)
            return False
        except ConfigurationError as e:
            self.stop(e, "configuration", failed=item)
            return False
        return True

    def refuse(self, error: DeliveryError, default: Optional[Handed] = None) -> None:
        """Send what ``error`` refused to the reject file, each with the service's reason."""
        if isinstance(error, RecordsRejectedError):
            for record in error.failed_records:
                item = self.locate(record.record)
                entry: dict[str, Any] = {"reason": f"refused by the service: {record.message}",
                                         "field": record.field, "insert_id": record.insert_id}
                self.refuse_one(item, entry)
            return
        messages = error.messages or ([default[:2]] if default is not None else [])
        for message in messages:
            self.refuse_one(self.locate(message), f"refused by the service: {error}")

    def refuse_attached(self, error: DeliveryError) -> None:
        for refused in getattr(error, "refusals", ()):
            self.refuse(refused)

    def locate(self, message: Optional[tuple[str, str]]) -> Optional[Handed]:
        for item in reversed(self.batch):
            if message is not None and item[:2] == message:
                return item
        return None

    def refuse_one(self, item: Optional[Handed], reason: Any) -> None:
        entry = dict(reason) if isinstance(reason, dict) else {"reason": reason}
        if item is not None:
            entry.update(segment=item[2], line=item[3], type=item[0], message=item[1])
            self.refused.append(item[:2])
        self.rejects.add(entry)
        self.result.refused += 1

    def stop(self, error: Exception, why: str, failed: Optional[Handed] = None) -> None:
        """End the run: the messages read but not delivered are owed (kept in the checkpoint)."""
        take_pending = getattr(self.sink, "take_pending", None)
        if callable(take_pending):  # the sink says exactly what it did not deliver
            held = Counter(take_pending())
            owed = [i for i in self.batch if _take(held, i[:2])]
            if failed is not None and failed not in owed:
                owed.append(failed)  # refused by send() before it was held, or never held
        elif callable(getattr(self.sink, "flush", None)):
            refused = Counter(self.refused)  # a buffer it does not show: all unconfirmed
            owed = [i for i in self.batch if not _take(refused, i[:2])]
        else:
            owed = [failed] if failed is not None else []  # each call delivered or raised
        self.owed = owed
        self.result.sent += len(self.batch) - len(self.refused) - len(owed)
        self.result.error = f"{type(error).__name__}: {error}"
        self.result.stopped_by = why
        self.result.exception = error
        self.batch, self.refused, self.unconfirmed = [], [], False

    def flush_sink(self) -> bool:
        flush = getattr(self.sink, "flush", None)
        if self.dry_run or not callable(flush):
            return True
        # A refusal can leave other types' buffers unsent: flush again until clean.
        for _ in range(8):
            try:
                flush()
                return True
            except DeliveryError as e:
                if not is_refusal(e):
                    self.refuse_attached(e)
                    self.stop(e, "outage")
                    return False
                self.refuse(e)
            except ConfigurationError as e:
                self.stop(e, "configuration")
                return False
        return True

    def confirm(self) -> bool:
        if not self.flush_sink():
            return False
        self.rejects.sync()
        self.checkpoint.save(self.source, self.files, self.rotated, [])
        self.result.sent += len(self.batch) - len(self.refused)
        if self.batch:
            self.result.batches += 1
        self.batch, self.refused, self.unconfirmed = [], [], False
        self.result.elapsed = time.monotonic() - self.started
        if self.progress is not None:
            self.progress(ReplayProgress(
                sent=self.result.sent, rejected=self.result.rejected,
                bytes_done=self.result.bytes_read, bytes_total=self.bytes_total,
                elapsed=self.result.elapsed,
            ))
        return True


def _take(counts: Counter[tuple[str, str]], key: tuple[str, str]) -> bool:
    """Take one ``key`` out of ``counts``; whether there was one."""
    if counts[key] > 0:
        counts[key] -= 1
        return True
    return False
