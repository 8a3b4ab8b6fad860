"""``FileConsumer``: an append-only log of ``(type, message_json)`` tuples.

Each tuple becomes one line in the Ruby library's documented form,
``json.dumps([type, message_json]) + "\\n"``, so a log can be replayed later,
in another process, with :func:`consumers.replay`.

Several threads and several processes may append to one log at once:

* every line is appended on an ``O_APPEND`` file descriptor while holding an
  exclusive ``flock`` on the file, so lines never interleave, a writer that
  opens the log never sees another's line half-written, and a write that fails
  part-way (a full disk) is cut back off before anyone appends after it;
* a fragment left by a writer killed mid-line is ended with a newline, under
  the same lock, so it stays on a line of its own and the next line is whole;
* a per-instance lock serialises the threads of one process.

When ``path`` is a directory (an existing one, a path ending in ``/``, or a
new path given with ``rotate_bytes``),
the log is a *spool folder* of numbered segments ``events-000001.log``,
``events-000002.log``, ... and ``rotate_bytes`` starts a new segment once the
current one reaches that size.  Rotation is decided under an ``flock`` on
``<spool>/.rotate.lock``, so several writer processes agree on one next
segment.  A writer in another process may append a last line or two to the
previous segment before it notices the rotation; replay keeps a byte offset
per segment, so such lines are still delivered.

Files are created with mode ``0o600`` (they hold personal data), spool
folders with ``0o700``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from typing import Optional, Union

from consumers._closing import Closing
from consumers._fork import ForkAware

__all__ = ["FSYNC_POLICIES", "SEGMENT_PATTERN", "FileConsumer", "list_segments", "segment_name"]

#: ``"none"``: leave it to the OS; ``"batch"``: ``fsync`` on every :meth:`FileConsumer.flush`
#: (and on close); ``"line"``: ``fsync`` after every line.
FSYNC_POLICIES = ("none", "batch", "line")

#: Segment file names inside a spool folder.
SEGMENT_PATTERN = re.compile(r"^events-(\d{6,})\.log$")

_FILE_MODE = 0o600
_DIR_MODE = 0o700
_ROTATE_LOCK = ".rotate.lock"

StrPath = Union[str, "os.PathLike[str]"]


def segment_name(number: int) -> str:
    """The file name of segment ``number`` in a spool folder (``events-000001.log``)."""
    return f"events-{number:06d}.log"


def list_segments(folder: StrPath) -> list[tuple[int, str]]:
    """``(number, path)`` of every segment in ``folder``, oldest first."""
    found = []
    for name in os.listdir(folder):
        m = SEGMENT_PATTERN.match(name)
        if m:
            found.append((int(m.group(1)), os.path.join(folder, name)))
    found.sort()
    return found


def _encode_line(message_type: str, message_json: str) -> bytes:
    if not isinstance(message_type, str):
        raise TypeError(f"type must be a str, got {type(message_type).__name__}")
    if not isinstance(message_json, str):
        raise TypeError(f"message_json must be a str, got {type(message_json).__name__}")
    return (json.dumps([message_type, message_json], ensure_ascii=False) + "\n").encode("utf-8")


def _open_append(path: str) -> int:
    # O_RDWR: the torn-tail check reads the last byte through the same descriptor.
    return os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)


def _ends_without_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


class FileConsumer(Closing, ForkAware):
    """A sink that appends each ``(type, message_json)`` as one line of a log file.

    >>> with FileConsumer("/var/spool/analytics.log") as log:   # doctest: +SKIP
    ...     log.send("event", '{"event": "Signed up", "properties": {...}}')

    ``path``: a log file, or a spool folder of numbered segments (an existing
    directory, a path ending in ``/``, or any new path given with
    ``rotate_bytes``).  ``rotate_bytes``: start a new segment when the
    current one reaches this size (spool folders only).
    ``fsync``: ``"none"``, ``"batch"`` (on :meth:`flush` and :meth:`close`)
    or ``"line"`` (after every line).
    """

    def __init__(
        self,
        path: StrPath,
        *,
        rotate_bytes: Optional[int] = None,
        fsync: str = "none",
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}, got {fsync!r}")
        if rotate_bytes is not None and (
            isinstance(rotate_bytes, bool) or not isinstance(rotate_bytes, int) or rotate_bytes <= 0
        ):
            raise ValueError(f"rotate_bytes must be a positive int or None, got {rotate_bytes!r}")
        text = os.fspath(path)
        self._spool = (
            os.path.isdir(text)
            or text.endswith(("/", os.sep))
            or (rotate_bytes is not None and not os.path.exists(text))
        )
        if rotate_bytes is not None and not self._spool:
            raise ValueError(
                f"rotate_bytes needs a spool folder, and {text!r} is an existing file"
            )
        self.path = text.rstrip("/") if self._spool and len(text) > 1 else text
        self.rotate_bytes = rotate_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        self._closed = False
        self._dirty = False
        self._segment = 0
        self._fd = -1
        if self._spool:
            os.makedirs(self.path, mode=_DIR_MODE, exist_ok=True)
            self._open_newest_segment()
        else:
            self._fd = _open_append(self.path)
        self._end_torn_tail()
        self._watch_forks()

    def _reset_in_child(self) -> None:
        """A lock and a file description of its own, so ``flock`` excludes the parent too."""
        self._lock = threading.Lock()
        if not self._closed:
            inherited, self._fd = self._fd, _open_append(self.current_path)
            os.close(inherited)

    # -- the sink -------------------------------------------------------------------------

    def send(self, type: str, message_json: str) -> None:
        """Append one line; returns once the line is in the file (see ``fsync``)."""
        line = _encode_line(type, message_json)
        with self._lock:
            if self._closed:
                raise ValueError("FileConsumer is closed")
            self._write(line)
            if self.fsync == "line":
                os.fsync(self._fd)
            else:
                self._dirty = True
            if self.rotate_bytes is not None:
                self._maybe_rotate()

    __call__ = send

    def flush(self) -> None:
        """With ``fsync="batch"``, force the lines written so far to stable storage."""
        with self._lock:
            if not self._closed and self._dirty and self.fsync == "batch":
                os.fsync(self._fd)
            self._dirty = False

    def close(self) -> None:
        """Flush (per the ``fsync`` policy) and close the file. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            if self._dirty and self.fsync == "batch":
                os.fsync(self._fd)
            os.close(self._fd)
            self._closed = True

    def __repr__(self) -> str:
        return (
            f"FileConsumer({self.path!r}, rotate_bytes={self.rotate_bytes!r}, "
            f"fsync={self.fsync!r})"
        )

    @property
    def current_path(self) -> str:
        """The file lines are appended to now (the newest segment in a spool folder)."""
        if self._spool:
            return os.path.join(self.path, segment_name(self._segment))
        return self.path

    # -- internals ------------------------------------------------------------------------

    def _write(self, line: bytes) -> None:
        fd = self._fd
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if self._check_tail:
                self._end_fragment(fd)
            view = memoryview(line)
            try:
                while view:
                    view = view[os.write(fd, view):]
            except OSError:
                self._take_back(fd, len(line) - len(view))
                raise
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _take_back(self, fd: int, written: int) -> None:
        """Cut the part of a line that a failed write left, so the next line starts clean."""
        if not written:
            return
        try:
            # O_APPEND left the offset at the end of our bytes, and the lock kept
            # every other writer out, so they are the last ``written`` bytes.
            os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR) - written)
        except OSError:
            self._check_tail = True  # the fragment stays: end it before the next line

    def _end_torn_tail(self) -> None:
        self._check_tail = True
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            self._end_fragment(self._fd)
        except OSError:
            pass  # a full or read-only disk: the next send ends the fragment, or reports why not
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _end_fragment(self, fd: int) -> None:
        # Called with the exclusive lock held, so no live writer is mid-line: a tail
        # without its newline is what a writer killed mid-line left behind.
        if _ends_without_newline(fd):
            os.write(fd, b"\n")
        self._check_tail = False

    def _open_newest_segment(self) -> None:
        with _RotateLock(self.path):
            segments = list_segments(self.path)
            number = segments[-1][0] if segments else 1
            self._switch_to(number)

    def _switch_to(self, number: int) -> None:
        fd = _open_append(os.path.join(self.path, segment_name(number)))
        if self._fd >= 0:
            if self._dirty and self.fsync == "batch":
                os.fsync(self._fd)
            os.close(self._fd)
        self._fd = fd
        self._segment = number

    def _maybe_rotate(self) -> None:
        assert self.rotate_bytes is not None
        if os.lseek(self._fd, 0, os.SEEK_END) < self.rotate_bytes:
            return
        with _RotateLock(self.path):
            segments = list_segments(self.path)
            newest = segments[-1][0] if segments else self._segment
            if newest > self._segment:
                # Another writer rotated already; follow it unless that segment is full too.
                self._switch_to(newest)
                if os.lseek(self._fd, 0, os.SEEK_END) < self.rotate_bytes:
                    return
            self._switch_to(self._segment + 1)
        self._end_torn_tail()


class _RotateLock:
    """An exclusive ``flock`` on the spool folder's rotation lock file."""

    def __init__(self, folder: str) -> None:
        self._path = os.path.join(folder, _ROTATE_LOCK)
        self._fd = -1

    def __enter__(self) -> None:
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self._fd)
            raise

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
