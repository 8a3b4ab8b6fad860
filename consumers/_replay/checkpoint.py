"""The replay checkpoint: where each file was read to, which file that was, what is owed.

One JSON document, written to a temporary file, fsync'd and renamed over the
old one, so it is always either the old state or the new one::

    {"version": 2, "source": "/abs/path",
     "files":   {"events.log": {"offset": 301890, "line": 1000,
                                "dev": 2049, "ino": 1234, "fp_len": 1024, "fp": "..."}},
     "rotated": [{"name": "events.log.1", "offset": ..., "line": ..., "dev": ..., ...}],
     "owed":    [["profile_update", "<message_json>", "events.log", 17], ...]}

``files`` holds the file now under each name; ``rotated`` the files that
were under a name before a rotation and may still be written to;
``owed`` the messages a stopped run read past but could not deliver (the
next run sends them first).  Version 1 checkpoints (``segments``, no
identity) are read as positions by name.
"""

from __future__ import annotations

import fcntl
import json
import os
from typing import Any, Optional

import attrs

from consumers._replay.files import Identity

__all__ = ["Checkpoint", "CheckpointError", "Position", "ReplayInProgressError"]

_FILE_MODE = 0o600


class ReplayInProgressError(RuntimeError):
    """Another replay of the same log holds its checkpoint lock."""


class CheckpointError(ValueError):
    """The checkpoint file cannot be read: it names the file and what to do."""


@attrs.define
class Position:
    """How far one file was read, and which file it was (``None``: not known yet)."""

    offset: int = 0
    line: int = 0
    identity: Optional[Identity] = None
    name: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"offset": self.offset, "line": self.line}
        if self.name:
            out["name"] = self.name
        if self.identity is not None:
            i = self.identity
            out.update(dev=i.dev, ino=i.ino, fp_len=i.length, fp=i.digest)
        return out

    @classmethod
    def from_json(cls, data: Any) -> Position:
        if not isinstance(data, dict):
            raise TypeError("a position is not an object")
        offset, line = data["offset"], data["line"]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                   for v in (offset, line)):
            raise TypeError("offset and line must be non-negative integers")
        identity = None
        if "ino" in data:
            identity = Identity(int(data["dev"]), int(data["ino"]), int(data["fp_len"]),
                                str(data["fp"]))
        return cls(offset, line, identity, str(data.get("name", "")))


def _damaged(path: str, why: str) -> CheckpointError:
    return CheckpointError(
        f"the replay checkpoint {path} is damaged ({why}); move it aside to keep it, or "
        "replay again with restart=True (--restart) to start the log from the beginning"
    )


class Checkpoint:
    """The persisted state of one log's replay; holds the replay lock while entered."""

    def __init__(self, path: Optional[str], *, write: bool, restart: bool = False) -> None:
        self.path = path
        self._write = write and path is not None
        self._lock_fd = -1
        self.files: dict[str, Position] = {}
        self.rotated: list[Position] = []
        self.owed: list[tuple[str, str, str, int]] = []
        if path is not None and not restart and os.path.exists(path):
            self._load(path)

    def _load(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                data = json.loads(f.read())
        except (ValueError, UnicodeDecodeError) as e:
            raise _damaged(path, f"not JSON: {e}") from None
        try:
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            if data.get("version", 1) == 1:
                files = data["segments"]
            else:
                files = data["files"]
            if not isinstance(files, dict):
                raise TypeError("its positions are not an object")
            self.files = {str(k): Position.from_json(v) for k, v in files.items()}
            self.rotated = [Position.from_json(v) for v in data.get("rotated", [])]
            self.owed = [(str(t), str(m), str(s), int(n)) for t, m, s, n in data.get("owed", [])]
        except (KeyError, TypeError, ValueError) as e:
            what = f"missing {e}" if isinstance(e, KeyError) else str(e)
            raise _damaged(path, what) from None

    def __enter__(self) -> Checkpoint:
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

    def save(self, source: str, files: dict[str, Position], rotated: list[Position],
             owed: list[tuple[str, str, str, int]]) -> None:
        """Persist this state atomically (a no-op for a dry run or without a path)."""
        if not self._write or self.path is None:
            return
        body = {
            "version": 2,
            "source": os.path.abspath(source),
            "files": {k: v.to_json() for k, v in files.items()},
            "rotated": [p.to_json() for p in rotated],
            "owed": [list(item) for item in owed],
        }
        tmp = f"{self.path}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _FILE_MODE)
        try:
            os.write(fd, (json.dumps(body, sort_keys=True, ensure_ascii=False) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.path)


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
