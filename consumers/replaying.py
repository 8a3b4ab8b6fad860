"""``replay``: deliver a log written by :class:`~consumers.file.FileConsumer` to any sink.

Delivery is *confirmed* batch by batch: replay hands ``batch_size`` tuples to
the sink, calls ``sink.flush()``, and only when that returns records its
progress in a checkpoint beside the log (``<log>.checkpoint``, or
``replay.checkpoint`` inside a spool folder): a JSON map of byte offset per
segment, written to a temporary file, fsync'd, and renamed over the old one.
A replay killed at any moment and started again resumes after the last
confirmed batch, so nothing is lost; what is sent twice is sent unchanged,
with its original ``$insert_id``, and the service drops the duplicates.

Lines that cannot be read go to a reject file (``<log>.rejects``, or
``replay.rejects`` in a spool folder) as JSON lines with segment, line number,
reason and the raw line, and replay goes on.  Records the service refuses
(:class:`~consumers.errors.RecordsRejectedError`) go there too, and the rest
of their batch counts as delivered.  Any other delivery failure stops replay
with an error in the result; the sink's unsent buffer is cleared (via
``take_pending()``) so nothing is left half-held.

A last line without its newline (a writer still writing, or killed
mid-write) is *torn*: it is reported and left for the next run, never
checkpointed past.

Accepted line forms: ``["event", "<message_json>"]`` (this toolkit and the
Ruby docs' block); the Ruby library's wrapped form, where the message string
is ``{"data": {...}, "api_key": ...}`` (the data is unwrapped, the api_key
dropped and never written anywhere); and a message given as a JSON object
instead of a string (re-encoded compactly).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any, Callable, Optional, Union

import attrs

from consumers.endpoints import MESSAGE_TYPES
from consumers.errors import ConfigurationError, DeliveryError, RecordsRejectedError
from consumers.file import StrPath, list_segments

__all__ = [
    "LINE_TYPES",
    "CorruptLineError",
    "ReplayInProgressError",
    "ReplayProgress",
    "ReplayResult",
    "checkpoint_path_for",
    "parse_line",
    "reject_path_for",
    "replay",
]

#: Tuple types replay accepts (the Mixpanel ones, and PostHog's).
LINE_TYPES = (*MESSAGE_TYPES, "posthog")

_FILE_MODE = 0o600
_MAX_EXAMPLES = 10
_REDACT = re.compile(r'(\\*"api_key\\*"\s*:\s*)(\\*"(?:[^"\\]|\\.)*?\\*"|[^,}\]\s]+)')


class ReplayInProgressError(RuntimeError):
    """Another replay of the same log holds its checkpoint lock."""


class CorruptLineError(ValueError):
    """A log line that is not a readable ``[type, message]`` tuple."""


@attrs.frozen
class ReplayProgress:
    """Where a running replay stands, after each confirmed batch."""

    sent: int
    rejected: int
    bytes_done: int
    bytes_total: int
    elapsed: float


@attrs.define
class ReplayResult:
    """What one :func:`replay` run did.

    ``sent``: tuples whose delivery the sink confirmed.  ``corrupt``: unreadable
    lines (in the reject file).  ``refused``: records the service refused (in
    the reject file).  ``torn``: incomplete last lines left for the next run.
    ``error``: why replay stopped early, or ``None``.
    """

    source: str
    sent: int = 0
    corrupt: int = 0
    refused: int = 0
    torn: int = 0
    empty: int = 0
    batches: int = 0
    bytes_read: int = 0
    resumed_bytes: int = 0
    elapsed: float = 0.0
    dry_run: bool = False
    error: Optional[str] = None
    exception: Optional[BaseException] = attrs.field(default=None, repr=False, eq=False)
    torn_at: list[tuple[str, int]] = attrs.Factory(list)
    examples: list[dict[str, Any]] = attrs.Factory(list)
    notes: list[str] = attrs.Factory(list)
    checkpoint_path: Optional[str] = None
    reject_path: Optional[str] = None

    @property
    def rejected(self) -> int:
        """Lines and records that went to the reject file."""
        return self.corrupt + self.refused

    @property
    def ok(self) -> bool:
        """True when everything read was delivered (torn last lines aside)."""
        return self.error is None and self.rejected == 0

    def summary(self) -> str:
        """One plain line for logs and the command line."""
        verb = "checked" if self.dry_run else "replayed"
        rate = self.sent / self.elapsed if self.elapsed > 0 else 0.0
        text = (
            f"{verb} {self.source}: {'valid' if self.dry_run else 'sent'}={self.sent} "
            f"rejected={self.rejected} (corrupt={self.corrupt} refused={self.refused}) "
            f"torn={self.torn} in {self.elapsed:.2f}s ({rate:,.0f} events/s)"
        )
        if self.resumed_bytes:
            text += f"; resumed after {self.resumed_bytes} bytes"
        if self.rejected and self.reject_path and not self.dry_run:
            text += f"; rejects in {self.reject_path}"
        if self.error is not None:
            text += f"; STOPPED: {self.error}"
        return text


Sink = Callable[[str, str], Any]
Progress = Callable[[ReplayProgress], Any]


def checkpoint_path_for(source: StrPath) -> str:
    """Where replay keeps its checkpoint for ``source`` by default."""
    src = os.fspath(source)
    if os.path.isdir(src):
        return os.path.join(src, "replay.checkpoint")
    return src + ".checkpoint"


def reject_path_for(source: StrPath) -> str:
    """Where replay writes rejected lines and records for ``source`` by default."""
    src = os.fspath(source)
    if os.path.isdir(src):
        return os.path.join(src, "replay.rejects")
    return src + ".rejects"


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _is_ruby_wrapper(obj: dict[str, Any]) -> bool:
    return "data" in obj and isinstance(obj["data"], dict) and set(obj) <= {"data", "api_key"}


def parse_line(raw: Union[bytes, str]) -> tuple[str, str]:
    """One log line -> ``(type, message_json)``; raises :class:`CorruptLineError`.

    A message in this toolkit's form is returned unchanged (byte for byte);
    a Ruby-wrapped or object-valued one is unwrapped and re-encoded compactly.
    """
    try:
        item = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptLineError(f"not JSON: {e}") from None
    if not isinstance(item, list) or len(item) != 2:
        raise CorruptLineError("not a JSON array [type, message]")
    message_type, message = item
    if not isinstance(message_type, str) or message_type not in LINE_TYPES:
        raise CorruptLineError(f"unknown message type {message_type!r}")
    if isinstance(message, str):
        try:
            obj = json.loads(message)
        except ValueError as e:
            raise CorruptLineError(f"message is not JSON: {e}") from None
        if not isinstance(obj, dict):
            raise CorruptLineError("message is not a JSON object")
        if _is_ruby_wrapper(obj):
            return message_type, _compact(obj["data"])
        return message_type, message
    if isinstance(message, dict):
        if _is_ruby_wrapper(message):
            message = message["data"]
        return message_type, _compact(message)
    raise CorruptLineError(f"message is a {type(message).__name__}, not a JSON string or object")


def _redact(text: str) -> str:
    return _REDACT.sub(r'\1"[redacted]"', text)


def _segments(source: str) -> list[tuple[str, str]]:
    if os.path.isdir(source):
        return [(os.path.basename(p), p) for _, p in list_segments(source)]
    if not os.path.exists(source):
        raise FileNotFoundError(f"no log at {source!r}")
    return [(os.path.basename(source), source)]


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Checkpoint:
    """Per-segment ``{"offset", "line"}``, persisted atomically; holds the replay lock."""

    def __init__(self, path: Optional[str], *, write: bool) -> None:
        self.path = path
        self._write = write and path is not None
        self._lock_fd = -1
        self.positions: dict[str, dict[str, int]] = {}
        if path is not None and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            self.positions = {k: dict(v) for k, v in data.get("segments", {}).items()}

    def __enter__(self) -> _Checkpoint:
        if self._write and self.path is not None:
            self._lock_fd = os.open(
                self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE
            )
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._lock_fd)
                raise ReplayInProgressError(
                    f"another replay holds {self.path}.lock; run one replay per log at a time"
                ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing releases the flock

    def save(self, positions: dict[str, dict[str, int]], source: str) -> None:
        if not self._write or self.path is None:
            return
        self.positions = {k: dict(v) for k, v in positions.items()}
        body = {"version": 1, "source": os.path.abspath(source), "segments": self.positions}
        tmp = f"{self.path}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _FILE_MODE)
        try:
            os.write(fd, (json.dumps(body, sort_keys=True) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.path)


class _Rejects:
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
        os.write(self._fd, (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"))
        self._dirty = True

    def sync(self) -> None:
        if self._dirty:
            os.fsync(self._fd)
            self._dirty = False

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _lines(path: str, offset: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(offset)
        yield from f


class _Run:
    """One replay run: reading, handing to the sink, confirming, checkpointing."""

    def __init__(
        self,
        source: str,
        sink: Sink,
        batch_size: int,
        checkpoint: _Checkpoint,
        rejects: _Rejects,
        progress: Optional[Progress],
        result: ReplayResult,
    ) -> None:
        self.source = source
        self.sink = sink
        self.batch_size = batch_size
        self.checkpoint = checkpoint
        self.rejects = rejects
        self.progress = progress
        self.result = result
        self.read = {k: dict(v) for k, v in checkpoint.positions.items()}
        self.batch: list[tuple[str, str, str, int]] = []
        self.refused_in_batch = 0
        self.unconfirmed = False
        self.started = time.monotonic()
        self.bytes_total = 0

    # -- reading ------------------------------------------------------------------------

    def start_positions(self, segments: list[tuple[str, str]]) -> None:
        for name, path in segments:
            pos = self.read.setdefault(name, {"offset": 0, "line": 0})
            size = os.path.getsize(path)
            if size < pos["offset"]:
                self.result.notes.append(
                    f"{name} is shorter than its checkpoint ({size} < {pos['offset']} bytes): "
                    "it was truncated or replaced; replaying it from the start"
                )
                pos.update(offset=0, line=0)
            self.result.resumed_bytes += pos["offset"]
            self.bytes_total += size - pos["offset"]

    def run(self, segments: list[tuple[str, str]]) -> None:
        self.start_positions(segments)
        for name, path in segments:
            if not self.replay_segment(name, path):
                return
        if self.unconfirmed:
            self.confirm()

    def replay_segment(self, name: str, path: str) -> bool:
        pos = self.read[name]
        offset, line_no = pos["offset"], pos["line"]
        for raw in _lines(path, offset):
            line_no += 1
            if not raw.endswith(b"\n"):
                self.result.torn += 1
                self.result.torn_at.append((name, line_no))
                self.result.bytes_read += len(raw)
                break
            offset += len(raw)
            self.result.bytes_read += len(raw)
            if not raw.strip():
                self.result.empty += 1
            else:
                try:
                    message_type, message_json = parse_line(raw)
                except CorruptLineError as e:
                    self.reject_line(name, line_no, raw, str(e))
                else:
                    if not self.hand_over(message_type, message_json, name, line_no):
                        return False
            pos["offset"], pos["line"] = offset, line_no
            self.unconfirmed = True
            if len(self.batch) >= self.batch_size and not self.confirm():
                return False
        return True

    def reject_line(self, segment: str, line: int, raw: bytes, reason: str) -> None:
        self.result.corrupt += 1
        text = _redact(raw.decode("utf-8", errors="replace").rstrip("\n"))
        self.rejects.add(
            {"segment": segment, "line": line, "reason": f"corrupt line: {reason}", "raw": text}
        )

    # -- delivering ---------------------------------------------------------------------

    def hand_over(self, message_type: str, message_json: str, segment: str, line: int) -> bool:
        self.batch.append((message_type, message_json, segment, line))
        if self.result.dry_run:
            return True
        try:
            self.sink(message_type, message_json)
        except RecordsRejectedError as e:
            self.refuse(e)
        except (DeliveryError, ConfigurationError) as e:
            # a consumer that cannot send this type (e.g. /import without
            # credentials) stops the run like an outage: nothing is confirmed
            self.fail(e)
            return False
        return True

    def refuse(self, error: RecordsRejectedError) -> None:
        where = {(t, m): (s, n) for t, m, s, n in self.batch}
        for record in error.failed_records:
            entry: dict[str, Any] = {"reason": f"refused by the service: {record.message}"}
            if record.record is not None:
                segment, line = where.get(record.record, (None, None))
                entry.update(segment=segment, line=line, type=record.record[0])
            entry.update(field=record.field, insert_id=record.insert_id)
            if record.record is not None:
                entry["message"] = record.record[1]
            self.rejects.add(entry)
        self.result.refused += len(error.failed_records)
        self.refused_in_batch += len(error.failed_records)

    def fail(self, error: Exception) -> None:
        take_pending = getattr(self.sink, "take_pending", None)
        if callable(take_pending):
            take_pending()
        self.result.error = f"{type(error).__name__}: {error}"
        self.result.exception = error

    def flush_sink(self) -> bool:
        flush = getattr(self.sink, "flush", None)
        if self.result.dry_run or not callable(flush):
            return True
        # A refusal can leave other types' buffers unsent: flush again until clean.
        for _ in range(len(LINE_TYPES) + 2):
            try:
                flush()
                return True
            except RecordsRejectedError as e:
                self.refuse(e)
            except DeliveryError as e:
                self.fail(e)
                return False
        return True

    def confirm(self) -> bool:
        if not self.flush_sink():
            return False
        self.rejects.sync()
        self.checkpoint.save(self.read, self.source)
        self.result.sent += len(self.batch) - self.refused_in_batch
        self.refused_in_batch = 0
        self.unconfirmed = False
        if self.batch:
            self.result.batches += 1
        self.batch = []
        self.result.elapsed = time.monotonic() - self.started
        if self.progress is not None:
            self.progress(
                ReplayProgress(
                    sent=self.result.sent,
                    rejected=self.result.rejected,
                    bytes_done=self.result.bytes_read,
                    bytes_total=self.bytes_total,
                    elapsed=self.result.elapsed,
                )
            )
        return True


def replay(
    source: StrPath,
    sink: Sink,
    *,
    batch_size: int = 500,
    checkpoint: Union[bool, StrPath] = True,
    reject_path: Optional[StrPath] = None,
    progress: Optional[Progress] = None,
    dry_run: bool = False,
) -> ReplayResult:
    """Deliver every tuple of the log (file or spool folder) ``source`` to ``sink``.

    ``sink``: any ``sink(type, message_json)``; when it has ``flush()``, each
    batch of ``batch_size`` tuples is confirmed by ``flush()`` returning before
    the checkpoint moves.  ``checkpoint``: ``True`` (beside the log), a path,
    or ``False`` (start from the beginning, remember nothing).
    ``reject_path``: where unreadable lines and refused records go (default
    beside the log).  ``progress(ReplayProgress)`` is called after every
    confirmed batch.  ``dry_run``: read and validate only; the sink is not
    called and no file is written.

    Raises :class:`ReplayInProgressError` when another replay holds the log's
    checkpoint; delivery failures are reported in the result, not raised.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not callable(sink):
        raise TypeError(f"sink must be a callable (type, message_json), got {type(sink).__name__}")
    src = os.fspath(source)
    segments = _segments(src)
    if checkpoint is True:
        ckpt_path: Optional[str] = checkpoint_path_for(src)
    elif checkpoint is False:
        ckpt_path = None
    else:
        ckpt_path = os.fspath(checkpoint)
    rej_path = os.fspath(reject_path) if reject_path is not None else reject_path_for(src)
    result = ReplayResult(
        source=src,
        dry_run=dry_run,
        checkpoint_path=ckpt_path,
        reject_path=None if dry_run else rej_path,
    )
    rejects = _Rejects(None if dry_run else rej_path, result)
    with _Checkpoint(ckpt_path, write=not dry_run) as state:
        run = _Run(src, sink, batch_size, state, rejects, progress, result)
        try:
            run.run(segments)
        except BaseException:
            take_pending = getattr(sink, "take_pending", None)
            if callable(take_pending) and not dry_run:
                take_pending()
            raise
        finally:
            rejects.close()
            result.elapsed = time.monotonic() - run.started
    return result
