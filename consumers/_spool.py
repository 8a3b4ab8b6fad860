"""The spool of a :class:`~consumers.background.BackgroundConsumer`: messages kept on disk.

Used while the queue is full (``overflow="spill"``) or the destination is
down.  Each process writes a folder of its own, ``<root>/<pid>-<random>/``,
holding numbered segments (``seg-000001/``, each a
:class:`~consumers.file.FileConsumer` spool folder).  A ``flock``-ed lock file
says the folder's process is alive; a folder nobody holds was left by a
process that is gone, and the next consumer on the same root replays it.

A forked child writes its folder inside the parent's root when one was given,
else inside the parent's own folder, so the parent finds what a child left.
When a write fails (disk full, read-only) the spool says so for
:data:`RETRY_AFTER` seconds, then tries again.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

from consumers.errors import Message

__all__ = ["Spool"]

logger = logging.getLogger("consumers.background")

#: Seconds a spool that failed to write is considered unwritable before the next try.
RETRY_AFTER = 5.0


class Spool:
    """This process's spool folder: segments written in order, replayed in order.

    Only the newest segment is written; older ones are complete and can be
    replayed and removed.  Writing is safe from any thread; reading back is
    the worker's.
    """

    def __init__(self, root: Optional[Path]) -> None:
        self._root_given = root
        self._lock = threading.Lock()
        self._dir: Optional[Path] = None
        self._lock_file: Optional[Any] = None
        self._writer: Optional[Any] = None
        self._open: Optional[Path] = None  # the writer's segment
        self._open_used = False  # it was written to (and is one of _segments)
        self._seq = 0
        self._segments: list[Path] = []  # holding messages, oldest first (the last may be open)
        self._failed_at: Optional[float] = None
        self._children_of: Optional[Path] = None  # in a fork child: the parent's folder
        self.count = 0  # messages on disk not yet read back

    # -- locations -------------------------------------------------------------
    @property
    def root(self) -> Path:
        if self._root_given is not None:
            return self._root_given
        if self._children_of is not None:
            return self._children_of
        return Path(tempfile.gettempdir())

    @property
    def writable(self) -> bool:
        """False for a while after a write failed."""
        failed = self._failed_at
        return failed is None or time.monotonic() - failed >= RETRY_AFTER

    @property
    def path(self) -> Optional[Path]:
        return self._dir

    def _ensure_dir(self) -> Path:
        if self._dir is None:
            shared = self._root_given is not None or self._children_of is not None
            prefix = "" if shared else "tracking-spool-"
            self.root.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=self.root))
            self._lock_file = _try_lock(folder, fresh=True)
            self._dir = folder
        return self._dir

    # -- writing (any thread) --------------------------------------------------
    def write(self, items: Sequence[Message]) -> bool:
        """Append ``items``; False when the spool cannot be written (nothing written)."""
        with self._lock:
            if not self.writable:
                return False
            try:
                writer = self._writer if self._writer is not None else self._open_writer()
                if not self._open_used:
                    assert self._open is not None
                    self._segments.append(self._open)
                    self._open_used = True
                for message_type, message_json in items:
                    writer.send(message_type, message_json)
            except (OSError, ImportError) as error:
                if self._failed_at is None:
                    logger.warning("cannot write the spool in %s: %s", self.root, error)
                self._failed_at = time.monotonic()
                self._drop_writer()
                return False
            self._failed_at = None
            self.count += len(items)
            return True

    def _open_writer(self) -> Any:
        from consumers.file import FileConsumer

        self._seq += 1
        folder = self._ensure_dir() / f"seg-{self._seq:06d}"
        self._writer = writer = FileConsumer(f"{folder}{os.sep}")  # a spool folder
        self._open, self._open_used = folder, False
        return writer

    def prepare(self) -> None:
        """Open the next segment now (a thread's work), so the next :meth:`write` finds it open."""
        with self._lock:
            if self._writer is not None or not self.writable:
                return
            try:
                self._open_writer()
            except (OSError, ImportError) as error:
                logger.debug("cannot open a spool segment in %s yet: %s", self.root, error)

    def _drop_writer(self) -> None:
        """After a failed write: the segment may hold a part; start a new one next time."""
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError:
                pass
            self._writer = None

    def before_fork(self) -> None:
        """Flush the writer, and have a folder a child can write inside."""
        with self._lock:
            if self._writer is not None:
                self._writer.flush()
            if self._root_given is None:
                try:
                    self._ensure_dir()
                except OSError:
                    pass

    # -- reading (worker thread) -----------------------------------------------
    def seal(self) -> None:
        """Close the open segment so it can be replayed (one nothing was written to stays open)."""
        with self._lock:
            if self._writer is not None and self._open_used:
                self._writer.close()
                self._writer = None

    def segments(self) -> list[Path]:
        """Complete segments, oldest first (the open one excluded)."""
        with self._lock:
            if self._writer is not None and self._open_used:
                return self._segments[:-1]
            return list(self._segments)

    def orphans(self) -> Iterator[Path]:
        """Folders under a user-given root left by processes that are gone.

        Each is locked while the caller handles it, so two live processes never
        replay the same one.
        """
        root = self._root_given if self._root_given is not None else self._dir
        if root is None or not root.is_dir():
            return
        for folder in sorted(root.iterdir()):
            if folder == self._dir or not (folder / ".lock").exists():
                continue
            handle = _try_lock(folder)
            if handle is None:
                continue  # its process is alive, or someone else adopted it
            try:
                yield folder
            finally:
                handle.close()

    def may_have_orphans(self) -> bool:
        """Whether some other process's folder (a gone process, a fork child) is under the root."""
        root = self._root_given if self._root_given is not None else self._dir
        if root is None or not root.is_dir():
            return False
        return any(p != self._dir and (p / ".lock").exists() for p in root.iterdir())

    def read_back(self, n: int = 1) -> None:
        """``n`` messages left the disk for the wrapped consumer."""
        with self._lock:
            self.count = max(0, self.count - n)

    def done(self, folder: Path) -> None:
        """``folder`` was replayed completely: remove it."""
        shutil.rmtree(folder, ignore_errors=True)
        with self._lock:
            if folder in self._segments:
                self._segments.remove(folder)
            if not self._segments:
                self.count = 0

    @property
    def has_data(self) -> bool:
        return bool(self._segments)

    def close(self) -> None:
        """Close the writer; remove this process's folder if nothing is left in it."""
        self.seal()
        with self._lock:
            if self._writer is not None:  # opened ahead, never written to
                self._writer.close()
                self._writer = None
                if self._open is not None:
                    shutil.rmtree(self._open, ignore_errors=True)
            folder = self._dir
            if folder is None:
                return
            children = any((p / ".lock").exists() for p in folder.iterdir() if p.is_dir())
            if not self._segments and not children:
                shutil.rmtree(folder, ignore_errors=True)
            elif not self._segments:
                logger.warning("undelivered message(s) of forked children kept in %s; "
                               "send them with consumers.replay()", folder)
            else:
                logger.warning("%d undelivered message(s) kept in %s; "
                               "send them with consumers.replay()", self.count, folder)
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None
            self._dir = None

    def forget_after_fork(self) -> None:
        """In a fork child: the parent's folder, writer and lock are not ours."""
        self._lock = threading.Lock()
        self._writer = None
        self._open, self._open_used = None, False
        if self._root_given is None:
            self._children_of = self._dir
        if self._lock_file is not None:
            # our copy only: the parent's lock stays, and ends with the parent
            self._lock_file.close()
        self._lock_file = None
        self._dir = None
        self._seq = 0
        self._segments = []
        self._failed_at = None
        self.count = 0


def _try_lock(folder: Path, *, fresh: bool = False) -> Optional[Any]:
    """An open file holding an exclusive ``flock`` on ``folder/.lock``, or None if taken.

    The lock lasts while the file is open, and the OS drops it when the
    process dies, however it dies: a folder nobody holds was abandoned.
    ``fresh``: a new folder of ours; the lock is taken before ``.lock`` has
    its name, so no other process sees the folder unlocked and adopts it.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no orphan adoption
        return None
    name = ".lock-new" if fresh else ".lock"
    try:
        handle = open(folder / name, "a+b")  # closed by the owner
    except OSError:  # another process adopted the folder and removed it meanwhile
        return None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        if fresh:
            os.replace(folder / name, folder / ".lock")  # the lock follows the file
    except OSError:
        handle.close()
        return None
    return handle
