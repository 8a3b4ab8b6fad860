"""``replay``: deliver a log written by :class:`~consumers.file.FileConsumer` to any sink.

Delivery is *confirmed* batch by batch: replay hands ``batch_size`` tuples to
the sink, calls ``sink.flush()``, and only when that returns records its
progress in a checkpoint beside the log (``<log>.checkpoint``, or
``replay.checkpoint`` inside a spool folder), written to a temporary file,
fsync'd and renamed over the old one.  A replay killed at any moment and
started again resumes after the last confirmed batch; what is sent twice is
sent unchanged, with its original ``$insert_id``, and the service drops the
duplicate events.

*Refusals* (the data's fault: a 400, ``{"status": 0}``, a message too large,
records a strict /import failed) go to a reject file (``<log>.rejects``, or
``replay.rejects``) with the service's reason, as do unreadable lines, and
replay goes on past them.  Anything else (no answer, 429/5xx after the retry
budget, 401/403, a consumer not configured for a type) *stops* replay: the
messages it read but could not deliver are kept in the checkpoint as *owed*
and the next run sends them first, so nothing delivered is ever sent again,
profile updates included.

The checkpoint records which file each position belongs to (device, inode
and a fingerprint of its first bytes).  When a rotation gives the name to a
new file, the new file is read from its start, and the rest of the previous
file, found in the folder by inode (renamed) or by its first bytes
(``copytruncate``'s copy), is read first; when it cannot be found, the result
says which file and from which byte (``unreachable``).  A file truncated
while it is read is noticed before anything past the truncation is read.

A last line without its newline (a writer still writing, or killed
mid-write) is *torn*: it is reported and left for the next run.

Accepted line forms: ``["event", "<message_json>"]`` (this toolkit and the
Ruby docs' block); the Ruby library's wrapped forms, ``{"data": {...}}`` and
its ``BufferedConsumer`` block's ``{"data": [m1, m2, ...]}`` (each with an
optional ``api_key``, which is dropped and never written anywhere); and a
message given as a JSON object instead of a string (re-encoded compactly).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional, Union

from consumers._replay.checkpoint import Checkpoint, CheckpointError, ReplayInProgressError
from consumers._replay.lines import LINE_TYPES, CorruptLineError, parse_line, parse_messages
from consumers._replay.result import ReplayProgress, ReplayResult
from consumers._replay.run import Rejects, Run
from consumers.file import StrPath, list_segments

__all__ = [
    "LINE_TYPES",
    "CheckpointError",
    "CorruptLineError",
    "ReplayInProgressError",
    "ReplayProgress",
    "ReplayResult",
    "checkpoint_path_for",
    "parse_line",
    "parse_messages",
    "reject_path_for",
    "replay",
]

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


def _segments(source: str) -> list[tuple[str, str]]:
    if os.path.isdir(source):
        return [(os.path.basename(p), p) for _, p in list_segments(source)]
    if not os.path.exists(source):
        raise FileNotFoundError(f"no log at {source!r}")
    return [(os.path.basename(source), source)]


def replay(
    source: StrPath,
    sink: Sink,
    *,
    batch_size: int = 500,
    checkpoint: Union[bool, StrPath] = True,
    reject_path: Optional[StrPath] = None,
    progress: Optional[Progress] = None,
    dry_run: bool = False,
    restart: bool = False,
) -> ReplayResult:
    """Deliver every tuple of the log (file or spool folder) ``source`` to ``sink``.

    ``sink``: any ``sink(type, message_json)``; when it has ``flush()``, each
    batch of ``batch_size`` tuples is confirmed by ``flush()`` returning before
    the checkpoint moves.  ``checkpoint``: ``True`` (beside the log), a path,
    or ``False`` (start from the beginning, remember nothing).
    ``reject_path``: where unreadable lines and refused records go (default
    beside the log).  ``progress(ReplayProgress)`` is called after every
    confirmed batch.  ``dry_run``: read and check every message against the
    service's rules; the sink is not called and no file is written; what
    would be refused is counted in ``refused`` with the reason.  ``restart``:
    ignore the checkpoint (even a damaged one) and start from the beginning.

    Raises :class:`ReplayInProgressError` when another replay holds the log's
    checkpoint, and :class:`CheckpointError` when the checkpoint cannot be
    read; delivery failures are reported in the result, not raised.
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
    rejects = Rejects(None if dry_run else rej_path, result)
    with Checkpoint(ckpt_path, write=not dry_run, restart=restart) as state:
        run = Run(src, sink, batch_size, state, rejects, progress, result)
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
